// Package e2e holds the end-to-end test of strata's boot flow (`make e2e`). It contains no
// library code: its test drives the strata binary (built once per run, static, so that compose
// installs it into the OS) and a QEMU machine (internal/vm, UEFI with persistent variables,
// user networking, the control port) black-box:
//
//  1. compose v1 of testdata/v1.yaml into a signed archive repository, build a disk image that
//     follows origin:REF at http://10.0.2.2:PORT (the host, seen from QEMU's user network) and
//     carries the first-boot config testdata/provision.yaml (a user with an SSH key the test
//     generates, a file, a unit, the update agent's configuration), serve the repository with
//     `strata repo serve`, and boot it: the host logs in with OpenSSH through QEMU's port
//     forward and finds the user, its key, the file, the unit and `strata status`'s
//     provisioning record;
//  2. change /etc and /var in the guest, compose v2 (a file changed, the package less added),
//     `strata upgrade` in the guest, reboot: v2 is booted and blessed, the local changes
//     survived, /usr is read-only, v1 is the rollback, and the config was not applied again;
//  3. compose v3, whose health check fails, and publish it in the release graph: the update
//     agent (configured by the first-boot config) stages it, waits for the fleet lock's slot,
//     reboots into it; strata-boot-complete fails, the guest reboots by itself until the entry's
//     tries run out, firmware falls back to v2, which is the default again (`strata status`);
//  4. system extensions (sysext_test.go): build two with `strata sysext build`, add one from a
//     URL and follow the other (published per OS version beside the repository), reboot: both
//     merged, their binaries run; upgrade to v4 (the followed one published for it): fetched
//     before staging, merged after the reboot, the other not (built for the old version), with
//     the reason; upgrade to v5 (nothing published): the upgrade goes on, v5 boots healthy, and
//     `strata sysext list` and `strata status` say why the extension is not merged;
//  5. package layering (layer_test.go): install a local .deb on the booted node, reboot, dpkg
//     lists it; compose v6, upgrade: the package is installed again on the new base; compose
//     v7, which ships nano, which the package conflicts with: the upgrade is refused before
//     anything is staged, naming the package, and status shows the update blocked;
//  6. OCI (oci_test.go): the booted commit pushed to a registry on the host, the guest rebased
//     onto the tag (its origin asks for no layer: the image is the layer's commit as it is), v8 pushed,
//     `strata upgrade` imports only the changed layers, the guest reboots into it;
//  7. cut the power (SIGKILL to QEMU) at several instants of a `strata deploy` in the guest:
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
