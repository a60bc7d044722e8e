package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestVectorsMatchArchive reads the archive independently and checks every entry against what
// Vectors extracted: type, mode bits (setuid included), size, symlink target, mtime and user.* xattrs.
func TestVectorsMatchArchive(t *testing.T) {
	t.Parallel()
	top := Vectors(t)
	base := filepath.Dir(top)

	f, err := os.Open(filepath.Join(RepoRoot(t), vectorsArchive))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var entries, bareUserMeta, special int
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries++
		path := filepath.Join(base, filepath.Clean(hdr.Name))
		checkEntry(t, path, hdr)
		if hdr.Mode&0o7000 != 0 {
			special++
		}
		if strings.Contains(hdr.Name, "/repo-bare-user/objects/") && strings.HasSuffix(hdr.Name, ".file") {
			if _, ok := hdr.PAXRecords["SCHILY.xattr.user.ostreemeta"]; ok {
				bareUserMeta++
			}
		}
	}
	if entries == 0 {
		t.Fatal("the vectors archive has no entries")
	}
	// The bare-user repo is unreadable without its user.ostreemeta xattrs (docs/formats/repository.md):
	// make sure the archive still carries them, so that the check above exercised them.
	if bareUserMeta == 0 {
		t.Error("no repo-bare-user .file object in the archive carries user.ostreemeta")
	}
	t.Logf("checked %d entries, %d bare-user objects with user.ostreemeta, %d setuid/setgid/sticky", entries, bareUserMeta, special)
}

func checkEntry(t *testing.T, path string, hdr *tar.Header) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("entry %s: %v", hdr.Name, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	// A hardlink takes the type of its target, checked where the target is.
	wantType, typed := map[byte]uint32{tar.TypeDir: unix.S_IFDIR, tar.TypeReg: unix.S_IFREG, tar.TypeSymlink: unix.S_IFLNK}[hdr.Typeflag]
	if got := st.Mode & unix.S_IFMT; typed && got != wantType {
		t.Errorf("%s: file type %o, want %o", hdr.Name, got, wantType)
	}
	if hdr.Typeflag == tar.TypeSymlink {
		if got, err := os.Readlink(path); err != nil || got != hdr.Linkname {
			t.Errorf("Readlink(%s) = %q, %v, want %q", hdr.Name, got, err, hdr.Linkname)
		}
	} else if got, want := st.Mode&0o7777, uint32(hdr.Mode&0o7777); hdr.Typeflag != tar.TypeLink && got != want {
		t.Errorf("%s: mode %04o, want %04o", hdr.Name, got, want)
	}
	if hdr.Typeflag == tar.TypeReg && fi.Size() != hdr.Size {
		t.Errorf("%s: size %d, want %d", hdr.Name, fi.Size(), hdr.Size)
	}
	if hdr.Typeflag != tar.TypeLink && !fi.ModTime().Equal(hdr.ModTime) {
		t.Errorf("%s: mtime %v, want %v", hdr.Name, fi.ModTime(), hdr.ModTime)
	}
	if os.Geteuid() == 0 && (int(st.Uid) != hdr.Uid || int(st.Gid) != hdr.Gid) {
		t.Errorf("%s: owner %d:%d, want %d:%d", hdr.Name, st.Uid, st.Gid, hdr.Uid, hdr.Gid)
	}
	for k, want := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !strings.HasPrefix(attr, "user.") {
			continue
		}
		if got := lgetxattr(t, path, attr); got != want {
			t.Errorf("%s: xattr %s = %q, want %q", hdr.Name, attr, got, want)
		}
	}
}

func lgetxattr(t *testing.T, path, attr string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Lgetxattr(path, attr, buf)
	if err != nil {
		t.Errorf("Lgetxattr(%s, %s): %v", path, attr, err)
		return ""
	}
	return string(buf[:n])
}

