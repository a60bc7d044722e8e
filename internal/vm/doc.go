// Package vm runs QEMU virtual machines for tests and demos: it boots a disk image under UEFI
// (OVMF + a writable per-machine variable store) or a kernel directly, and watches the guest
// through files that QEMU writes.
//
// A machine has three serial ports:
//
//	ttyS0  the console (kernel log, firmware output); scanned for failure patterns (Kernel panic)
//	ttyS1  the marker port; the guest writes "STRATA-MARK <name> [value]" lines here
//	ttyS2  the control port (optional); the host writes one command per line, a guest
//	       script (vmtest/guest/strata-vm-control) runs them and reports on ttyS1
//
// The watcher polls both log files every 100 ms, records milestones (the first time each of
// a set of regular expressions shows up, with the seconds since QEMU started) and markers, and
// ends the run on a success pattern, a failure pattern, a timeout, or QEMU's exit. Kill sends
// SIGKILL to QEMU, which is a power cut for the guest.
//
// Acceleration is TCG unless the caller (or STRATA_VM_ACCEL=kvm) says KVM: on hosts where
// /dev/kvm is a nested software layer, KVM passes cheap probes but cannot boot a kernel
// (docs/vm.md), so only a real boot proves it.
//
// It does not build disk images or initramfs archives (internal/image and the tests' vmtest do),
// and it does not parse what the guest prints beyond markers and patterns.
//
// Layer: L2 (mechanism).
package vm
