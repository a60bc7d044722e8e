// Package prepareroot is strata's initramfs /init: it mounts the physical root
// filesystem named by root= on /sysroot, assembles the OSTree deployment named by
// ostree= as the new root (read-only /usr, writable /etc, the stateroot's /var,
// the physical root at /sysroot, /run/ostree-booted), and switches into it
// (docs/formats/sysroot.md, docs/vm.md).
//
// The logic is split so that most of it is pure and testable: ParseCmdline turns
// /proc/cmdline into a Config; ResolveDeployment and Plan turn a mounted sysroot
// and a Config into the list of mount Steps; Apply runs those steps through a
// Mounter. Init is the PID-1 program that wires them to the real system calls.
//
// On a node's first boot, a Provisioner given to Init applies the node's
// provisioning config to the assembled deployment before the switch
// (docs/provisioning.md); a failure stops the boot. For a config fetched from
// ignition.config.url=, BringUpNetwork configures the initramfs's network from
// the ip= kernel argument (ParseIP), by DHCPv4 when it asks for it or is absent.
//
// Only the initramfs mode exists: ostree's other mode, where ostree-prepare-root
// runs as init= from the real root and uses pivot_root, is not implemented, nor
// are composefs, the read-only sysroot mode (sysroot.readonly) and the
// overlayfs /usr of unlocked deployments.
//
// Layer L3 (services); it imports only lower layers.
package prepareroot
