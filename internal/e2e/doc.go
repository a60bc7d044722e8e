// Package e2e holds the end-to-end test of strata's boot flow (`make e2e`). It contains no
// library code: its test drives the strata binary (built once per run, static, so that compose
// installs it into the OS) and a QEMU machine (internal/vm, UEFI with persistent variables,
// user networking, the control port) black-box:
//
//  1. compose v1 of testdata/v1.yaml into a signed archive repository, build a disk image that
//     follows origin:REF at http://10.0.2.2:PORT (the host, seen from QEMU's user network),
//     serve the repository with `strata repo serve`, and boot it;
//  2. change /etc and /var in the guest, compose v2 (a file changed, the package less added),
//     `strata upgrade` in the guest, reboot: v2 is booted and blessed, the local changes
//     survived, /usr is read-only, v1 is the rollback;
//  3. compose v3, whose health check fails, upgrade, reboot: strata-boot-complete fails, the
//     guest reboots by itself until the entry's tries run out, firmware falls back to v2, and
//     `strata boot-complete` there makes v2 the default again (`strata status`);
//  4. cut the power (SIGKILL to QEMU) at several instants of a `strata deploy` in the guest:
//     every next boot is the old or the new deployment, complete (status, repo fsck).
//
// The steps are subtests of TestE2E that depend on the ones before: a prefix of them can be run
// alone (`-run 'TestE2E/(compose-v1|image|boot-v1|upgrade-v2)$'` is the short variant). Every
// step logs what it measured (compose, image build and size, boot to the marker, prepare-root,
// upgrade, reboot, fallback, power cuts). Logs (console and marker port of each QEMU run, the
// commands' output) stay in .cache/e2e/<timestamp>/, printed at the end; the work files
// (repository, disk) go on success.
//
// The test needs root, mmdebstrap and a Debian mirror, QEMU, OVMF, systemd-boot-efi and the
// image tools, so it carries the build tags root, peer and e2e; `make e2e` runs it.
//
// Layer: tests only (outside the L0–L4 stack).
package e2e
