package cli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/initramfs"
)

// staticELF is a minimal static x86-64 ELF header, enough for initramfs to
// accept it as /init.
func staticELF() []byte {
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, binary.LittleEndian, struct {
		Type, Machine                    uint16
		Version                          uint32
		Entry, Phoff, Shoff              uint64
		Flags                            uint32
		Ehsize, Phentsize, Phnum, Shsize uint16
		Shnum, Shstrndx                  uint16
	}{Type: 2, Machine: 62, Version: 1, Ehsize: 64, Phentsize: 56, Shsize: 64})
	return b.Bytes()
}

// fakeKernelTree writes a tree with kernel 6.1.0-t whose ext4 needs crc16 and,
// by softdep, crypto-crc32c.
func fakeKernelTree(t *testing.T) string {
	t.Helper()
	tree := t.TempDir()
	dir := filepath.Join(tree, "usr/lib/modules/6.1.0-t")
	files := map[string]string{
		"modules.dep":                     "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko\nkernel/lib/crc16.ko:\nkernel/crypto/crc32c_generic.ko:\nkernel/fs/overlayfs/overlay.ko:\n",
		"modules.softdep":                 "softdep ext4 pre: crypto-crc32c\n",
		"modules.alias":                   "alias crypto-crc32c crc32c_generic\n",
		"kernel/fs/ext4/ext4.ko":          "ext4",
		"kernel/lib/crc16.ko":             "crc16",
		"kernel/crypto/crc32c_generic.ko": "crc32c",
		"kernel/fs/overlayfs/overlay.ko":  "overlay",
	}
	for name, c := range files {
		p := filepath.Join(dir, name)
		mustMkdir(t, filepath.Dir(p))
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

func TestInitramfs(t *testing.T) {
	t.Parallel()
	tree := fakeKernelTree(t)
	initBin := filepath.Join(t.TempDir(), "strata")
	if err := os.WriteFile(initBin, staticELF(), 0o755); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	out := filepath.Join(outDir, "initramfs.img")
	args := []string{"initramfs", "--tree", tree, "--out", out, "--init", initBin, "--no-default-modules", "--module", "ext4", "--module", "overlay", "--json"}
	stdout, errOut, code := inspRun(t, args...)
	if code != 0 {
		t.Fatalf("strata %v = exit %d, %s", args, code, errOut)
	}
	var js initramfsJSON
	if err := json.Unmarshal([]byte(stdout), &js); err != nil {
		t.Fatalf("decoding --json output %q: %v", stdout, err)
	}
	var mods []string
	for _, m := range js.Modules {
		mods = append(mods, m.Name)
	}
	if got, want := strings.Join(mods, " "), "crc32c_generic crc16 ext4 overlay"; got != want || js.Kver != "6.1.0-t" || js.Init != initBin {
		t.Errorf("strata initramfs --json = modules %q, kver %q, init %q; want %q, 6.1.0-t, %s", got, js.Kver, js.Init, want, initBin)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Size() != js.Bytes || fi.Mode().Perm() != 0o644 {
		t.Errorf("strata initramfs wrote %v (%v), want %d bytes mode 0644 as --json says", fi, err, js.Bytes)
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 1 {
		t.Errorf("strata initramfs left %d files in the output directory, want only the archive", len(ents))
	}

	// Same inputs, same bytes.
	first, _ := os.ReadFile(out)
	out2 := filepath.Join(outDir, "again.img")
	args[4] = out2
	if _, errOut, code := inspRun(t, args...); code != 0 {
		t.Fatalf("strata %v = exit %d, %s", args, code, errOut)
	}
	if second, _ := os.ReadFile(out2); !bytes.Equal(first, second) {
		t.Errorf("strata initramfs twice: archives differ (%d and %d bytes)", len(first), len(second))
	}

	// zstd by default; --compression none writes the cpio archive it holds.
	if !bytes.HasPrefix(first, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Errorf("strata initramfs wrote %x..., want a zstd frame by default", first[:min(4, len(first))])
	}
	out3 := filepath.Join(outDir, "plain.img")
	args[4] = out3
	if _, errOut, code := inspRun(t, append(args, "--compression", "none")...); code != 0 {
		t.Fatalf("strata %v --compression none = exit %d, %s", args, code, errOut)
	}
	plain, _ := os.ReadFile(out3)
	if got, err := initramfs.Decompress(first, 1<<20); err != nil || !bytes.Equal(got, plain) || !bytes.HasPrefix(plain, []byte("070701")) {
		t.Errorf("the zstd archive decompresses to %d bytes (%v); want the %d bytes of the newc archive of --compression none", len(got), err, len(plain))
	}
}

func TestInitramfsErrors(t *testing.T) {
	t.Parallel()
	tree := fakeKernelTree(t)
	out := filepath.Join(t.TempDir(), "i.img")
	initBin := filepath.Join(t.TempDir(), "strata")
	if err := os.WriteFile(initBin, staticELF(), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no tree", []string{"--out", out}, exitUsage, `required flag(s) "tree" not set`},
		{"no kernel", []string{"--tree", t.TempDir(), "--out", out, "--init", initBin}, exitFailure, "cannot build initramfs: no kernel modules"},
		{"unknown module", []string{"--tree", tree, "--out", out, "--init", initBin, "--no-default-modules", "--module", "zfs"}, exitFailure, "cannot build initramfs: module zfs: not in"},
		{"dynamic init", []string{"--tree", tree, "--out", out, "--init", "/bin/sh"}, exitInvalid, "/bin/sh is dynamically linked"},
		{"unknown compression", []string{"--tree", tree, "--out", out, "--init", initBin, "--compression", "xz"}, exitUsage, `compression "xz": want one of [none gzip zstd]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"initramfs"}, tt.args...)
			_, errOut, code := inspRun(t, args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("strata %v = exit %d, %q; want exit %d, %q", args, code, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("strata initramfs wrote %s although it failed", out)
	}
}

// TestInitramfsDefaultInit checks that /init defaults to this executable:
// the test binary, which is accepted if static (CGO_ENABLED=0) and refused by
// name otherwise.
func TestInitramfsDefaultInit(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"initramfs", "--tree", fakeKernelTree(t), "--out", filepath.Join(t.TempDir(), "i.img"), "--no-default-modules", "--json"}
	stdout, errOut, code := inspRun(t, args...)
	var js initramfsJSON
	switch {
	case code == 0 && json.Unmarshal([]byte(stdout), &js) == nil && js.Init == exe:
	case code == exitInvalid && strings.Contains(errOut, exe+" is dynamically linked"):
	default:
		t.Errorf("strata %v = exit %d, %q, %q; want /init from %s", args, code, stdout, errOut, exe)
	}
}
