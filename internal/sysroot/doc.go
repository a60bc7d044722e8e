// Package sysroot manages an OSTree-compatible sysroot: the deployments
// of a node (hardlink checkouts of commits under
// ostree/deploy/OS/deploy/CHECKSUM.SERIAL), their .origin files, the
// /etc three-way merge, the kernels and BLS entries under /boot, and the
// atomic switch between two boot versions. It is what `ostree admin`
// does, as a library (docs/formats/sysroot.md).
//
// Compatibility is the point: the on-disk layout is the one libostree
// 2022.7 writes, so `ostree admin status --sysroot S` lists strata's
// deployments in the same order with the same checksums and serials, and
// strata loads, deploys on, rolls back and undeploys sysroots that
// `ostree admin` made. Both take the same lock (S/ostree/lock).
//
// Vocabulary (docs/formats/sysroot.md): a sysroot holds an ordered list
// of deployments; index 0 is the default for the next boot. The booted
// deployment is the one the running kernel's ostree= argument names;
// pending is a default that is not booted; rollback is the one after the
// booted one. A staged deployment is checked out but only written into
// the boot configuration by Finalize (at shutdown). Bootable lists the
// deployments of the boot configuration (no staged one), and
// Deployment.Key names a deployment as "OSNAME CHECKSUM.SERIAL" across the
// sysroot and the ESP.
//
// ReadBootEntries is the one reader of the sysroot's BLS entries and their
// ostree= links (docs/boot.md, "Reading the sysroot's entries"): Open
// builds the deployment list from it, and the ESP projection (package
// boot) takes each deployment's title, options and kernel files from it.
//
// Every operation that changes the sysroot follows one plan: write
// everything new next to the old state, sync, then one commit point (a
// rename of a symlink), then clean up what the old state alone used. A
// crash at any moment leaves the old or the new list bootable; leftovers
// are removed by the next Cleanup (or the start of the next Deploy).
//
// Differences from `ostree admin` 2022.7, each deliberate (the
// differential tests in internal/interop, TestSysrootLayoutMatchesOstree
// and TestSysrootSequenceAgreesWithOstree, compare everything else byte
// for byte):
//   - no SELinux relabelling, so no var/.ostree-selabeled stamp in the
//     stateroot's var after the first deploy;
//   - Cleanup also undeploys what is not booted, pending, rollback or
//     pinned (with nothing booted: what is past index 1 and not pinned),
//     as its CLI says; `ostree admin cleanup` only sweeps what no entry
//     references and never shortens the list;
//   - with nothing booted, RollbackDeployment is index 1, so strata status
//     marks it; `ostree admin status` prints (pending) and (rollback) only
//     relative to a booted deployment;
//   - /boot is synced with syncfs, not frozen (WriteDeployments), and a
//     staged deployment is recorded in strata's own JSON (StagedPath);
//   - a commit's tree is untrusted content (docs/boot.md, "Untrusted
//     trees"), and strata refuses (errdefs.ErrInvalid) trees that
//     libostree may deploy: usr, usr/etc or etc as a symlink (the /etc
//     copy and merge would write where it points, on the host), and a
//     symlink on the way to or at vmlinuz, the initramfs, devicetree,
//     dtb or .vmlinuz.hmac (they are copied into /boot and onto the ESP,
//     which every user can read); a control character in the commit's
//     version, the refspec, a kernel argument or the kernel directory's
//     name is refused too, and one in any other boot entry value (the
//     os-release PRETTY_NAME of the title) is written as \xNN.
//
// What it does not do: pull commits (internal/pull), install or
// configure a boot loader beyond the BLS entries (internal/bootloader),
// mount anything (internal/prepareroot), SELinux relabelling, overlay
// initrds, legacy kernel layouts (/boot/vmlinuz-CSUM), `ostree admin
// unlock`.
//
// Layer L2: imports repo, ostree, keyfile, fsutil, errdefs.
package sysroot
