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
func findKernel(root string) (*kernelLayout, error) {
	mods := filepath.Join(root, "usr/lib/modules")
	f, err := os.Open(mods)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no kernel: no usr/lib/modules: %w", errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("finding kernel: %w", err)
	}
	ents, err := f.ReadDir(-1) // directory order, not sorted
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("finding kernel: %w", err)
	}
	var k *kernelLayout
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		fi, err := os.Stat(filepath.Join(mods, e.Name(), "vmlinuz"))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		k = &kernelLayout{dir: filepath.Join(mods, e.Name()), kver: e.Name()}
		break
	}
	if k == nil {
		return nil, fmt.Errorf("no kernel: no usr/lib/modules/*/vmlinuz: %w", errdefs.ErrNotFound)
	}
	h := sha256.New()
	if err := hashFile(h, filepath.Join(k.dir, "vmlinuz")); err != nil {
		return nil, err
	}
	for _, n := range []string{"initramfs.img", "initramfs"} {
		if _, err := os.Stat(filepath.Join(k.dir, n)); err == nil {
			k.initramfs = n
			if err := hashFile(h, filepath.Join(k.dir, n)); err != nil {
				return nil, err
			}
			break
		}
	}
	if _, err := os.Stat(filepath.Join(k.dir, "devicetree")); err == nil {
		k.devicetree = "devicetree"
		if err := hashFile(h, filepath.Join(k.dir, "devicetree")); err != nil {
			return nil, err
		}
	} else if fi, err := os.Stat(filepath.Join(k.dir, "dtb")); err == nil && fi.IsDir() {
		k.devicetree = "dtb"
		if err := hashDir(h, filepath.Join(k.dir, "dtb")); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(k.dir, ".vmlinuz.hmac")); err == nil {
		k.hmac = true
	}
	k.bootcsum = hex.EncodeToString(h.Sum(nil))
	return k, nil
}

func hashFile(h hash.Hash, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("hashing kernel file: %w", err)
	}
	defer f.Close()
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
		if err := linkOrCopy(filepath.Join(k.dir, f[0]), to); err != nil {
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

func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil {
		return nil
	}
	var le *os.LinkError
	if !errors.As(err, &le) || !(errors.Is(le.Err, syscall.EXDEV) || errors.Is(le.Err, syscall.EMLINK) || errors.Is(le.Err, syscall.EPERM)) {
		return err
	}
	return copyFileSynced(src, dst)
}

// copyFileSynced copies a regular file with its owner and mode under a
// temporary name, fdatasyncs it and renames it to dst.
func copyFileSynced(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(dst), tempPrefix+filepath.Base(dst))
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
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

// osReleaseTitle returns PRETTY_NAME (else ID) of the tree's os-release:
// usr/lib/os-release, else etc/os-release.
func osReleaseTitle(root string) (string, error) {
	data, err := os.ReadFile(filepath.Join(root, "usr/lib/os-release"))
	if errors.Is(err, fs.ErrNotExist) {
		data, err = os.ReadFile(filepath.Join(root, "etc/os-release"))
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
