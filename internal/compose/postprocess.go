package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
)

// InitramfsFunc puts the initramfs of kernel kver into the tree at root,
// as usr/lib/modules/KVER/initramfs.img. It runs before /boot is emptied.
type InitramfsFunc func(ctx context.Context, root, kver string) error

// DebianInitramfs uses the initramfs that Debian's initramfs-tools built
// during the package installation, boot/initrd.img-KVER.
func DebianInitramfs(_ context.Context, root, kver string) error {
	src := filepath.Join(root, "boot", "initrd.img-"+kver)
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("initramfs of kernel %s (is initramfs-tools installed and its postinst.d hook not excluded?): %w", kver, err)
	}
	return os.Rename(src, filepath.Join(root, "usr/lib/modules", kver, "initramfs.img"))
}

// PostProcessOptions are the inputs of PostProcess besides the tree.
type PostProcessOptions struct {
	Name, Version string
	KernelArgs    []string
	// SourceDateEpoch sets the password-change date in /etc/shadow.
	SourceDateEpoch time.Time
	// Initramfs installs the initramfs; nil means DebianInitramfs.
	Initramfs InitramfsFunc
}

// TreeInfo is what PostProcess learnt about the tree.
type TreeInfo struct {
	Kernel   string    // kernel version (ostree.linux)
	Packages []Package // installed packages, sorted by name
	Tmpfiles int       // lines written to strata-var.conf
}

// Paths of the OSTree layout (docs/compose.md).
const (
	DpkgDatabase  = "usr/lib/sysimage/dpkg" // where var/lib/dpkg goes
	TmpfilesConf  = "usr/lib/tmpfiles.d/strata-var.conf"
	KernelCmdline = "usr/lib/kernel/cmdline"
)

// varLinks are the top-level directories an OSTree system keeps in /var,
// with the symlink each becomes and the mode of its target directory.
var varLinks = []struct {
	path, target, varDir string
	mode                 fs.FileMode
}{
	{"home", "var/home", "home", 0o755},
	{"root", "var/roothome", "roothome", 0o700},
	{"opt", "var/opt", "opt", 0o755},
	{"srv", "var/srv", "srv", 0o755},
	{"mnt", "var/mnt", "mnt", 0o755},
	{"usr/local", "../var/usrlocal", "usrlocal", 0o755},
}

// PostProcess turns the root filesystem that mmdebstrap installed at root
// into an OSTree-ready tree, in place (docs/compose.md, "The tree"): kernel
// and initramfs under usr/lib/modules/KVER, /boot emptied, os-release
// stamped, sources of non-reproducibility removed, /var replaced by
// tmpfiles.d lines (the dpkg database moved to DpkgDatabase), /etc moved
// to /usr/etc, /home, /root, /opt, /srv, /mnt and /usr/local made symlinks
// into /var, and /sysroot and /ostree added. Device nodes, FIFOs and
// sockets are deleted: a commit cannot hold them.
func PostProcess(ctx context.Context, root string, opts PostProcessOptions) (*TreeInfo, error) {
	info := &TreeInfo{}
	if _, err := os.Stat(filepath.Join(root, "usr/etc")); err == nil {
		return nil, fmt.Errorf("tree %s already has usr/etc: %w", root, errdefs.ErrInvalid)
	}
	status, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		return nil, fmt.Errorf("reading the package list: %w", err)
	}
	if info.Packages, err = ParseDpkgStatus(status, ""); err != nil {
		return nil, err
	}
	steps := []struct {
		what string
		fn   func() error
	}{
		{"removing special files", func() error { return removeSpecialFiles(root) }},
		{"installing the kernel", func() error {
			info.Kernel, err = installKernel(ctx, root, opts.Initramfs)
			return err
		}},
		{"stamping os-release", func() error { return stampOSRelease(root, opts.Name, opts.Version) }},
		{"writing kernel arguments", func() error { return writeKernelArgs(root, opts.KernelArgs) }},
		{"normalizing /etc", func() error { return normalizeEtc(root, opts.SourceDateEpoch) }},
		{"making sshd generate its host keys", func() error { return sshHostKeys(root) }},
		{"removing Python bytecode", func() error { return removePyc(root) }},
		{"replacing /var with tmpfiles.d lines", func() error {
			info.Tmpfiles, err = convertVar(root)
			return err
		}},
		{"moving /etc to /usr/etc", func() error { return os.Rename(filepath.Join(root, "etc"), filepath.Join(root, "usr/etc")) }},
		{"adding /sysroot and /ostree", func() error { return addSysroot(root) }},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.fn(); err != nil {
			return nil, fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return info, nil
}

// removeSpecialFiles deletes device nodes, FIFOs and sockets, and empties
// the API filesystem mount points dev, proc, sys, run and tmp.
func removeSpecialFiles(root string) error {
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp"} {
		if err := emptyDir(filepath.Join(root, d)); err != nil {
			return err
		}
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch d.Type() & (fs.ModeDevice | fs.ModeCharDevice | fs.ModeNamedPipe | fs.ModeSocket) {
		case 0:
			return nil
		}
		return os.Remove(p)
	})
}

