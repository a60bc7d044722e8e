// Package sysext builds, checks and places systemd system extensions
// (sysext images): raw EROFS or squashfs images that systemd-sysext
// overlays read-only on /usr and /opt at boot (docs/sysext.md).
//
//   - Build writes a directory as an EROFS image, reproducibly, with the
//     extension-release file systemd-sysext matches against the host.
//   - Inspect parses an image (EROFS or squashfs) in process, without
//     mounting it, and applies strata's
//     content rules; Match is systemd-sysext 252's compatibility rule.
//   - Store places checked images where systemd-sysext looks
//     (/var/lib/extensions), keeps per-OS-version images that follow
//     upgrades (/var/lib/strata/extensions/NAME/VERSION_ID/NAME.raw), and
//     links the ones matching the booted OS into /run/extensions at boot.
//   - Fetch downloads a published per-version image and its detached
//     signature, and trusts the image only after both verified.
//
// It does not merge anything: the node's own systemd-sysext does. It
// sits in layer L2 (a mechanism beside sysroot); the command line wires it
// to upgrades as a sysroot.Preparer.
package sysext
