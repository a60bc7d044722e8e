//go:build peer

package initramfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/testutil"
)

// TestBuildCpioPeer lists the archive with GNU cpio, the tool the kernel's
// initramfs format follows, and compares names, types, modes, owners and
// device numbers with what Build wrote.
func TestBuildCpioPeer(t *testing.T) {
	t.Parallel()
	cpioBin := testutil.RequireTool(t, "cpio", "cpio")
	var buf bytes.Buffer
	if err := Build(&buf, testOptions(t)); err != nil {
		t.Fatalf("Build = %v", err)
	}
	cmd := exec.Command(cpioBin, "-itv", "--quiet", "--numeric-uid-gid")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -itv: %v", err)
	}
	// "crw-------   1 0 0 5,   1 Jan  1  1970 dev/console"
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(devNum.ReplaceAllString(line, "$1,$2"))
		if len(f) < 9 {
			t.Fatalf("cpio -itv line %q: want 9 fields", line)
		}
		got[f[len(f)-1]] = strings.Join([]string{f[0], f[2], f[3], f[4], f[7]}, " ")
	}
	want := map[string]string{}
	for name, r := range readArchive(t, buf.Bytes()) {
		size := "0"
		switch r.Mode & 0o170000 {
		case 0o020000:
			size = "5,1"
			if name == "dev/null" {
				size = "1,3"
			}
		case 0o100000:
			size = strconv.FormatUint(r.FileSize, 10)
		}
		want[name] = strings.Join([]string{lsMode(r.Mode), "0", "0", size, "1970"}, " ")
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("cpio -itv listing mismatch (-Build +cpio):\n%s", d)
	}
	names := make([]string, 0, len(got))
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, must := range []string{"init", "dev/console", "etc/initrd-modules", "lib/modules/6.1.0-test/kernel/fs/ext4/ext4.ko"} {
		if _, ok := got[must]; !ok {
			t.Errorf("cpio -it lists %v, want %s among them", names, must)
		}
	}
}

// devNum matches the "major,   minor" column of a device node.
var devNum = regexp.MustCompile(`(\d+),\s+(\d+)`)

// lsMode renders a cpio mode as ls -l does.
func lsMode(m uint64) string {
	typ := map[uint64]byte{0o040000: 'd', 0o100000: '-', 0o020000: 'c', 0o120000: 'l'}[m&0o170000]
	b := []byte{typ}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	if m&0o1000 != 0 {
		if b[9] == 'x' {
			b[9] = 't'
		} else {
			b[9] = 'T'
		}
	}
	return string(b)
}

// TestZstdPeer decompresses the zstd archive with the reference zstd tool:
// it gives back the uncompressed archive byte for byte, and zstd -lv reads
// the window and checksum settings the kernel's decoder sees.
func TestZstdPeer(t *testing.T) {
	t.Parallel()
	zstdBin := testutil.RequireTool(t, "zstd", "zstd")
	opts := bigInit(t)
	var plain, z bytes.Buffer
	if err := Build(&plain, opts); err != nil {
		t.Fatal(err)
	}
	opts.Compression = Zstd
	if err := Build(&z, opts); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "initrd.zst")
	if err := os.WriteFile(f, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(zstdBin, "-dc", f).Output()
	if err != nil || !bytes.Equal(out, plain.Bytes()) {
		t.Errorf("zstd -dc = %d bytes (%v), want the uncompressed archive's %d bytes", len(out), err, plain.Len())
	}
	info, err := exec.Command(zstdBin, "-lv", f).CombinedOutput()
	if err != nil {
		t.Fatalf("zstd -lv: %v\n%s", err, info)
	}
	for _, want := range []string{"Window Size: 8.00 MiB (8388608 B)", "Check: None"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("zstd -lv says:\n%s\nwant %q", info, want)
		}
	}
}
