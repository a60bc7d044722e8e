package initramfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/u-root/u-root/pkg/cpio"
)

// fakeELF returns a minimal x86-64 ELF executable; with interp it has a
// PT_INTERP program header, as a dynamically linked binary does.
func fakeELF(interp bool) []byte {
	var b bytes.Buffer
	ident := []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	b.Write(ident)
	le := binary.LittleEndian
	var phnum uint16
	if interp {
		phnum = 1
	}
	binary.Write(&b, le, struct {
		Type, Machine                           uint16
		Version                                 uint32
		Entry, Phoff, Shoff                     uint64
		Flags                                   uint32
		Ehsize, Phentsize, Phnum, Shentsize, Sh uint16
		Shstrndx                                uint16
	}{Type: 2, Machine: 62, Version: 1, Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: phnum, Shentsize: 64})
	if interp {
		binary.Write(&b, le, struct {
			Type, Flags                                 uint32
			Off, Vaddr, Paddr, Filesz, Memsz, Alignment uint64
		}{Type: 3, Flags: 4, Off: 120, Filesz: 28, Memsz: 28, Alignment: 1})
		b.WriteString("/lib64/ld-linux-x86-64.so.2\x00")
	}
	b.WriteString("static program body")
	return b.Bytes()
}

// fakeModules writes a kernel module directory modelled on Debian 6.1's:
// ext4 with its softdep on crypto-crc32c, which two modules provide.
func fakeModules(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(root, "usr/lib/modules/6.1.0-test")
	files := map[string]string{
		"modules.dep": `kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/lib/crc16.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko
kernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko
kernel/drivers/ata/libata.ko:
kernel/drivers/scsi/sd_mod.ko:
kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko
kernel/drivers/nvme/host/nvme-core.ko:
kernel/drivers/ipmi/ipmi_msghandler.ko:
kernel/drivers/ipmi/ipmi_devintf.ko: kernel/drivers/ipmi/ipmi_msghandler.ko
kernel/broken.ko: kernel/missing.ko
`,
		"modules.softdep": `# Soft dependencies extracted from modules themselves.
softdep ext4 pre: crypto-crc32c
softdep jbd2 pre: crypto-crc32c
softdep cifs gcm
softdep ipmi_msghandler post: ipmi_devintf
softdep virtio_blk pre: no-such-alias
`,
		"modules.alias": `# Aliases extracted from modules themselves.
alias crypto-crc32c-intel crc32c_intel
alias crypto-crc32c crc32c_intel
alias crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias crc32c crc32c_generic
alias fs-overlay overlay
alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk
`,
		"modules.builtin": "kernel/fs/vfat/vfat.ko\n",
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
		if name != "modules.dep" {
			continue
		}
		for _, line := range strings.Split(content, "\n") {
			if mod, _, ok := strings.Cut(line, ":"); ok && mod != "kernel/missing.ko" {
				writeFile(t, filepath.Join(dir, mod), "module "+mod)
			}
		}
	}
	return dir
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func names(mods []Module) []string {
	out := make([]string, len(mods))
	for i, m := range mods {
		out[i] = m.Name
	}
	return out
}

func TestResolveModules(t *testing.T) {
	t.Parallel()
	dir := fakeModules(t, t.TempDir())
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr error
	}{
		{"ext4 with its softdep", []string{"ext4"}, []string{"crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"}, nil},
		{"virtio order as modprobe", []string{"virtio_pci", "virtio_blk"},
			[]string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk"}, nil},
		{"each module once", []string{"ext4", "jbd2", "ext4", "crc16"}, []string{"crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"}, nil},
		{"alias picks the generic module", []string{"crc32c"}, []string{"crc32c_generic"}, nil},
		{"explicit accelerated module", []string{"crc32c-intel"}, []string{"crc32c_intel"}, nil},
		{"dashes and underscores", []string{"nvme_core", "nvme"}, []string{"nvme_core", "nvme"}, nil},
		{"alias without a generic", []string{"fs-overlay"}, []string{"overlay"}, nil},
		{"glob alias", []string{"pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"}, []string{"virtio_ring", "virtio", "virtio_blk"}, nil},
		{"softdep post", []string{"ipmi_msghandler"}, []string{"ipmi_msghandler", "ipmi_devintf"}, nil},
		{"builtin is no error", []string{"vfat", "ext4"}, []string{"crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"}, nil},
		{"defaults", DefaultModules, []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
			"virtio_blk", "libata", "libahci", "ahci", "sd_mod", "nvme_core", "nvme", "crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"}, nil},
		{"unknown module", []string{"ext4", "zfs"}, nil, errdefs.ErrNotFound},
		{"dependency missing from modules.dep", []string{"broken"}, nil, errdefs.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ResolveModules(dir, tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ResolveModules(%v) = %v, %v; want %v", tt.in, names(got), err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveModules(%v) = %v", tt.in, err)
			}
			if d := cmp.Diff(tt.want, names(got)); d != "" {
				t.Errorf("ResolveModules(%v) mismatch (-want +got):\n%s", tt.in, d)
			}
		})
	}
	t.Run("no modules.dep", func(t *testing.T) {
		t.Parallel()
		_, err := ResolveModules(t.TempDir(), []string{"ext4"})
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "run depmod") {
			t.Errorf("ResolveModules(empty dir) = %v, want ErrNotFound saying to run depmod", err)
		}
	})
}

