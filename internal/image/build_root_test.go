//go:build root && peer

package image_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/bootloader"
	"github.com/strata-os/strata/internal/image"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
)

// tool runs a peer tool and returns its output.
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func TestBuild(t *testing.T) {
	requireImageTools(t, [2]string{"fsck.vfat", "dosfstools"}, [2]string{"mdir", "mtools"},
		[2]string{"e2fsck", "e2fsprogs"}, [2]string{"debugfs", "e2fsprogs"})
	src, commit := fakeCommit(t)
	// A relative output path: the tools run in directories of their own.
	outDir := t.TempDir()
	t.Chdir(outDir)
	out := filepath.Join(outDir, "disk.img")
	start := time.Now()
	res, err := image.Build(context.Background(), image.Options{Repo: src, Ref: "fakeos/x86_64/test", Out: "disk.img",
		Kargs: []string{"x=1"}, RemoteURL: "http://10.0.2.2:8080"})
	if err != nil {
		t.Fatalf("Build = %v", err)
	}
	t.Logf("Build: %v, disk %d MiB, root %d MiB, stages %v", time.Since(start), res.Size>>20, res.RootSize>>20, res.Stages)
	if res.Commit != commit || res.OSName != "fakeos" || res.Refspec != "origin:fakeos/x86_64/test" {
		t.Errorf("Build = commit %s, os %s, refspec %s, want %s, fakeos, origin:fakeos/x86_64/test", res.Commit, res.OSName, res.Refspec, commit)
	}
	wantKargs := []string{"root=LABEL=strata-root", "rw", "console=ttyS0", "quiet", "loglevel=3", "x=1"}
	if diff := cmp.Diff(wantKargs, res.Kargs); diff != "" {
		t.Errorf("Build kargs (-want +got):\n%s", diff)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".strata-image-*")); len(left) != 0 || fileExists(out+".tmp") {
		t.Errorf("work files left next to the image: %v", left)
	}

	// Partitions.
	var pt struct {
		PartitionTable struct {
			Label      string
			Partitions []struct {
				Start, Size int64
				Type, Name  string
			}
		}
	}
	if err := json.Unmarshal([]byte(tool(t, "sfdisk", "-J", out)), &pt); err != nil {
		t.Fatal(err)
	}
	type part struct {
		Start, Size int64
		Type, Name  string
	}
	var parts []part
	for _, p := range pt.PartitionTable.Partitions {
		parts = append(parts, part{p.Start, p.Size, p.Type, p.Name})
	}
	rootSectors := res.RootSize / 512
	want := []part{
		{2048, 256 << 11, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "ESP"},
		{2048 + 256<<11, rootSectors, "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "root"},
	}
	if pt.PartitionTable.Label != "gpt" || !cmp.Equal(want, parts) {
		t.Errorf("sfdisk -J = %s %+v, want gpt %+v", pt.PartitionTable.Label, parts, want)
	}

	// ESP.
	espImg := filepath.Join(t.TempDir(), "esp.img")
	tool(t, "dd", "if="+out, "of="+espImg, "bs=1M", "skip=1", "count=256", "status=none")
	tool(t, "fsck.vfat", "-n", espImg)
	esp := out + "@@1M"
	files := strings.Fields(tool(t, "mdir", "-i", esp, "-/", "-b", "::/"))
	var gotFiles []string
	for _, f := range files {
		if !strings.HasSuffix(f, "/") {
			gotFiles = append(gotFiles, strings.TrimPrefix(f, "::/"))
		}
	}
	kdir := "strata/fakeos-" + bootCsum(t)
	wantFiles := []string{"EFI/BOOT/BOOTX64.EFI", "loader/entries/" + res.Entry, "loader/loader.conf",
		kdir + "/initramfs-" + sysroottest.FakeKernelVersion + ".img", kdir + "/vmlinuz-" + sysroottest.FakeKernelVersion}
	if diff := cmp.Diff(wantFiles, sortStrings(gotFiles)); diff != "" {
		t.Errorf("ESP files (-want +got):\n%s", diff)
	}
	n, ok := bootloader.ParseName(res.Entry)
	if !ok || n.Ord != 1 || n.OS != "fakeos" || n.Counted {
		t.Errorf("ESP entry %q, want strata-1-fakeos-ID.conf without a boot counter", res.Entry)
	}
	entry := tool(t, "mtype", "-i", esp, "::/loader/entries/"+res.Entry)
	wantEntry := regexp.MustCompile(`(?s)^# strata-deployment fakeos ` + commit.String() + `\.0\ntitle Fake OS 1 \(ostree:0\)\nlinux /` + kdir + `/vmlinuz-\S+\ninitrd /` + kdir + `/initramfs-\S+\.img\noptions root=LABEL=strata-root rw console=ttyS0 quiet loglevel=3 x=1 ostree=/ostree/boot\.1/fakeos/\w+/0\n$`)
	if !wantEntry.MatchString(entry) {
		t.Errorf("ESP entry text:\n%s\nwant it to match %s", entry, wantEntry)
	}
	if got := tool(t, "mtype", "-i", esp, "::/loader/loader.conf"); !strings.Contains(got, "default strata-*") {
		t.Errorf("loader.conf = %q, want default strata-*", got)
	}

	// Root filesystem: extract it, check it, and look inside.
	rootImg := filepath.Join(t.TempDir(), "root.img")
	tool(t, "dd", "if="+out, "of="+rootImg, "bs=1M", "skip=257", "count="+itoa(res.RootSize>>20), "status=none")
	tool(t, "e2fsck", "-fn", rootImg)
	if label := strings.TrimSpace(tool(t, "e2label", rootImg)); label != "strata-root" {
		t.Errorf("root label = %q, want strata-root", label)
	}
	dep := "/ostree/deploy/fakeos/deploy/" + commit.String() + ".0"
	fstab := tool(t, "debugfs", "-R", "cat "+dep+"/etc/fstab", rootImg)
	if !strings.Contains(fstab, "# static file system information\n") || !strings.Contains(fstab, image.FstabESP+"\n") {
		t.Errorf("deployment /etc/fstab = %q, want the commit's plus %q", fstab, image.FstabESP)
	}
	for _, p := range []string{"/boot/loader", "/boot/efi", "/ostree/boot.1", dep + ".origin", dep + "/usr/lib/hello", "/ostree/deploy/fakeos/var"} {
		if out := debugfsStat(t, rootImg, p); !strings.Contains(out, "Inode:") {
			t.Errorf("root filesystem has no %s", p)
		}
	}
	// The OS has journald: the first boot's journal persists too.
	if out := debugfsStat(t, rootImg, "/ostree/deploy/fakeos/var/log/journal"); !strings.Contains(out, "Type: directory") {
		t.Errorf("stateroot var/log/journal = %q, want a directory", out)
	}
	if origin := tool(t, "debugfs", "-R", "cat "+dep+".origin", rootImg); !strings.Contains(origin, "refspec=origin:fakeos/x86_64/test") {
		t.Errorf("origin = %q, want refspec=origin:fakeos/x86_64/test", origin)
	}
	if cfg := tool(t, "debugfs", "-R", "cat /ostree/repo/config", rootImg); !strings.Contains(cfg, "url=http://10.0.2.2:8080") {
		t.Errorf("sysroot repository config = %q, want remote origin's url", cfg)
	}
	if ref := tool(t, "debugfs", "-R", "cat /ostree/repo/refs/remotes/origin/fakeos/x86_64/test", rootImg); strings.TrimSpace(ref) != commit.String() {
		t.Errorf("refs/remotes/origin/fakeos/x86_64/test = %q, want %s", ref, commit)
	}
	// Hard links survive mkfs.ext4 -d: the deployment's file is the
	// repository's object.
	links := regexp.MustCompile(`Links: (\d+)`).FindStringSubmatch(tool(t, "debugfs", "-R", "stat "+dep+"/usr/lib/hello", rootImg))
	if links == nil || links[1] == "1" {
		t.Errorf("deployment file usr/lib/hello has links %v, want more than 1 (hard link to the repository object)", links)
	}
}

func bootCsum(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sysroottest.FakeOS{}.WriteTree(t, filepath.Join(dir, "t"))
	k, _ := os.ReadFile(filepath.Join(dir, "t/usr/lib/modules", sysroottest.FakeKernelVersion, "vmlinuz"))
	i, _ := os.ReadFile(filepath.Join(dir, "t/usr/lib/modules", sysroottest.FakeKernelVersion, "initramfs.img"))
	return sha256hex(append(k, i...))
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// debugfsStat returns debugfs's stat output of p (with its errors: debugfs
// exits 0 on a missing file).
func debugfsStat(t *testing.T, img, p string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "stat "+p, img).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs stat %s: %v\n%s", p, err, out)
	}
	return string(out)
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sortStrings(s []string) []string { slices.Sort(s); return s }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
