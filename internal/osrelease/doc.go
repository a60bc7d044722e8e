// Package osrelease reads and writes os-release(5) files: the
// KEY=VALUE lines, with shell quoting, of /usr/lib/os-release and of a
// system extension's extension-release file, which uses the same format
// (docs/sysext.md).
//
// It is a pure format over bytes (layer L0): it does not find the file,
// follow symlinks or decide what a value means; internal/sysext compares
// an extension's fields with a host's.
package osrelease
