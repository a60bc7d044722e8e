package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// fixture is a repository with two commits of ref "os" and a clone that
// holds only the first (as a client that deployed it would).
type fixture struct {
	src, dst *repo.Repo
	c1, c2   ostree.Checksum
}

func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if len(data) > 2 && data[:2] == "->" {
			if err := os.Symlink(data[2:], full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func commitDir(t testing.TB, r *repo.Repo, dir string) ostree.Checksum {
	t.Helper()
	c, _, err := repo.CommitTree(context.Background(), r, repo.DirSource(dir), repo.CommitOptions{
		Branch: "os", Subject: filepath.Base(dir), Timestamp: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newFixture(t testing.TB, mode repo.Mode) *fixture {
	t.Helper()
	tmp := t.TempDir()
	src, err := repo.Init(filepath.Join(tmp, "src"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	big := string(bytes.Repeat([]byte("0123456789abcdef"), 1<<14)) // 256 KiB
	files := map[string]string{"usr/bin/a": "hello\n", "usr/bin/l": "->a", "usr/lib/big": big, "etc/c": "conf\n"}
	writeTree(t, filepath.Join(tmp, "t1"), files)
	f := &fixture{src: src, c1: commitDir(t, src, filepath.Join(tmp, "t1"))}
	files["usr/bin/a"] = "hello again\n"
	files["etc/new"] = "new\n"
	files["usr/lib/big"] = big + "tail"
	writeTree(t, filepath.Join(tmp, "t2"), files)
	f.c2 = commitDir(t, src, filepath.Join(tmp, "t2"))
	if f.dst, err = repo.Init(filepath.Join(tmp, "dst"), mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.dst.Close() })
	return f
}

// copyCommit applies a scratch delta of c into dst: the way the fixture
// gives the client its first commit.
func (f *fixture) applyFromDir(t *testing.T, name Name) (*Superblock, error) {
	t.Helper()
	return ApplyOffline(context.Background(), f.dst, filepath.Join(f.src.Path(), name.Dir()))
}

func fsckClean(t *testing.T, r *repo.Repo) {
	t.Helper()
	rep, err := repo.Fsck(context.Background(), r, repo.FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("fsck: %+v", rep.Problems)
	}
}

func TestGenerateApplyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, mode := range []repo.Mode{repo.ModeArchive, repo.ModeBareUserOnly} {
		for _, inline := range []bool{false, true} {
			t.Run(string(mode)+map[bool]string{true: "-inline", false: ""}[inline], func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, mode)
				ctx := context.Background()
				scratch, err := Generate(ctx, f.src, ostree.Checksum{}, f.c1, Options{Inline: inline, MinFallbackSize: 1 << 30})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.applyFromDir(t, scratch.Name); err != nil {
					t.Fatalf("ApplyOffline(scratch) = %v", err)
				}
				up, err := Generate(ctx, f.src, f.c1, f.c2, Options{Inline: inline})
				if err != nil {
					t.Fatal(err)
				}
				// Only what changed travels: a, big, new, and the dirtrees above them.
				var files int
				for _, p := range up.Parts {
					for _, o := range p.Objects {
						if o.Type == ostree.ObjectFile {
							files++
						}
					}
				}
				if files != 3 || len(up.Fallbacks) != 0 {
					t.Errorf("delta %s carries %d content objects and %d fallbacks, want 3 and 0", up.Name, files, len(up.Fallbacks))
				}
				if _, err := f.applyFromDir(t, up.Name); err != nil {
					t.Fatalf("ApplyOffline(%s) = %v", up.Name, err)
				}
				if _, err := f.dst.ReadCommit(f.c2); err != nil {
					t.Fatalf("commit %s after apply: %v", f.c2, err)
				}
				if err := f.dst.SetRef("", "os", f.c2); err != nil {
					t.Fatal(err)
				}
				fsckClean(t, f.dst)
			})
		}
	}
}

func TestSuperblockRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, repo.ModeArchive)
	sb, err := Generate(context.Background(), f.src, f.c1, f.c2, Options{MinFallbackSize: 100 << 10, MaxBsdiffSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(sb.Fallbacks) != 1 {
		t.Fatalf("fallbacks = %d, want 1 (the 256 KiB file)", len(sb.Fallbacks))
	}
	b, err := ReadSuperblockFile(f.src, sb.Name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	again, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Errorf("ParseSuperblock then Marshal changed the superblock")
	}
	names, err := List(f.src)
	if err != nil || len(names) != 1 || names[0] != sb.Name {
		t.Errorf("List = %v, %v, want [%s]", names, err, sb.Name)
	}
	if err := Delete(f.src, sb.Name); err != nil {
		t.Fatal(err)
	}
	if names, _ := List(f.src); len(names) != 0 {
		t.Errorf("List after Delete = %v", names)
	}
	if err := Delete(f.src, sb.Name); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Delete twice = %v, want ErrNotFound", err)
	}
}

func TestNameDir(t *testing.T) {
	t.Parallel()
	// The directory ostree 2022.7 wrote for C1 -> C2 of the test vectors
	// (docs/formats/static-deltas.md).
	from, _ := ostree.ParseChecksum("4e5608541a7900d8b604541ec7ffa70700a6dd3aabc7e71e145a25ac5f306a28")
	to, _ := ostree.ParseChecksum("33551e1f5b855ffea3595aed5983953c687ec4e2f96f3d6d00648ffdd647c194")
	n := Name{From: from, To: to}
	const want = "deltas/Tl/YIVBp5ANi2BFQex_+nBwCm3Tqrx+ceFFolrF8waig-M1UeH1uFX_6jWVrtWYOVPGh+xOL5bz1tAGSP_dZHwZQ"
	if got := n.Dir(); got != want {
		t.Errorf("Dir() = %s, want %s", got, want)
	}
	if got, want := (Name{To: to}).Dir(), "deltas/M1/UeH1uFX_6jWVrtWYOVPGh+xOL5bz1tAGSP_dZHwZQ"; got != want {
		t.Errorf("scratch Dir() = %s, want %s", got, want)
	}
	for _, m := range []Name{n, {To: to}} {
		d := m.Dir()[len("deltas/"):]
		if back, ok := parseDir(d[:2], d[3:]); !ok || back != m {
			t.Errorf("parseDir(%s) = %v, %v, want %v", d, back, ok, m)
		}
		if p, err := ParseName(m.String()); err != nil || p != m {
			t.Errorf("ParseName(%s) = %v, %v", m, p, err)
		}
	}
}

func sumOf(b []byte) ostree.Checksum { return sha256.Sum256(b) }

func TestGenerateForRefs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, repo.ModeArchive)
	tmp := t.TempDir()
	writeTree(t, tmp, map[string]string{"usr/bin/a": "third\n"})
	c3 := commitDir(t, f.src, tmp)
	wrote, err := GenerateForRefs(context.Background(), f.src, 5, true, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Name{{To: c3}, {From: f.c2, To: c3}, {From: f.c1, To: c3}}
	if len(wrote) != len(want) {
		t.Fatalf("GenerateForRefs wrote %v, want %v", wrote, want)
	}
	for i := range want {
		if wrote[i] != want[i] {
			t.Errorf("delta %d = %s, want %s", i, wrote[i], want[i])
		}
	}
	again, err := GenerateForRefs(context.Background(), f.src, 5, true, Options{})
	if err != nil || len(again) != 0 {
		t.Errorf("second GenerateForRefs wrote %v, %v, want nothing", again, err)
	}
}