// emptyDir removes everything inside dir (which may be missing).
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// installKernel moves the only kernel of /boot to usr/lib/modules/KVER
// (vmlinuz, config, System.map), lets initramfs install the initramfs,
// empties /boot and removes the root's /vmlinuz and /initrd.img links.
func installKernel(ctx context.Context, root string, initramfs InitramfsFunc) (string, error) {
	boot := filepath.Join(root, "boot")
	kernels, err := filepath.Glob(filepath.Join(boot, "vmlinuz-*"))
	if err != nil {
		return "", err
	}
	switch len(kernels) {
	case 0:
		return "", fmt.Errorf("no kernel in /boot (add a linux-image package to packages): %w", errdefs.ErrInvalid)
	case 1:
	default:
		return "", fmt.Errorf("%d kernels in /boot, want one: %w", len(kernels), errdefs.ErrInvalid)
	}
	kver := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	mod := filepath.Join(root, "usr/lib/modules", kver)
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(kernels[0], filepath.Join(mod, "vmlinuz")); err != nil {
		return "", err
	}
	for _, f := range []struct{ from, to string }{{"config-", "config"}, {"System.map-", "System.map"}} {
		err := os.Rename(filepath.Join(boot, f.from+kver), filepath.Join(mod, f.to))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	if initramfs == nil {
		initramfs = DebianInitramfs
	}
	if err := initramfs(ctx, root, kver); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(mod, "initramfs.img")); err != nil {
		return "", fmt.Errorf("initramfs step left no initramfs: %w", err)
	}
	for _, l := range []string{"vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"} {
		if err := os.Remove(filepath.Join(root, l)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return kver, emptyDir(boot)
}

// stampOSRelease sets VERSION_ID, VERSION, IMAGE_ID, IMAGE_VERSION and
// PRETTY_NAME in the os-release file that etc/os-release resolves to.
func stampOSRelease(root, name, version string) error {
	p := filepath.Join(root, "etc/os-release")
	if t, err := os.Readlink(p); err == nil {
		if filepath.IsAbs(t) {
			p = filepath.Join(root, t)
		} else {
			p = filepath.Join(root, "etc", t)
		}
	} else if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		p = filepath.Join(root, "usr/lib/os-release")
	}
	old, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	set := map[string]string{
		"VERSION_ID": version, "VERSION": version, "IMAGE_ID": name, "IMAGE_VERSION": version,
		"PRETTY_NAME": name + " " + version,
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(old), "\n") {
		k, _, ok := strings.Cut(line, "=")
		if _, ours := set[k]; ok && ours || line == "" {
			continue
		}
		out.WriteString(line)
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&out, "%s=%s\n", k, strconv.Quote(set[k]))
	}
	return os.WriteFile(p, out.Bytes(), 0o644)
}

func writeKernelArgs(root string, args []string) error {
	if len(args) == 0 {
		return nil
	}
	p := filepath.Join(root, KernelCmdline)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(strings.Join(args, " ")+"\n"), 0o644)
}

// SSHHostKeysDropin is the dropin compose adds to OpenSSH's ssh.service (Debian's name): the
// host keys the package's installation made are removed from the tree (every node of the
// commit would share them), so each node makes its own, once, before sshd first starts.
// sshd -t, which Debian's unit runs first, fails without host keys, hence the reset.
const SSHHostKeysDropin = "usr/lib/systemd/system/ssh.service.d/10-strata-host-keys.conf"

const sshHostKeysDropin = `# Added by strata compose: each node makes its own SSH host keys (docs/compose.md).
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
`

// sshHostKeys adds SSHHostKeysDropin when the tree has Debian's ssh.service.
func sshHostKeys(root string) error {
	if _, err := os.Stat(filepath.Join(root, "usr/lib/systemd/system/ssh.service")); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	p := filepath.Join(root, SSHHostKeysDropin)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(sshHostKeysDropin), 0o644)
}

// normalizeEtc removes or rewrites what differs between two builds of the
// same packages: the build host's hostname and resolv.conf, the machine ID
// (left empty: systemd makes one on first boot), SSH host keys, shadow's
// backup files and lock, and the "last password change" day of
// /etc/shadow (set to SOURCE_DATE_EPOCH's day).
func normalizeEtc(root string, epoch time.Time) error {
	etc := filepath.Join(root, "etc")
	for _, f := range []string{"hostname", "resolv.conf", ".pwd.lock", "passwd-", "group-", "shadow-", "gshadow-", "subuid-", "subgid-"} {
		if err := os.Remove(filepath.Join(etc, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	keys, _ := filepath.Glob(filepath.Join(etc, "ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(etc, "machine-id"), nil, 0o444); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(etc, "machine-id"), 0o444); err != nil {
		return err
	}
	p := filepath.Join(etc, "shadow")
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	day := strconv.FormatInt(epoch.Unix()/86400, 10)
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		f := strings.Split(l, ":")
		if len(f) >= 3 && f[2] != "" {
			f[2] = day
			lines[i] = strings.Join(f, ":")
		}
	}
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), st.Mode().Perm()); err != nil {
		return err
	}
	return os.Chmod(p, st.Mode().Perm())
}

// removePyc deletes Python bytecode caches under /usr: their content
// depends on build time, and Python runs without them (slower start).
func removePyc(root string) error {
	var dirs []string
	err := filepath.WalkDir(filepath.Join(root, "usr"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "__pycache__" {
			dirs = append(dirs, p)
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".pyc") {
			return os.Remove(p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}

// addSysroot creates the /sysroot mount point and the /ostree ->
// sysroot/ostree symlink of an OSTree system.
func addSysroot(root string) error {
	if err := os.Mkdir(filepath.Join(root, "sysroot"), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	p := filepath.Join(root, "ostree")
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	return os.Symlink("sysroot/ostree", p)
}
