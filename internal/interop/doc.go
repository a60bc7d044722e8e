// Package interop holds the differential tests that prove strata's repositories byte-compatible
// with libostree in both directions. It contains no library code: its tests drive the strata
// binary (built once per test run) and Debian's ostree 2022.7 (/usr/bin/ostree) black-box on the
// same inputs and compare what comes out: commit checksums, object files, checkouts, fsck verdicts
// and `ls -R` listings.
//
// What is checked:
//   - commits of one awkward tree (every file type, mode bit, owner, xattr and name edge case that
//     OSTree can store) get the same checksum and the same object files from both tools in all
//     four repository modes, with implicit, explicit and no parents; tar archives of it too;
//   - each tool's fsck accepts the other's repositories, each tool's checkout of the other's
//     commits reproduces the source tree (minus what the mode cannot store), and ostree's log,
//     show and ls read strata's commits;
//   - the test vectors of docs/formats/vectors.md are reproduced object by object;
//   - damaged objects are reported, by name, by fsck and checkout.
//
// Known, deliberate differences from libostree, each documented at its test: strata's tar import
// canonicalizes xattrs as a directory import does (TestCommitTarMatchesOstree); a user-mode
// checkout of a bare-user repository keeps committed permission bits (linkedFromBareUser); .filez
// deflate streams are not zlib's (compareObject).
//
// The tests need root (owners, setuid bits, trusted.* xattrs, bare repositories) and the ostree
// binary, so every test file carries the build tags `peer` and `root`; `make test` runs them.
// TestMain builds cmd/strata once per run (with STRATA_BIN set, that binary is tested instead)
// and runs four tests at a time unless -test.parallel says otherwise.
//
// Layer: tests only (outside the L0–L4 stack).
package interop
