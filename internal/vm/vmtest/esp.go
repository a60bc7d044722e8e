package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/distro"
	"github.com/strata-os/strata/internal/testutil"
)

// SystemdBoot is Debian's systemd-boot EFI binary (package systemd-boot-efi).
const SystemdBoot = distro.SystemdBootEFI

// ESP describes a GPT disk with one EFI system partition holding systemd-boot (at the
// removable-media path EFI/BOOT/BOOTX64.EFI, so no NVRAM boot entry is needed) and BLS type #1
// entries (docs/boot.md).
type ESP struct {
	// Files maps ESP paths ("vmlinuz", "loader/entries/a.conf") to host files to copy.
	Files map[string]string
	// Entries maps entry file names ("os-a.conf", "os-b+3.conf") to their contents.
	Entries map[string]string
	// LoaderConf is loader/loader.conf; "" means a zero timeout and no automatic entries.
	LoaderConf string
	SizeMiB    int // the ESP's size; 0 means 64
}

// DefaultLoaderConf boots the first entry at once, without firmware or auto entries.
const DefaultLoaderConf = "timeout 0\neditor no\nauto-entries no\nauto-firmware no\nconsole-mode keep\n"

// ESPDisk builds the disk image of spec with sfdisk, mkfs.vfat and mtools, without loop
// devices (docs/vm.md), and returns its path.
func ESPDisk(t testing.TB, spec ESP) string {
	t.Helper()
	testutil.RequireTool(t, "sfdisk", "fdisk")
	testutil.RequireTool(t, "mkfs.vfat", "dosfstools")
	testutil.RequireTool(t, "mcopy", "mtools")
	if _, err := os.Stat(SystemdBoot); err != nil {
		t.Fatalf("%s missing: install the Debian package systemd-boot-efi (scripts/deps)", SystemdBoot)
	}
	size := spec.SizeMiB
	if size == 0 {
		size = 64
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	run := func(stdin string, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	// 1 MiB for the primary GPT before the ESP, 1 MiB for the backup after it.
	if err := f.Truncate(int64(size+2) << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(fmt.Sprintf("label: gpt\nstart=1MiB, size=%dMiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP\n", size), "sfdisk", "-q", img)
	// -s 1: FAT32 on a small partition needs one sector per cluster, or mtools later runs out of
	// directory slots (docs/vm.md).
	run("", "mkfs.vfat", "-F", "32", "-S", "512", "-s", "1", "-n", "ESP", "--offset=2048", img, fmt.Sprint(size*1024))
	esp := img + "@@1M"
	files := map[string]string{"EFI/BOOT/BOOTX64.EFI": SystemdBoot}
	for k, v := range spec.Files {
		files[k] = v
	}
	conf := spec.LoaderConf
	if conf == "" {
		conf = DefaultLoaderConf
	}
	texts := map[string]string{"loader/loader.conf": conf}
	for name, body := range spec.Entries {
		texts["loader/entries/"+name] = body
	}
	for name, body := range texts {
		p := filepath.Join(dir, "text-"+strings.ReplaceAll(name, "/", "_"))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = p
	}
	dirs := map[string]bool{"loader/entries": true}
	for name := range files {
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted) // parents before children
	for _, d := range sorted {
		run("", "mmd", "-i", esp, "::/"+d)
	}
	for name, src := range files {
		run("", "mcopy", "-i", esp, src, "::/"+name)
	}
	return img
}

// ESPFiles lists the files on the disk's ESP (mdir -/ -b), e.g. to see boot-counter renames.
func ESPFiles(t testing.TB, img string) []string {
	t.Helper()
	cmd := exec.Command("mdir", "-i", img+"@@1M", "-/", "-b", "::/")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mdir %s: %v\n%s", img, err, out)
	}
	var files []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimPrefix(strings.TrimSpace(l), "::/"); l != "" && !strings.HasSuffix(l, "/") {
			files = append(files, l)
		}
	}
	sort.Strings(files)
	return files
}
