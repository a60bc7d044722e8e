package bootloader

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// Entry is one deployment to boot, as the caller (which reads the
// sysroot) describes it.
type Entry struct {
	OS           string // stateroot
	Deployment   string // CHECKSUM.SERIAL: which deployment the entry boots
	BootChecksum string // names the kernel directory strata/OS-BOOTCSUM
	KernelVer    string // KVER of vmlinuz-KVER and initramfs-KVER.img

	Kernel    string // host path of the kernel to copy to the ESP
	Initramfs string // host path of the initramfs; "" for none

	Title   string
	Options string // the whole kernel command line, ostree= included

	// Booted says the running system booted this deployment: a new entry
	// for it gets no boot counter.
	Booted bool
}

const (
	entriesDir = "loader/entries"
	kernelsDir = "strata"
)

// KernelDir returns the entry's kernel directory on the ESP
// (strata/OS-BOOTCSUM).
func (e Entry) KernelDir() string { return kernelsDir + "/" + e.OS + "-" + e.BootChecksum }

func (e Entry) kernelName() string    { return "vmlinuz-" + e.KernelVer }
func (e Entry) initramfsName() string { return "initramfs-" + e.KernelVer + ".img" }

// DeploymentKey returns "OS CHECKSUM.SERIAL", the identity an entry's
// comment line records.
func (e Entry) DeploymentKey() string { return e.OS + " " + e.Deployment }

const deploymentComment = "# strata-deployment "

func (e Entry) validate() error {
	bad := func(what, v string) error {
		return fmt.Errorf("boot entry of %s: %s %q: %w", e.Deployment, what, v, errdefs.ErrInvalid)
	}
	switch {
	case !safeName(e.OS) || strings.Contains(e.OS, " "):
		return bad("stateroot", e.OS)
	case !safeName(e.Deployment) || strings.Contains(e.Deployment, " "):
		return bad("deployment", e.Deployment)
	case !safeName(e.BootChecksum):
		return bad("boot checksum", e.BootChecksum)
	case !safeName(e.KernelVer):
		return bad("kernel version", e.KernelVer)
	case e.Kernel == "":
		return bad("kernel", e.Kernel)
	case hasControl(e.Title) || hasControl(e.Options):
		return bad("title or options with a control character", e.Title+" "+e.Options)
	}
	return nil
}

// safeName accepts what may stand in a FAT file name the entry uses.
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\:*?\"<>|") && !hasControl(s)
}

// hasControl reports whether s holds an ASCII control character (C0 or
// DEL). A newline in an entry's value would add a line (an options line
// extends the kernel command line), and other control characters have
// no place in a name or title.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Text returns the entry file's content (Boot Loader Specification type
// #1). The first line, a comment systemd-boot ignores, names the
// deployment, so that the entry's ID (a hash of the text) changes when
// the same kernel and options come to mean another deployment, and so
// that Sync can carry a deployment's boot counter to its new entry.
func (e Entry) Text() []byte {
	var b strings.Builder
	b.WriteString(deploymentComment + e.DeploymentKey() + "\n")
	if e.Title != "" {
		b.WriteString("title " + e.Title + "\n")
	}
	b.WriteString("linux /" + e.KernelDir() + "/" + e.kernelName() + "\n")
	if e.Initramfs != "" {
		b.WriteString("initrd /" + e.KernelDir() + "/" + e.initramfsName() + "\n")
	}
	b.WriteString("options " + e.Options + "\n")
	return []byte(b.String())
}

// ID returns the entry's ID: the first 16 hex digits of the SHA-256 of
// its text.
func (e Entry) ID() string {
	sum := sha256.Sum256(e.Text())
	return hex.EncodeToString(sum[:])[:idLen]
}

// entryDeployment reads the deployment key of an entry's text.
func entryDeployment(data []byte) string {
	first, _, _ := strings.Cut(string(data), "\n")
	k, _ := strings.CutPrefix(first, deploymentComment)
	if k == first {
		return ""
	}
	return k
}
