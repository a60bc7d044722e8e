// Package testutil holds helpers for strata's tests: tier guards (root, peer tools), the repository
// root, and the OSTree test vectors extracted with their modes and xattrs.
//
// It is imported by _test.go files only; the layer test (internal/layers_test.go) fails if non-test
// code imports it. It does not skip: a missing tool or privilege is a test failure that names the
// Debian package to install (scripts/deps installs them all), so CI never passes a peer comparison
// silently.
//
// Layer: test helper (outside the L0–L4 stack; may be imported by tests of any layer).
package testutil
