package sysroot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/strata-os/strata/internal/errdefs"
	"golang.org/x/sys/unix"
)

// kernelLayout is the kernel of a deployment (docs/formats/sysroot.md): the first
// directory usr/lib/modules/KVER (in directory order, as libostree
// iterates) holding a regular file vmlinuz.
type kernelLayout struct {
	root       string // the deployment root
	rel        string // usr/lib/modules/KVER
	dir        string // absolute usr/lib/modules/KVER
	kver       string
	initramfs  string // "initramfs.img", "initramfs" or ""
	devicetree string // "devicetree", "dtb" (a directory) or ""
	hmac       bool   // .vmlinuz.hmac present
	bootcsum   string
}

// findKernel finds the kernel of the tree at root and computes its boot
// checksum: sha256 over vmlinuz, then the initramfs, then the devicetree
// file or every file under dtb/ in sorted recursive order. A tree without
// one is errdefs.ErrNotFound.
//
// The tree is a commit's content, and what findKernel picks is copied
// into /boot and onto the ESP, which any user may read. So the path to
// usr/lib/modules/KVER must hold no symlink, and vmlinuz, the initramfs,
// devicetree, .vmlinuz.hmac and dtb must be regular files (dtb a
// directory) inside it: a symlink, or a KVER with a control character or white space (it
// goes into the boot entry), is errdefs.ErrInvalid.
func findKernel(root string) (*kernelLayout, error) {
	const modsRel = "usr/lib/modules"
	mods, err := openBeneath(root, modsRel, unix.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no kernel: no usr/lib/modules: %w", errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("finding kernel: %w", err)
	}
	defer mods.Close()
	ents, err := mods.ReadDir(-1) // directory order, not sorted
	if err != nil {
		return nil, fmt.Errorf("finding kernel: %w", err)
	}
	mfd := int(mods.Fd())
	var k *kernelLayout
	for _, e := range ents {
		if !e.IsDir() { // a symlinked KVER is not a directory here
			continue
		}
		kind, err := kernelFileKind(mfd, e.Name()+"/vmlinuz")
		if err != nil {
			return nil, err
		}
		if kind == kernelFileAbsent {
			continue
		}
		rel := modsRel + "/" + e.Name()
		if kind != kernelFileRegular {
			return nil, fmt.Errorf("kernel %s/vmlinuz is not a regular file: %w", rel, errdefs.ErrInvalid)
		}
		if !validKernelVersion(e.Name()) {
			return nil, fmt.Errorf("kernel directory %q has a control character or white space in its name: %w", rel, errdefs.ErrInvalid)
		}
		k = &kernelLayout{root: root, rel: rel, dir: filepath.Join(root, rel), kver: e.Name()}
		break
	}
	if k == nil {
		return nil, fmt.Errorf("no kernel: no usr/lib/modules/*/vmlinuz: %w", errdefs.ErrNotFound)
	}
	kd, err := openatBeneath(mfd, k.kver, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return nil, fmt.Errorf("finding kernel: %w", err)
	}
	defer kd.Close()
	kfd := int(kd.Fd())
	h := sha256.New()
	if err := k.hash(h, "vmlinuz"); err != nil {
		return nil, err
	}
	regular := func(name string) (bool, error) {
		kind, err := kernelFileKind(kfd, name)
		if err != nil || kind == kernelFileAbsent {
			return false, err
		}
		if kind != kernelFileRegular {
			return false, fmt.Errorf("kernel file %s/%s is not a regular file: %w", k.rel, name, errdefs.ErrInvalid)
		}
		return true, nil
	}
	for _, n := range []string{"initramfs.img", "initramfs"} {
		ok, err := regular(n)
		if err != nil {
			return nil, err
		}
		if ok {
			k.initramfs = n
			if err := k.hash(h, n); err != nil {
				return nil, err
			}
			break
		}
	}
	dt, err := regular("devicetree")
	if err != nil {
		return nil, err
	}
	if dt {
		k.devicetree = "devicetree"
		if err := k.hash(h, "devicetree"); err != nil {
			return nil, err
		}
	} else {
		kind, err := kernelFileKind(kfd, "dtb")
		if err != nil {
			return nil, err
		}
		switch kind {
		case kernelFileDir:
			k.devicetree = "dtb"
			if err := hashDir(h, filepath.Join(k.dir, "dtb")); err != nil {
				return nil, err
			}
		case kernelFileOther:
			return nil, fmt.Errorf("kernel file %s/dtb is neither a directory nor absent: %w", k.rel, errdefs.ErrInvalid)
		}
	}
	if k.hmac, err = regular(".vmlinuz.hmac"); err != nil {
		return nil, err
	}
	k.bootcsum = hex.EncodeToString(h.Sum(nil))
	return k, nil
}

