package sysroot

import (
	"fmt"
)

// BootEntry is one Boot Loader Specification entry of a sysroot's current
// boot version (boot/loader.BV/entries/ostree-*.conf), read the way
// libostree reads it (docs/boot.md, "Reading the sysroot's entries"):
//
//   - a line whose first byte is not an ASCII letter is ignored (comments,
//     blank or indented lines), and so is a line without a separator;
//   - key and value split at the first space or tab;
//   - a repeated initrd adds an overlay initramfs; any other repeated key
//     keeps its last value.
//
// systemd-boot reads the same files slightly differently: it too takes the
// last title, version, linux and devicetree and collects every initrd, but
// it joins repeated options lines with a space where libostree keeps the
// last. The sysroot writes one options line per entry, so the two agree on
// every entry strata or libostree wrote.
type BootEntry struct {
	File    string // file name in boot/loader.BV/entries
	Title   string
	Version string
	Options string // the whole options value, ostree= included
	// Linux is the kernel's path below the sysroot's /boot.
	Linux string
	// Initrd holds the initramfs, then any overlay initrds, as paths
	// below the sysroot's /boot; nil for none.
	Initrd []string
	// BootLink is the value of ostree= in Options:
	// /ostree/boot.BOOTVERSION/OSNAME/BOOTCSUM/SERIAL.
	BootLink string
	// Deployment is the deployment BootLink resolves to. Only what the
	// entry itself says is set: OSName, Checksum, Serial, BootChecksum,
	// BootSerial and Kargs (Options without ostree=). The origin, the
	// commit's version and time, Index, Booted and Staged are what
	// Sysroot.Deployments adds.
	Deployment Deployment
}

// ReadBootEntries reads the entries of the current boot version of the
// sysroot at path, in boot order (by their version key, highest first),
// and resolves each ostree= link to its deployment. It is the only reader
// of the sysroot's entries: Open uses it too. An entry without ostree=, or
// whose link or deployment is missing, is errdefs.ErrCorrupt. A sysroot
// without entries has none.
//
// It takes no lock: a caller that must not see a half-written boot
// version either holds the sysroot (a Bootloader's Sync is called with
// the switch committed) or reads again after a failure.
func ReadBootEntries(path string) ([]BootEntry, error) {
	bv, err := readBootversion(path)
	if err != nil {
		return nil, err
	}
	return readBootEntries(path, bv)
}

// readBootEntries reads and resolves the entries of boot version bv.
func readBootEntries(path string, bv int) ([]BootEntry, error) {
	entries, err := readEntries(path, bv)
	if err != nil {
		return nil, err
	}
	out := make([]BootEntry, 0, len(entries))
	for _, e := range entries {
		be, err := bootEntryFrom(path, e.name, e.entry)
		if err != nil {
			return nil, fmt.Errorf("entry boot/loader.%d/entries/%s: %w", bv, e.name, err)
		}
		out = append(out, be)
	}
	return out, nil
}

// Key returns "OSNAME CHECKSUM.SERIAL", the identity of a deployment
// across the sysroot and the ESP: an ESP entry records it in its first
// line, and boot-complete reports it.
func (d Deployment) Key() string {
	return d.OSName + " " + d.Name()
}

// Bootable returns the deployments of the boot configuration, from the
// default down: Deployments without the staged one, which is not in the
// boot configuration until Finalize writes it there.
func (s *Sysroot) Bootable() []Deployment { return s.nonStaged() }
