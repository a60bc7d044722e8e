package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

// coLsLine renders an LsEntry like `ostree ls` (without -C/-X) for
// comparison with ostree's output.
func coLsLine(e LsEntry) string {
	c := map[uint32]string{ostree.ModeDir: "d", ostree.ModeReg: "-", ostree.ModeSymlink: "l"}[e.Mode&ostree.ModeTypeMask]
	s := fmt.Sprintf("%s0%04o %d %d %6d %s", c, e.Mode&ostree.ModePermMask, e.UID, e.GID, e.Size, e.Path)
	if e.SymlinkTarget != "" {
		s += " -> " + e.SymlinkTarget
	}
	return s
}

func TestLs(t *testing.T) {
	t.Parallel()
	// Expected lines are `ostree ls` output on the same repository.
	for _, tc := range []struct {
		name, repo, rev, path string
		recursive             bool
		want                  []string
	}{
		{"C1 recursive", "repo-archive", "test/ref^", "/", true, []string{
			"d00755 0 0      0 /",
			"-00644 0 0     12 /hello.txt",
			"l00777 0 0      0 /link -> hello.txt",
			"-00644 0 0     10 /xattr.txt",
			"d00755 0 0      0 /bin",
			"-00755 0 0     18 /bin/run.sh",
			"d00755 0 0      0 /empty",
		}},
		{"C1 top level", "repo-bare-user", "test/ref^", "/", false, []string{
			"d00755 0 0      0 /",
			"-00644 0 0     12 /hello.txt",
			"l00777 0 0      0 /link -> hello.txt",
			"-00644 0 0     10 /xattr.txt",
			"d00755 0 0      0 /bin",
			"d00755 0 0      0 /empty",
		}},
		{"C2 directory", "repo-bare-user", "test/ref", "/xdir", false, []string{
			"d00700 1000 1000      0 /xdir",
			"-04755 1000 1000      9 /xdir/suid",
		}},
		{"C2 file", "repo-archive", "test/ref", "hello.txt", false, []string{
			"-00644 0 0     12 /hello.txt",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := coVectorRepo(t, tc.repo)
			ents, err := Ls(context.Background(), r, tc.rev, tc.path, tc.recursive)
			if err != nil {
				t.Fatalf("Ls(%s, %s, %v) = %v", tc.rev, tc.path, tc.recursive, err)
			}
			var got []string
			for _, e := range ents {
				got = append(got, coLsLine(e))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Ls(%s, %s, %v) (-want +got):\n%s", tc.rev, tc.path, tc.recursive, diff)
			}
		})
	}
}

func TestLsChecksumsAndXattrs(t *testing.T) {
	t.Parallel()
	r := coVectorRepo(t, "repo-archive")
	ents, err := Ls(context.Background(), r, coVectorC1, "/xattr.txt", false)
	if err != nil {
		t.Fatal(err)
	}
	want := LsEntry{Path: "/xattr.txt", Kind: EntryFile, Mode: ostree.ModeReg | 0o644, Size: 10,
		Checksum: coChecksum(t, "09440d3415864dfdb27893ce4dd9a8741c585acc9b4a634c71311776eeb8be32"),
		Xattrs:   []ostree.Xattr{{Name: "user.myattr", Value: []byte("value1")}}}
	if len(ents) != 1 || !cmp.Equal(ents[0], want) {
		t.Errorf("Ls(C1, /xattr.txt) = %+v, want [%+v]", ents, want)
	}
}

func TestCat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, repo, path string
		damage           bool
		want             string
		wantErr          error
	}{
		{"archive file", "repo-archive", "/hello.txt", false, "hello world\n", nil},
		{"bare-user file", "repo-bare-user", "bin/run.sh", false, "#!/bin/sh\necho hi\n", nil},
		{"directory", "repo-archive", "/bin", false, "", errdefs.ErrInvalid},
		{"symlink followed", "repo-bare-user", "/link", false, "hello world\n", nil},
		{"missing", "repo-archive", "/nope", false, "", errdefs.ErrNotFound},
		{"damaged", "repo-bare-user", "/hello.txt", true, "hello worlD\n", errdefs.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := coVectorRepo(t, tc.repo)
			if tc.damage {
				e, err := Lookup(r, coChecksum(t, coVectorC1), tc.path)
				if err != nil {
					t.Fatal(err)
				}
				p := r.ObjectPath(e.Object())
				b := []byte("hello worlD\n")
				// In place: the inode keeps its user.ostreemeta.
				coMust(t, os.Chmod(p, 0o644))
				coMust(t, os.WriteFile(p, b, 0o644))
			}
			var out bytes.Buffer
			err := Cat(context.Background(), r, coVectorC1, tc.path, &out)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Cat(%s) = %v, want %v", tc.path, err, tc.wantErr)
			}
			if err != nil && tc.wantErr == errdefs.ErrCorrupt && !strings.Contains(err.Error(), "81381808c56d4f3d643ec12f6a18fcf2993af8daba7c2a1b2cbfc315b39424c6") {
				t.Errorf("Cat(damaged) = %v, want the object named", err)
			}
			if out.String() != tc.want {
				t.Errorf("Cat(%s) wrote %q, want %q", tc.path, out.String(), tc.want)
			}
		})
	}
}