// validKernelVersion accepts a KVER that can stand in a boot entry's
// linux and initrd lines as it is.
func validKernelVersion(kver string) bool {
	return kver != "" && !strings.ContainsFunc(kver, func(r rune) bool { return isControl(r) || r == ' ' })
}

type kernelFile int

const (
	kernelFileAbsent kernelFile = iota
	kernelFileRegular
	kernelFileDir
	kernelFileOther // a symlink, fifo, device or socket
)

// kernelFileKind looks at name under dirfd without following a symlink.
func kernelFileKind(dirfd int, name string) (kernelFile, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return kernelFileAbsent, nil
	}
	if err != nil {
		return 0, fmt.Errorf("finding kernel: %w", &os.PathError{Op: "fstatat", Path: name, Err: err})
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return kernelFileRegular, nil
	case unix.S_IFDIR:
		return kernelFileDir, nil
	}
	return kernelFileOther, nil
}

// open opens the kernel file name of k for reading: a regular file,
// reached from the deployment root through no symlink.
func (k *kernelLayout) open(name string) (*os.File, error) {
	f, err := openBeneath(k.root, k.rel+"/"+name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, fmt.Errorf("opening kernel file: %w", err)
	}
	if err := checkRegular(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func checkRegular(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file: %w", f.Name(), errdefs.ErrInvalid)
	}
	return nil
}

func (k *kernelLayout) hash(h hash.Hash, name string) error {
	f, err := k.open(name)
	if err != nil {
		return fmt.Errorf("hashing kernel file: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hashing %s/%s: %w", k.rel, name, err)
	}
	return nil
}

// hashFile hashes the regular file p, which must not be a symlink.
func hashFile(h hash.Hash, p string) error {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("hashing kernel file: %w", err)
	}
	defer f.Close()
	if err := checkRegular(f); err != nil {
		return fmt.Errorf("hashing kernel file: %w", err)
	}
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hashing %s: %w", p, err)
	}
	return nil
}

