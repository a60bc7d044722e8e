package sysroot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

func TestReadBootEntries(t *testing.T) {
	t.Parallel()
	s := handMade(t)
	// The default's entry as another writer may leave it: tab separators,
	// a repeated title and options (the last wins), an overlay initrd.
	link := "/ostree/boot.1/fakeos/" + bcsum + "/0"
	writeFiles(t, s, map[string]string{"boot/loader.1/entries/ostree-2-fakeos.conf": "# a comment\n" +
		"title\tOld title\ntitle\tFake OS (ostree:0)\nversion 2\n" +
		"options ignored=1\noptions\troot=LABEL=root ostree=" + link + " rw\n" +
		"linux\t/ostree/fakeos-" + bcsum + "/vmlinuz-5.10.0-fake\n" +
		"initrd /ostree/fakeos-" + bcsum + "/initramfs-5.10.0-fake.img\ninitrd /overlay.img\n"})

	got, err := ReadBootEntries(s)
	if err != nil {
		t.Fatalf("ReadBootEntries = %v", err)
	}
	want := []BootEntry{
		{
			File: "ostree-2-fakeos.conf", Title: "Fake OS (ostree:0)", Version: "2",
			Options:  "root=LABEL=root ostree=" + link + " rw",
			Linux:    "/ostree/fakeos-" + bcsum + "/vmlinuz-5.10.0-fake",
			Initrd:   []string{"/ostree/fakeos-" + bcsum + "/initramfs-5.10.0-fake.img", "/overlay.img"},
			BootLink: link,
			Deployment: Deployment{OSName: "fakeos", Checksum: mustChecksum(t, csumB), Serial: 0,
				BootChecksum: bcsum, BootSerial: 0, Kargs: []string{"root=LABEL=root", "rw"}, ostreePos: 1},
		},
		{
			File: "ostree-1-fakeos.conf", Title: "Fake OS (ostree:1)", Version: "1",
			Options:  "root=LABEL=root rw ostree=/ostree/boot.1/fakeos/" + bcsum + "/1",
			Linux:    "/ostree/fakeos-" + bcsum + "/vmlinuz-5.10.0-fake",
			BootLink: "/ostree/boot.1/fakeos/" + bcsum + "/1",
			Deployment: Deployment{OSName: "fakeos", Checksum: mustChecksum(t, csumA), Serial: 0,
				BootChecksum: bcsum, BootSerial: 1, Kargs: []string{"root=LABEL=root", "rw"}, ostreePos: 2},
		},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(Deployment{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ReadBootEntries mismatch (-want +got):\n%s", diff)
	}

	// Open reads the same entries: its deployments carry the same keys, in
	// the same order, and Bootable lists them.
	sr, err := Open(s)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	var keys, entryKeys []string
	for _, d := range sr.Bootable() {
		keys = append(keys, d.Key())
	}
	for _, e := range got {
		entryKeys = append(entryKeys, e.Deployment.Key())
	}
	if diff := cmp.Diff([]string{"fakeos " + csumB + ".0", "fakeos " + csumA + ".0"}, keys); diff != "" {
		t.Errorf("Bootable() keys mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(keys, entryKeys); diff != "" {
		t.Errorf("ReadBootEntries keys differ from Open's (-Open +ReadBootEntries):\n%s", diff)
	}
}

func TestReadBootEntriesCorrupt(t *testing.T) {
	t.Parallel()
	for name, entry := range map[string]string{
		"no ostree=":     "title T\noptions root=LABEL=root rw\nlinux /k\n",
		"bad link":       "title T\noptions ostree=/ostree/boot.1/fakeos/" + bcsum + "/x\n",
		"dangling link":  "title T\noptions ostree=/ostree/boot.1/fakeos/" + bcsum + "/7\n",
		"link after tab": "title T\noptions root=LABEL=root\tostree=/ostree/boot.1/fakeos/" + bcsum + "/0\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := handMade(t)
			writeFiles(t, s, map[string]string{"boot/loader.1/entries/ostree-2-fakeos.conf": entry})
			if _, err := ReadBootEntries(s); !errors.Is(err, errdefs.ErrCorrupt) {
				t.Errorf("ReadBootEntries(entry %q) = %v, want ErrCorrupt", entry, err)
			}
		})
	}
}

func TestReadBootEntriesEmpty(t *testing.T) {
	t.Parallel()
	s := filepath.Join(t.TempDir(), "sysroot")
	if err := Init(s, "fakeos"); err != nil {
		t.Fatal(err)
	}
	got, err := ReadBootEntries(s)
	if err != nil || len(got) != 0 {
		t.Errorf("ReadBootEntries(a new sysroot) = %v, %v, want none", got, err)
	}
	if err := os.Symlink("loader.7", filepath.Join(s, "boot/loader")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBootEntries(s); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("ReadBootEntries(boot/loader -> loader.7) = %v, want ErrCorrupt", err)
	}
}

func mustChecksum(t *testing.T, s string) ostree.Checksum {
	t.Helper()
	c, err := ostree.ParseChecksum(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