func TestModulesDir(t *testing.T) {
	t.Parallel()
	one := t.TempDir()
	fakeModules(t, one)
	two := t.TempDir()
	for _, d := range []string{"usr/lib/modules/6.1.0-a", "usr/lib/modules/6.1.0-b"} {
		if err := os.MkdirAll(filepath.Join(two, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	legacy := t.TempDir()
	if err := os.MkdirAll(filepath.Join(legacy, "lib/modules/5.10.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		tree    string
		kver    string
		want    string
		wantErr error
	}{
		{"only kernel", one, "", filepath.Join(one, "usr/lib/modules/6.1.0-test"), nil},
		{"named kernel", two, "6.1.0-b", filepath.Join(two, "usr/lib/modules/6.1.0-b"), nil},
		{"several kernels", two, "", "", errdefs.ErrInvalid},
		{"missing kernel", two, "6.1.0-c", "", errdefs.ErrNotFound},
		{"lib/modules tree", legacy, "", filepath.Join(legacy, "lib/modules/5.10.0"), nil},
		{"no kernel", t.TempDir(), "", "", errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ModulesDir(tt.tree, tt.kver)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("ModulesDir(%s, %q) = %q, %v; want %q, %v", tt.tree, tt.kver, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// readArchive reads a newc archive back with u-root's reader.
func readArchive(t *testing.T, b []byte) map[string]cpio.Record {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("reading the archive back: %v", err)
	}
	out := map[string]cpio.Record{}
	var order []string
	for _, r := range recs {
		if _, dup := out[r.Name]; dup {
			t.Errorf("archive holds %s twice", r.Name)
		}
		out[r.Name] = r
		order = append(order, r.Name)
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Errorf("archive entries not sorted: %s before %s", order[i-1], order[i])
		}
	}
	return out
}

func content(t *testing.T, r cpio.Record) string {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	if err != nil {
		t.Fatalf("reading %s: %v", r.Name, err)
	}
	return string(b)
}

// testOptions returns options for a tree with fake modules and a fake init.
func testOptions(t *testing.T) Options {
	t.Helper()
	tree := t.TempDir()
	dir := fakeModules(t, tree)
	initBin := filepath.Join(tree, "strata")
	writeFile(t, initBin, string(fakeELF(false)))
	return Options{Init: initBin, ModulesDir: dir, Modules: []string{"virtio_blk", "ext4"}}
}

func TestBuildContents(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	var buf bytes.Buffer
	if err := Build(&buf, opts); err != nil {
		t.Fatalf("Build = %v", err)
	}
	recs := readArchive(t, buf.Bytes())

	type meta struct {
		Mode           uint64
		UID, GID       uint64
		MTime          uint64
		Rmajor, Rminor uint64
	}
	want := map[string]meta{
		"init":               {Mode: cpio.S_IFREG | 0o755},
		"dev":                {Mode: cpio.S_IFDIR | 0o755},
		"dev/console":        {Mode: cpio.S_IFCHR | 0o600, Rmajor: 5, Rminor: 1},
		"dev/null":           {Mode: cpio.S_IFCHR | 0o666, Rmajor: 1, Rminor: 3},
		"tmp":                {Mode: cpio.S_IFDIR | 0o1777},
		"etc/initrd-modules": {Mode: cpio.S_IFREG | 0o644},
		"lib/modules/6.1.0-test/kernel/fs/ext4/ext4.ko": {Mode: cpio.S_IFREG | 0o644},
	}
	for _, d := range []string{"proc", "sys", "run", "sysroot", "newroot", "etc", "lib/modules/6.1.0-test/kernel/fs/ext4"} {
		want[d] = meta{Mode: cpio.S_IFDIR | 0o755}
	}
	for name, w := range want {
		r, ok := recs[name]
		if !ok {
			t.Errorf("Build: archive has no %s", name)
			continue
		}
		got := meta{r.Mode, r.UID, r.GID, r.MTime, r.Rmajor, r.Rminor}
		if got != w {
			t.Errorf("Build: %s = %+v, want %+v", name, got, w)
		}
	}
	initSrc, _ := os.ReadFile(opts.Init)
	if got := content(t, recs["init"]); got != string(initSrc) {
		t.Errorf("Build: /init differs from %s (%d bytes, want %d)", opts.Init, len(got), len(initSrc))
	}
	if got, want := content(t, recs["lib/modules/6.1.0-test/kernel/fs/ext4/ext4.ko"]), "module kernel/fs/ext4/ext4.ko"; got != want {
		t.Errorf("Build: ext4.ko = %q, want %q", got, want)
	}
	wantList := ""
	for _, m := range []string{"drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/block/virtio_blk",
		"crypto/crc32c_generic", "fs/jbd2/jbd2", "fs/mbcache", "lib/crc16", "fs/ext4/ext4"} {
		wantList += "/lib/modules/6.1.0-test/kernel/" + m + ".ko\n"
	}
	if got := content(t, recs["etc/initrd-modules"]); got != wantList {
		t.Errorf("Build: etc/initrd-modules =\n%s\nwant\n%s", got, wantList)
	}
	for name := range recs {
		if strings.Contains(name, "crc32c-intel") || strings.Contains(name, "overlay") {
			t.Errorf("Build: archive holds %s, which was not asked for", name)
		}
	}
}

func TestBuildReproducible(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	build := func(o Options) []byte {
		var buf bytes.Buffer
		if err := Build(&buf, o); err != nil {
			t.Fatalf("Build = %v", err)
		}
		return buf.Bytes()
	}
	a := build(opts)
	// Touching the inputs changes their mtimes, not the archive.
	if err := os.Chtimes(opts.Init, unixTime(12345), unixTime(12345)); err != nil {
		t.Fatal(err)
	}
	if b := build(opts); !bytes.Equal(a, b) {
		t.Errorf("Build twice: archives differ (%d and %d bytes)", len(a), len(b))
	}
	opts.MTime = 1700000000
	c := build(opts)
	if bytes.Equal(a, c) {
		t.Errorf("Build with MTime %d = the archive of MTime 0, want the new mtime in it", opts.MTime)
	}
	for name, r := range readArchive(t, c) {
		if r.MTime != 1700000000 {
			t.Errorf("Build with MTime: %s has mtime %d", name, r.MTime)
		}
	}
	opts.MTime = 0
	for _, tc := range []struct {
		c     Compression
		magic []byte
	}{{Gzip, []byte{0x1f, 0x8b}}, {Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}}} {
		opts.Compression = tc.c
		z1, z2 := build(opts), build(opts)
		if !bytes.Equal(z1, z2) || !bytes.HasPrefix(z1, tc.magic) {
			t.Errorf("Build with %s twice: %d and %d bytes, equal %v, magic %x; want identical streams starting %x",
				tc.c, len(z1), len(z2), bytes.Equal(z1, z2), z1[:min(4, len(z1))], tc.magic)
		}
		got, err := Decompress(z1, 1<<20)
		if err != nil || !bytes.Equal(got, a) {
			t.Errorf("Decompress(Build with %s) = %d bytes, %v; want the uncompressed archive's %d bytes", tc.c, len(got), err, len(a))
		}
		if _, err := Decompress(z1, int64(len(a)-1)); err == nil {
			t.Errorf("Decompress(Build with %s, limit %d) = nil error, want the limit refused", tc.c, len(a)-1)
		}
	}
}

// TestZstdWindow checks the zstd frame's header: a window of ZstdWindow
// (not one as large as the archive, which the kernel would allocate), no
// checksum, and an archive larger than the window still decompresses.
func TestZstdWindow(t *testing.T) {
	t.Parallel()
	opts := bigInit(t)
	var plain, z bytes.Buffer
	if err := Build(&plain, opts); err != nil {
		t.Fatal(err)
	}
	opts.Compression = Zstd
	if err := Build(&z, opts); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(z.Bytes()); err != nil {
		t.Fatalf("zstd header: %v", err)
	}
	if h.WindowSize != ZstdWindow || h.SingleSegment || h.HasCheckSum {
		t.Errorf("zstd header: window %d, single segment %v, checksum %v; want window %d, neither", h.WindowSize, h.SingleSegment, h.HasCheckSum, ZstdWindow)
	}
	got, err := Decompress(z.Bytes(), 1<<30)
	if err != nil || !bytes.Equal(got, plain.Bytes()) {
		t.Errorf("Decompress = %d bytes, %v; want the uncompressed archive's %d bytes", len(got), err, plain.Len())
	}
}

// bigInit returns testOptions with an incompressible /init of 3 zstd
// windows: the encoder must keep its matches within one window, and a frame
// of a small archive is sized to the archive, not to the window.
func bigInit(t *testing.T) Options {
	t.Helper()
	opts := testOptions(t)
	big := make([]byte, 3*ZstdWindow)
	rand.New(rand.NewSource(1)).Read(big)
	writeFile(t, opts.Init, string(fakeELF(false))+string(big))
	return opts
}

func TestParseCompression(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Compression{"": None, "none": None, "gzip": Gzip, "zstd": Zstd} {
		if got, err := ParseCompression(in); got != want || err != nil {
			t.Errorf("ParseCompression(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseCompression("xz"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("ParseCompression(xz) = %v, want ErrInvalid", err)
	}
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	base := testOptions(t)
	dyn := filepath.Join(t.TempDir(), "dyn")
	writeFile(t, dyn, string(fakeELF(true)))
	script := filepath.Join(t.TempDir(), "init.sh")
	writeFile(t, script, "#!/bin/sh\n")
	tests := []struct {
		name    string
		mod     func(*Options)
		wantErr string
	}{
		{"no init", func(o *Options) { o.Init = "" }, "no init binary"},
		{"dynamic init", func(o *Options) { o.Init = dyn }, "dynamically linked"},
		{"script init", func(o *Options) { o.Init = script }, "init binary"},
		{"unknown module", func(o *Options) { o.Modules = []string{"zfs"} }, "module zfs: not in"},
		{"module file missing", func(o *Options) {
			os.Remove(filepath.Join(o.ModulesDir, "kernel/fs/overlayfs/overlay.ko"))
			o.Modules = []string{"overlay"}
		}, "adding lib/modules/6.1.0-test/kernel/fs/overlayfs/overlay.ko"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := base
			opts.ModulesDir = fakeModules(t, t.TempDir())
			tt.mod(&opts)
			err := Build(io.Discard, opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Build = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBuildForTree(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	tree := strings.TrimSuffix(opts.ModulesDir, "/usr/lib/modules/6.1.0-test")
	var buf bytes.Buffer
	if err := BuildForTree(&buf, tree, "", opts.Init, []string{"overlay"}); err != nil {
		t.Fatalf("BuildForTree = %v", err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("BuildForTree wrote %x..., want a zstd frame", buf.Bytes()[:4])
	}
	plain, err := Decompress(buf.Bytes(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	recs := readArchive(t, plain)
	for _, m := range []string{"kernel/drivers/nvme/host/nvme.ko", "kernel/drivers/ata/ahci.ko", "kernel/fs/overlayfs/overlay.ko"} {
		if _, ok := recs["lib/modules/6.1.0-test/"+m]; !ok {
			t.Errorf("BuildForTree: archive has no %s", m)
		}
	}
}

func unixTime(sec int64) time.Time { return time.Unix(sec, 0) }

func TestBuildFirstBootModules(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	var plain bytes.Buffer
	if err := Build(&plain, opts); err != nil {
		t.Fatalf("Build = %v", err)
	}
	if _, ok := readArchive(t, plain.Bytes())[FirstBootModulesList]; ok {
		t.Errorf("Build without first-boot modules: archive has %s", FirstBootModulesList)
	}
	// virtio_blk is loaded on every boot already; the kernel has no such_module.
	opts.FirstBootModules = []string{"virtio_blk", "overlay", "no_such_module"}
	opts.NetworkModules = []string{"overlay", "nvme"}
	var buf bytes.Buffer
	if err := Build(&buf, opts); err != nil {
		t.Fatalf("Build = %v", err)
	}
	recs := readArchive(t, buf.Bytes())
	if got, want := content(t, recs[FirstBootModulesList]), "/lib/modules/6.1.0-test/kernel/fs/overlayfs/overlay.ko\n"; got != want {
		t.Errorf("Build: %s = %q, want %q", FirstBootModulesList, got, want)
	}
	if _, ok := recs["lib/modules/6.1.0-test/kernel/fs/overlayfs/overlay.ko"]; !ok {
		t.Errorf("Build: archive has no overlay.ko")
	}
	if got, want := content(t, recs[NetworkModulesList]), "/lib/modules/6.1.0-test/kernel/drivers/nvme/host/nvme-core.ko\n/lib/modules/6.1.0-test/kernel/drivers/nvme/host/nvme.ko\n"; got != want {
		t.Errorf("Build: %s = %q, want %q (overlay is in the first-boot list already)", NetworkModulesList, got, want)
	}
	if got := content(t, recs[ModulesList]); strings.Contains(got, "overlay") {
		t.Errorf("Build: %s = %q, want no first-boot module in it", ModulesList, got)
	}
}
