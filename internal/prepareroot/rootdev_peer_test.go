//go:build peer

package prepareroot

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestReadGPTPeer reads a table written by sfdisk and compares it with
// sfdisk's own JSON dump.
func TestReadGPTPeer(t *testing.T) {
	t.Parallel()
	sfdisk := testutil.RequireTool(t, "sfdisk", "fdisk")
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.Truncate(mustCreate(t, img), 64<<20); err != nil {
		t.Fatal(err)
	}
	script := `label: gpt
start=1MiB, size=8MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP
start=9MiB, size=32MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="strata root", uuid=0FC63DAF-8483-4772-8E79-3D69D8477DE4
`
	cmd := exec.Command(sfdisk, "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	out, err := exec.Command(sfdisk, "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var dump struct {
		PartitionTable struct {
			Partitions []struct {
				Name string `json:"name"`
				UUID string `json:"uuid"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &dump); err != nil {
		t.Fatalf("decoding sfdisk --json: %v", err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parts, err := ReadGPT(f)
	if err != nil {
		t.Fatalf("ReadGPT = %v", err)
	}
	if len(dump.PartitionTable.Partitions) != 2 {
		t.Fatalf("sfdisk lists %d partitions, want 2", len(dump.PartitionTable.Partitions))
	}
	for i, p := range dump.PartitionTable.Partitions {
		want := GPTPartition{Name: p.Name, UUID: strings.ToLower(p.UUID)}
		if parts[i] != want {
			t.Errorf("ReadGPT entry %d = %+v, want %+v (sfdisk)", i+1, parts[i], want)
		}
	}
}

// TestReadExt4SuperblockPeer reads a filesystem made by mkfs.ext4 and
// compares with blkid's probe.
func TestReadExt4SuperblockPeer(t *testing.T) {
	t.Parallel()
	mkfs := testutil.RequireTool(t, "mkfs.ext4", "e2fsprogs")
	blkid := testutil.RequireTool(t, "blkid", "util-linux")
	img := filepath.Join(t.TempDir(), "fs.img")
	if out, err := exec.Command(mkfs, "-q", "-F", "-L", "sysroot", "-U", "6c1e2d4a-9b01-4c3e-8f11-223344556677", img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	out, err := exec.Command(blkid, "-p", "-o", "export", img).Output()
	if err != nil {
		t.Fatalf("blkid: %v", err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			want[k] = v
		}
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	label, uuid, err := ReadExt4Superblock(f)
	if err != nil || label != want["LABEL"] || uuid != want["UUID"] {
		t.Errorf("ReadExt4Superblock = %q, %q, %v; want %q, %q (blkid)", label, uuid, err, want["LABEL"], want["UUID"])
	}
}

func mustCreate(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}
