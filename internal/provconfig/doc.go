// Package provconfig is the provisioning config format: Ignition configs (spec 3.0.0 to 3.5.0,
// parsed and validated by github.com/coreos/ignition/v2/config and translated up to 3.5.0) and a
// Butane-style YAML form (variant fcos, versions 1.0.0 to 1.6.0) that it translates to Ignition
// JSON.
//
// Validation never stops at the first problem: Parse and Translate return a Report of findings,
// errors and warnings, each naming the JSON path of the offending value and, where the input
// carries positions, its line and column. Unknown keys in the YAML form are errors, never
// silently dropped.
//
// The package is pure: it reads local files for contents.local, contents_local, storage.trees
// and ssh_authorized_keys_local only through the fs.FS the caller passes, and it fetches nothing.
// Applying a config to a tree is internal/provision's job.
//
// Layer L1 (wire formats); it imports no other strata package but internal/errdefs.
package provconfig