func TestVectorsFreshPerCall(t *testing.T) {
	t.Parallel()
	a, b := Vectors(t), Vectors(t)
	if a == b {
		t.Fatalf("Vectors returned %s twice, want a fresh copy per call", a)
	}
	if err := os.WriteFile(filepath.Join(a, "README"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(b, "README"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) == "changed" {
		t.Error("a change to one copy of the vectors shows in the other")
	}
}

// tarEntry is one entry of a synthetic archive.
type tarEntry struct {
	hdr  tar.Header
	body string
}

func makeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if hdr.Format == tar.FormatUnknown {
			hdr.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("writing tar header %s: %v", hdr.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractTarRestoresMetadata(t *testing.T) {
	t.Parallel()
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	entries := []tarEntry{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "tree/", Mode: 0o755, ModTime: mtime, Uid: 0, Gid: 0}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "tree/tmp/", Mode: 0o1777, ModTime: mtime}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "tree/ro/", Mode: 0o555, ModTime: mtime}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "tree/ro/inside", Mode: 0o444, ModTime: mtime}, body: "in a read-only dir\n"},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "tree/usr/bin/su", Mode: 0o4755, ModTime: mtime, Uid: 0, Gid: 0}, body: "#!/bin/true\n"},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "tree/etc/shadow", Mode: 0o640, ModTime: mtime, Uid: 0, Gid: 42}, body: "root:*:1::::::\n"},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "tree/obj.file", Mode: 0o444, ModTime: time.Unix(0, 0),
			PAXRecords: map[string]string{"SCHILY.xattr.user.ostreemeta": "\x00\x00\x00\x00\x00\x00\x81\xa4\x00bin", "SCHILY.xattr.trusted.skip": "x"}}, body: "hello"},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "tree/usr/bin/sh", Linkname: "../../../outside/dash", ModTime: mtime}},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "tree/usr/bin/su2", Linkname: "tree/usr/bin/su"}},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "tree/usr/bin/sh2", Linkname: "tree/usr/bin/sh"}},
	}
	dest := t.TempDir()
	if err := extractTar(bytes.NewReader(makeTar(t, entries)), dest); err != nil {
		t.Fatalf("extractTar: %v", err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dest, "tree/ro"), 0o755) }) // let TempDir remove it as non-root
	for _, e := range entries {
		hdr := e.hdr
		hdr.Size = int64(len(e.body))
		t.Run(strings.TrimSuffix(hdr.Name, "/"), func(t *testing.T) {
			checkEntry(t, filepath.Join(dest, hdr.Name), &hdr)
			if hdr.Typeflag == tar.TypeReg {
				if got, err := os.ReadFile(filepath.Join(dest, hdr.Name)); err != nil || string(got) != e.body {
					t.Errorf("ReadFile(%s) = %q, %v, want %q", hdr.Name, got, err, e.body)
				}
			}
		})
	}

	su, err := os.Lstat(filepath.Join(dest, "tree/usr/bin/su"))
	if err != nil {
		t.Fatal(err)
	}
	if su.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("tree/usr/bin/su mode %v, want setuid", su.Mode())
	}
	for _, pair := range [][2]string{{"tree/usr/bin/su", "tree/usr/bin/su2"}, {"tree/usr/bin/sh", "tree/usr/bin/sh2"}} {
		a, errA := os.Lstat(filepath.Join(dest, pair[0]))
		b, errB := os.Lstat(filepath.Join(dest, pair[1]))
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Errorf("%s and %s are not one inode (%v, %v)", pair[0], pair[1], errA, errB)
		}
	}
	if _, err := unix.Lgetxattr(filepath.Join(dest, "tree/obj.file"), "trusted.skip", nil); err == nil {
		t.Error("trusted.skip was restored, want only user.* xattrs")
	}
}

func TestExtractTarRefusesEscapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []tarEntry
	}{
		{"absolute name", []tarEntry{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "/escaped", Mode: 0o644}, body: "x"}}},
		{"dot-dot name", []tarEntry{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "../escaped", Mode: 0o644}, body: "x"}}},
		{"inner dot-dot", []tarEntry{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "a/../../escaped", Mode: 0o644}, body: "x"}}},
		{"through a symlink", []tarEntry{
			{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: ".."}},
			{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "link/escaped", Mode: 0o644}, body: "x"},
		}},
		{"through a symlink to a directory", []tarEntry{
			{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "/tmp"}},
			{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "link/escaped/", Mode: 0o755}},
		}},
		{"hardlink to outside", []tarEntry{{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "escaped", Linkname: "../victim"}}}},
		{"hardlink to absolute", []tarEntry{{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "escaped", Linkname: "/etc/passwd"}}}},
		{"hardlink through a symlink", []tarEntry{
			{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: ".."}},
			{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "escaped", Linkname: "link/victim"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			outer := t.TempDir()
			if err := os.WriteFile(filepath.Join(outer, "victim"), []byte("v"), 0o644); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(outer, "dest")
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			err := extractTar(bytes.NewReader(makeTar(t, tt.entries)), dest)
			if err == nil {
				t.Fatal("extractTar succeeded, want an error")
			}
			if _, serr := os.Lstat(filepath.Join(outer, "escaped")); serr == nil {
				t.Errorf("extractTar wrote %s/escaped outside the destination", outer)
			}
			if _, serr := os.Lstat(filepath.Join(dest, "escaped")); serr == nil {
				t.Errorf("extractTar created dest/escaped (err %v)", err)
			}
		})
	}
}
