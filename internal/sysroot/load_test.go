package sysroot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

const (
	csumA = "aaaa5e3ec0bb6d4ef6b1c8d1a9c5b0f5e3ec0bb6d4ef6b1c8d1a9c5b0f5e3ec0"
	csumB = "bbbb5e3ec0bb6d4ef6b1c8d1a9c5b0f5e3ec0bb6d4ef6b1c8d1a9c5b0f5e3ec0"
	bcsum = "88e5fa6e0596b2c2d4983d41f74ca9af221155fdd7270654a9aa81a093d76b18"
)

// handMade builds, without strata's writer, the layout ostree admin
// leaves after two deploys of fakeos (docs/formats/sysroot.md): boot version 1,
// subboot version 1; B.0 is the newer default, A.0 the older.
func handMade(t *testing.T) string {
	t.Helper()
	s := filepath.Join(t.TempDir(), "sysroot")
	if err := Init(s, "fakeos"); err != nil {
		t.Fatal(err)
	}
	dep := "ostree/deploy/fakeos/deploy/"
	for _, d := range []string{csumA + ".0", csumB + ".0"} {
		writeFiles(t, s, map[string]string{dep + d + "/usr/lib/os-release": "ID=fakeos\n", dep + d + "/etc/hostname": "x\n"})
	}
	writeFiles(t, s, map[string]string{
		dep + csumA + ".0.origin":                    "[origin]\nrefspec=fakeos/stable\n\n[libostree-transient]\npinned=true\n",
		dep + csumB + ".0.origin":                    "[origin]\nrefspec=" + csumB + "\n",
		"boot/loader.1/entries/ostree-2-fakeos.conf": "title Fake OS (ostree:0)\nversion 2\noptions root=LABEL=root ostree=/ostree/boot.1/fakeos/" + bcsum + "/0 rw\nlinux /ostree/fakeos-" + bcsum + "/vmlinuz-5.10.0-fake\n",
		"boot/loader.1/entries/ostree-1-fakeos.conf": "title Fake OS (ostree:1)\nversion 1\noptions root=LABEL=root rw ostree=/ostree/boot.1/fakeos/" + bcsum + "/1\nlinux /ostree/fakeos-" + bcsum + "/vmlinuz-5.10.0-fake\n",
		"boot/loader.1/entries/other.conf":           "title not ours\nversion 9\n",
		"boot/loader.0/entries/ostree-1-fakeos.conf": "stale\n",
	})
	links := map[string]string{
		"boot/loader":                            "loader.1",
		"boot/boot":                              ".",
		"ostree/boot.1":                          "boot.1.1",
		"ostree/boot.1.1/fakeos/" + bcsum + "/0": "../../../deploy/fakeos/deploy/" + csumB + ".0",
		"ostree/boot.1.1/fakeos/" + bcsum + "/1": "../../../deploy/fakeos/deploy/" + csumA + ".0",
	}
	for l, target := range links {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(s, l)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(s, l)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

type loaded struct {
	Name, Refspec, Kargs string
	Index, BootSerial    int
	Pinned, Booted       bool
}

func summarize(ds []Deployment) []loaded {
	var out []loaded
	for _, d := range ds {
		out = append(out, loaded{d.Name(), d.Refspec, strings.Join(d.Kargs, " "), d.Index, d.BootSerial, d.Pinned, d.Booted})
	}
	return out
}

func TestOpenHandMade(t *testing.T) {
	t.Parallel()
	s := handMade(t)
	sr, err := Open(s)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer sr.Close()
	want := []loaded{
		{csumB + ".0", csumB, "root=LABEL=root rw", 0, 0, false, false},
		{csumA + ".0", "fakeos/stable", "root=LABEL=root rw", 1, 1, true, false},
	}
	if diff := cmp.Diff(want, summarize(sr.Deployments())); diff != "" {
		t.Errorf("Deployments() mismatch (-want +got):\n%s", diff)
	}
	if bv, sub := sr.BootVersion(); bv != 1 || sub != 1 {
		t.Errorf("BootVersion() = %d, %d, want 1, 1", bv, sub)
	}
	ds := sr.Deployments()
	if ds[0].ostreePos != 1 || ds[1].ostreePos != 2 {
		t.Errorf("ostree= positions = %d, %d, want 1, 2", ds[0].ostreePos, ds[1].ostreePos)
	}
	if _, ok := sr.Booted(); ok {
		t.Errorf("Booted() found a deployment in a sysroot that is not /")
	}
	if r, ok := sr.RollbackDeployment(); !ok || r.Index != 1 {
		t.Errorf("RollbackDeployment() = %d, %v, want index 1", r.Index, ok)
	}
	if m, ok := sr.MergeDeployment("fakeos"); !ok || m.Index != 0 {
		t.Errorf("MergeDeployment(fakeos) = %d, %v, want index 0", m.Index, ok)
	}
	if _, ok := sr.MergeDeployment("other"); ok {
		t.Errorf("MergeDeployment(other) found one")
	}
}

func TestOpenBooted(t *testing.T) {
	t.Parallel()
	s := handMade(t)
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	writeFiles(t, filepath.Dir(cmdline), map[string]string{"cmdline": "BOOT_IMAGE=x root=LABEL=root ostree=/ostree/boot.1/fakeos/" + bcsum + "/1 rw\n"})
	sr, err := Open(s, WithProcCmdline(cmdline))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer sr.Close()
	b, ok := sr.Booted()
	if !ok || b.Name() != csumA+".0" || b.Index != 1 {
		t.Fatalf("Booted() = %s (index %d), %v, want %s.0 at 1", b.Name(), b.Index, ok, csumA)
	}
	if p, ok := sr.Pending(); !ok || p.Index != 0 {
		t.Errorf("Pending() = %d, %v, want index 0", p.Index, ok)
	}
	if _, ok := sr.RollbackDeployment(); ok {
		t.Errorf("RollbackDeployment() found one after the last booted deployment")
	}
	if m, _ := sr.MergeDeployment("fakeos"); m.Index != 1 {
		t.Errorf("MergeDeployment(fakeos) = index %d, want the booted 1", m.Index)
	}
	keep := sr.keepList()
	if len(keep) != 2 {
		t.Errorf("keepList() = %d deployments, want both (pending and booted)", len(keep))
	}
}

func TestOpenCorrupt(t *testing.T) {
	t.Parallel()
	entry := "boot/loader.1/entries/ostree-2-fakeos.conf"
	tests := []struct {
		name   string
		damage func(t *testing.T, s string)
		want   error
	}{
		{"loader is a directory", func(t *testing.T, s string) {
			os.Remove(filepath.Join(s, "boot/loader"))
			os.Mkdir(filepath.Join(s, "boot/loader"), 0o755)
		}, errdefs.ErrCorrupt},
		{"loader points elsewhere", func(t *testing.T, s string) {
			os.Remove(filepath.Join(s, "boot/loader"))
			os.Symlink("loader.7", filepath.Join(s, "boot/loader"))
		}, errdefs.ErrCorrupt},
		{"entry without ostree=", func(t *testing.T, s string) {
			writeFiles(t, s, map[string]string{entry: "title x\nversion 2\noptions rw\n"})
		}, errdefs.ErrCorrupt},
		{"entry with a bad ostree=", func(t *testing.T, s string) {
			writeFiles(t, s, map[string]string{entry: "version 2\noptions ostree=/boot/x\n"})
		}, errdefs.ErrCorrupt},
		{"boot link missing", func(t *testing.T, s string) {
			os.Remove(filepath.Join(s, "ostree/boot.1.1/fakeos/"+bcsum+"/0"))
		}, errdefs.ErrCorrupt},
		{"deployment dir missing", func(t *testing.T, s string) {
			os.RemoveAll(filepath.Join(s, "ostree/deploy/fakeos/deploy/"+csumB+".0"))
		}, errdefs.ErrCorrupt},
		{"bad origin", func(t *testing.T, s string) {
			writeFiles(t, s, map[string]string{"ostree/deploy/fakeos/deploy/" + csumB + ".0.origin": "refspec without group\n"})
		}, errdefs.ErrCorrupt},
		{"no repo", func(t *testing.T, s string) { os.RemoveAll(filepath.Join(s, "ostree/repo")) }, errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := handMade(t)
			tt.damage(t, s)
			sr, err := Open(s)
			if err == nil {
				sr.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Open(%s) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

func TestAllocateSerial(t *testing.T) {
	t.Parallel()
	s := handMade(t)
	sr, err := Open(s)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	for _, d := range []string{csumA + ".3", csumA + ".x", csumB + "1.0"} {
		os.MkdirAll(filepath.Join(s, "ostree/deploy/fakeos/deploy", d), 0o755)
	}
	for _, tt := range []struct {
		os, csum string
		want     int
	}{{"fakeos", csumA, 4}, {"fakeos", csumB, 1}, {"other", csumA, 0}, {"fakeos", strings.Repeat("c", 64), 0}} {
		c, _, _ := parseDeployName(tt.csum + ".0")
		got, err := sr.allocateSerial(tt.os, c)
		if err != nil || got != tt.want {
			t.Errorf("allocateSerial(%s, %.8s) = %d, %v, want %d", tt.os, tt.csum, got, err, tt.want)
		}
	}
}

// imagePuller records what an upgrade asks of it and finds a new digest.
type imagePuller struct{ imgref, have string }

func (p *imagePuller) PullImage(_ context.Context, _ *repo.Repo, imgref, have string, check bool) (ostree.Checksum, string, error) {
	p.imgref, p.have = imgref, have
	return ostree.Checksum{}, "sha256:new", nil
}

// TestUpgradeFollowsPendingOrigin: on a booted node with a pending deployment (a rebase not
// booted yet), upgrade follows the pending deployment's origin, as rpm-ostree does, not the
// booted one's.
func TestUpgradeFollowsPendingOrigin(t *testing.T) {
	t.Parallel()
	s := handMade(t)
	imgref := "ostree-unverified-registry:registry.example/fakeos:stable"
	writeFiles(t, s, map[string]string{"ostree/deploy/fakeos/deploy/" + csumB + ".0.origin": "[origin]\ncontainer-image-reference=" + imgref + "\n\n[strata-image]\nmanifest-digest=sha256:old\n"})
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	writeFiles(t, filepath.Dir(cmdline), map[string]string{"cmdline": "ostree=/ostree/boot.1/fakeos/" + bcsum + "/1\n"})
	sr, err := Open(s, WithProcCmdline(cmdline))
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	p := &imagePuller{}
	res, err := sr.Upgrade(context.Background(), nil, UpgradeOptions{Check: true, Images: p})
	if err != nil {
		t.Fatal(err)
	}
	if res.Base.Index != 0 || res.Origin != OriginImage || p.imgref != imgref || p.have != "sha256:old" || !res.Changed {
		t.Errorf("Upgrade --check = base %d, origin %s, asked %q with %q, changed %v; want the pending deployment's image %s from sha256:old, changed",
			res.Base.Index, res.Origin, p.imgref, p.have, res.Changed, imgref)
	}
}