// hashDir hashes the regular files under dir in sorted recursive order
// (checksum_dir_recurse sorts names and descends into directories in
// place).
func hashDir(h hash.Hash, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("hashing %s: %w", dir, err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(dir, n)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := hashDir(h, p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := hashFile(h, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// bootFiles lists what installKernel puts into boot/ostree/OS-BOOTCSUM:
// source path → name in the boot directory.
func (k *kernelLayout) bootFiles() [][2]string {
	out := [][2]string{{"vmlinuz", "vmlinuz-" + k.kver}}
	if k.initramfs != "" {
		out = append(out, [2]string{k.initramfs, "initramfs-" + k.kver + ".img"})
	}
	if k.devicetree == "devicetree" {
		out = append(out, [2]string{"devicetree", "devicetree-" + k.kver})
	}
	if k.hmac {
		out = append(out, [2]string{".vmlinuz.hmac", ".vmlinuz-" + k.kver + ".hmac"})
	}
	return out
}

// installKernel puts the kernel files into dest (boot/ostree/OS-BOOTCSUM)
// if they are not there yet: a hardlink when /boot is the same
// filesystem, else a copy that is fdatasynced before it gets its name
// (install_into_boot). A dtb directory is copied as a whole.
func installKernel(k *kernelLayout, dest string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("installing kernel %s: %w", k.kver, err)
	}
	removeStaleTemps(dest)
	for _, f := range k.bootFiles() {
		to := filepath.Join(dest, f[1])
		if _, err := os.Lstat(to); err == nil {
			continue
		}
		if err := k.install(f[0], to); err != nil {
			return fmt.Errorf("installing kernel file %s: %w", to, err)
		}
	}
	if k.devicetree == "dtb" {
		to := filepath.Join(dest, "dtb")
		if _, err := os.Lstat(to); err != nil {
			if err := copyTree(filepath.Join(k.dir, "dtb"), to); err != nil {
				return fmt.Errorf("installing device trees %s: %w", to, err)
			}
		}
	}
	return nil
}

const tempPrefix = ".strata-tmp-"

func removeStaleTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// install puts the kernel file name of k at dst: a hardlink when /boot
// is the same filesystem, else a copy. The source is opened first (a
// regular file beneath the deployment, no symlink), and a link counts only
// if it is that very file: link(2) would link a symlink itself, which
// readers of /boot then follow.
func (k *kernelLayout) install(name, dst string) error {
	in, err := k.open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	src := filepath.Join(k.dir, name)
	err = os.Link(src, dst)
	if err == nil {
		return sameLinked(in, dst)
	}
	var le *os.LinkError
	if !errors.As(err, &le) || !(errors.Is(le.Err, syscall.EXDEV) || errors.Is(le.Err, syscall.EMLINK) || errors.Is(le.Err, syscall.EPERM)) {
		return err
	}
	return copyFileSynced(in, dst)
}

// sameLinked checks that dst, just linked, is the file open as in, and
// removes it if not.
func sameLinked(in *os.File, dst string) error {
	a, err := in.Stat()
	if err != nil {
		return err
	}
	b, err := os.Lstat(dst)
	if err == nil && os.SameFile(a, b) {
		return nil
	}
	os.Remove(dst)
	return fmt.Errorf("%s changed while it was linked to %s: %w", in.Name(), dst, errdefs.ErrInvalid)
}

// copyFileSynced copies the regular file open as in with its owner and
// mode under a temporary name, fdatasyncs it and renames it to dst.
func copyFileSynced(in *os.File, dst string) (err error) {
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(dst), tempPrefix+filepath.Base(dst))
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(out, in); err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err = out.Chown(int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, syscall.EPERM) {
			return err
		}
	}
	if err = out.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	if err = unix.Fdatasync(int(out.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", tmp, err)
	}
	if err = out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// osReleaseMax bounds the os-release file read from a tree.
const osReleaseMax = 64 << 10

// osReleaseTitle returns PRETTY_NAME (else ID) of the tree's os-release:
// usr/lib/os-release, else etc/os-release. Symlinks are resolved with
// the tree as "/" (etc/os-release is often a link), so no host file is
// read.
func osReleaseTitle(root string) (string, error) {
	data, err := readFileInRoot(root, "usr/lib/os-release", osReleaseMax)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = readFileInRoot(root, "etc/os-release", osReleaseMax)
	}
	if err != nil {
		return "", fmt.Errorf("reading os-release: %w", err)
	}
	vals := parseOSRelease(string(data))
	if v, ok := vals["PRETTY_NAME"]; ok {
		return v, nil
	}
	if v, ok := vals["ID"]; ok {
		return v, nil
	}
	return "", fmt.Errorf("os-release has no PRETTY_NAME or ID: %w", errdefs.ErrInvalid)
}

// parseOSRelease parses KEY=VALUE lines with shell quoting, skipping
// comments and lines whose value does not unquote (parse_os_release).
func parseOSRelease(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if u, ok := shellUnquote(v); ok {
			out[k] = u
		}
	}
	return out
}

// shellUnquote undoes shell quoting like g_shell_unquote: '…' literal,
// "…" with \ escaping $ ` " \ and newline, and \ outside quotes.
func shellUnquote(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", false
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", false
			}
		case '\\':
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					b.WriteByte(s[i])
				}
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}
