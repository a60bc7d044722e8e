package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
)

// rootOwner makes a directory commit hash uid/gid 0 whoever runs the test:
// tree1 is all root-owned (docs/formats/vectors.md).
func rootOwner(o CommitOptions) CommitOptions {
	o.OwnerUID, o.OwnerGID = cmU32(0), cmU32(0)
	return o
}

func TestCommitTree1Vectors(t *testing.T) {
	t.Parallel()
	tree := cmWriteDir(t, cmTree1(), false)
	for _, tc := range []struct {
		mode Mode
		want string
	}{
		{ModeArchive, cmC1},
		{ModeBareUser, cmC1},
		{ModeBareUserOnly, cmC1BUO},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			t.Parallel()
			r := cmNewRepo(t, tc.mode)
			c, st := cmCommit(t, r, DirSource(tree), rootOwner(cmOptsC1()))
			if c.String() != tc.want {
				t.Fatalf("CommitTree(tree1, %s) = %s, want %s", tc.mode, c, tc.want)
			}
			if got, err := r.ReadRef("", "test/ref"); err != nil || got != c {
				t.Errorf("ReadRef(test/ref) = %s, %v, want %s", got, err, c)
			}
			want := CommitStats{Commit: c, RootTree: st.RootTree, RootMeta: st.RootMeta, Dirs: 3, Files: 3, Symlinks: 1, Bytes: 40,
				ContentWritten: 4, MetaWritten: 5, BytesWritten: st.BytesWritten}
			if st != want {
				t.Errorf("CommitTree(tree1, %s) stats = %+v, want %+v", tc.mode, st, want)
			}
			cmVerifyContent(t, r, c)
		})
	}
}

// cmVerifyContent reads every file of commit c back and checks that each
// object hashes to its name.
func cmVerifyContent(t *testing.T, r *Repo, c ostree.Checksum) {
	t.Helper()
	err := WalkCommit(context.Background(), r, c, func(e *WalkEntry, err error) error {
		if err != nil || e.Kind == EntryDir {
			return err
		}
		ct, err := r.OpenContent(e.Checksum)
		if err != nil {
			return err
		}
		defer ct.Close()
		got, err := ostree.ContentChecksum(ct.Info, ct)
		if err != nil {
			return err
		}
		if got != e.Checksum {
			t.Errorf("content object of %s hashes to %s, want %s", e.Path, got, e.Checksum)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WalkCommit(%s) = %v", c, err)
	}
}

// Tree2 carries uid 1000 and a setuid file, which only root can create on
// disk; a tar stream carries them for anyone, so C2 is checked here from
// tar and from a directory in the root tier.
func TestCommitTarVectors(t *testing.T) {
	t.Parallel()
	tar1, tar2 := cmWriteTar(t, cmTree1()), cmWriteTar(t, cmTree2())
	for _, mode := range []Mode{ModeArchive, ModeBareUser} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			r := cmNewRepo(t, mode)
			c1, _ := cmCommit(t, r, TarSource(bytes.NewReader(tar1)), cmOptsC1())
			if c1.String() != cmC1 {
				t.Fatalf("CommitTree(tar of tree1) = %s, want %s", c1, cmC1)
			}
			c2, st := cmCommit(t, r, TarSource(bytes.NewReader(tar2)), cmOptsC2())
			if c2.String() != cmC2 {
				t.Fatalf("CommitTree(tar of tree2) = %s, want %s", c2, cmC2)
			}
			if st.Parent != c1 || st.RootTree.String() != cmTree2Dirtree {
				t.Errorf("CommitTree(tar of tree2) parent, tree = %s, %s, want %s, %s", st.Parent, st.RootTree, c1, cmTree2Dirtree)
			}
			if st.Files != 3003 || st.ContentWritten != 3 || st.ContentReused != 3000 {
				t.Errorf("CommitTree(tar of tree2) files, written, reused = %d, %d, %d, want 3003, 3, 3000", st.Files, st.ContentWritten, st.ContentReused)
			}
			cmVerifyContent(t, r, c2)
		})
	}
}

func TestCommitTarCompressions(t *testing.T) {
	t.Parallel()
	plain := cmWriteTar(t, cmTree1())
	var gz, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(plain)
	zw.Close()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"plain", plain},
		{"gzip", gz.Bytes()},
		{"zstd", zs.Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := cmNewRepo(t, ModeArchive)
			c, _ := cmCommit(t, r, TarSource(bytes.NewReader(tc.data)), cmOptsC1())
			if c.String() != cmC1 {
				t.Errorf("CommitTree(%s tar of tree1) = %s, want %s", tc.name, c, cmC1)
			}
		})
	}
	r := cmNewRepo(t, ModeArchive)
	xz := append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, make([]byte, 100)...)
	if _, _, err := CommitTree(context.Background(), r, TarSource(bytes.NewReader(xz)), cmOptsC1()); !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("CommitTree(xz stream) = %v, want ErrUnsupported", err)
	}
}

func TestCommitMetadataAndParent(t *testing.T) {
	t.Parallel()
	tree := cmWriteDir(t, cmTree1(), false)
	r := cmNewRepo(t, ModeArchive)
	first, _ := cmCommit(t, r, DirSource(tree), rootOwner(cmOptsC1()))
	other, _ := cmCommit(t, r, DirSource(tree), rootOwner(CommitOptions{Branch: "other", Timestamp: time.Unix(5, 0)}))
	for _, tc := range []struct {
		name       string
		opts       CommitOptions
		wantParent ostree.Checksum
		wantKeys   []string
	}{
		{"head of branch", CommitOptions{Branch: "test/ref"}, first, []string{"ostree.ref-binding"}},
		{"new branch", CommitOptions{Branch: "fresh"}, ostree.Checksum{}, []string{"ostree.ref-binding"}},
		{"none", CommitOptions{Branch: "test/ref", Parent: "none"}, ostree.Checksum{}, []string{"ostree.ref-binding"}},
		{"rev", CommitOptions{Branch: "test/ref", Parent: "other"}, other, []string{"ostree.ref-binding"}},
		{"no bindings", CommitOptions{Branch: "test/ref", NoBindings: true, Parent: "none",
			Metadata: ostree.Metadata{{Key: "b", Value: gvariant.NewVariant("s", "2")}, {Key: "a", Value: gvariant.NewVariant("s", "1")}}},
			ostree.Checksum{}, []string{"b", "a"}},
		{"metadata order", CommitOptions{Branch: "test/ref", Parent: "none",
			Metadata: ostree.Metadata{{Key: "z", Value: gvariant.NewVariant("s", "2")}, {Key: "a", Value: gvariant.NewVariant("s", "1")}}},
			ostree.Checksum{}, []string{"z", "a", "ostree.ref-binding"}},
		{"orphan", CommitOptions{}, ostree.Checksum{}, []string{"ostree.ref-binding"}},
		{"orphan without bindings", CommitOptions{NoBindings: true}, ostree.Checksum{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Timestamp = time.Unix(1000, 0)
			c, st := cmCommit(t, r, DirSource(tree), rootOwner(tc.opts))
			cm, err := r.ReadCommit(c)
			if err != nil {
				t.Fatal(err)
			}
			if cm.Parent != tc.wantParent || st.Parent != tc.wantParent {
				t.Errorf("CommitTree(%s) parent = %s (stats %s), want %s", tc.name, cm.Parent, st.Parent, tc.wantParent)
			}
			var keys []string
			for _, e := range cm.Metadata {
				keys = append(keys, e.Key.(string))
			}
			if strings.Join(keys, ",") != strings.Join(tc.wantKeys, ",") {
				t.Errorf("CommitTree(%s) metadata keys = %q, want %q", tc.name, keys, tc.wantKeys)
			}
			b := cm.Metadata.Strings(ostree.MetaRefBinding)
			if !tc.opts.NoBindings && (tc.opts.Branch != "" && (len(b) != 1 || b[0] != tc.opts.Branch) || tc.opts.Branch == "" && len(b) != 0) {
				t.Errorf("CommitTree(%s) ref binding = %q, want [%q]", tc.name, b, tc.opts.Branch)
			}
			if tc.opts.Branch != "" {
				if got, _ := r.ReadRef("", tc.opts.Branch); got != c {
					t.Errorf("CommitTree(%s) left %s at %s, want %s", tc.name, tc.opts.Branch, got, c)
				}
			}
		})
	}
}

func TestCommitTimestampDefaults(t *testing.T) {
	// Not parallel: sets SOURCE_DATE_EPOCH.
	tree := cmWriteDir(t, cmTree1(), false)
	r := cmNewRepo(t, ModeArchive)
	fixed := time.Unix(1234567890, 0)
	c, _ := cmCommit(t, r, DirSource(tree), CommitOptions{Now: func() time.Time { return fixed }})
	if cm, _ := r.ReadCommit(c); cm.Timestamp != 1234567890 {
		t.Errorf("CommitTree(Now=%d) timestamp = %d, want %d", fixed.Unix(), cm.Timestamp, fixed.Unix())
	}
	t.Setenv("SOURCE_DATE_EPOCH", "42")
	c, _ = cmCommit(t, r, DirSource(tree), CommitOptions{Now: func() time.Time { return fixed }})
	if cm, _ := r.ReadCommit(c); cm.Timestamp != 42 {
		t.Errorf("CommitTree(SOURCE_DATE_EPOCH=42) timestamp = %d, want 42", cm.Timestamp)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "soon")
	if _, _, err := CommitTree(context.Background(), r, DirSource(tree), CommitOptions{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("CommitTree(SOURCE_DATE_EPOCH=soon) = %v, want ErrInvalid", err)
	}
}

func TestCommitSignHook(t *testing.T) {
	t.Parallel()
	tree := cmWriteDir(t, cmTree1(), false)
	r := cmNewRepo(t, ModeArchive)
	meta := ostree.Metadata{{Key: "test.sig", Value: gvariant.NewVariant("ay", []byte("sig"))}}
	detached, _ := meta.Marshal()
	var signed []byte
	opts := rootOwner(cmOptsC1())
	opts.Sign = func(commit, old []byte) ([]byte, error) {
		if old != nil {
			t.Errorf("Sign got existing detached metadata %x for a new commit", old)
		}
		signed = commit
		return detached, nil
	}
	c, _ := cmCommit(t, r, DirSource(tree), opts)
	if ostree.MetadataChecksum(signed) != c {
		t.Errorf("Sign was given bytes hashing to %s, want the commit %s", ostree.MetadataChecksum(signed), c)
	}
	if got, err := r.ReadCommitMeta(c); err != nil || !bytes.Equal(got, detached) {
		t.Errorf("ReadCommitMeta(%s) = %x, %v, want %x", c, got, err, detached)
	}
}

func TestCommitWarmWritesNothing(t *testing.T) {
	t.Parallel()
	es := cmTree1()
	big := make([]byte, 3*smallFileMax+17)
	rand.Read(big)
	es = append(es, cmEntry{path: "bin/big", kind: 'f', mode: 0o644, data: string(big)})
	tree := cmWriteDir(t, es, false)
	for _, mode := range []Mode{ModeArchive, ModeBareUser, ModeBareUserOnly} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			r := cmNewRepo(t, mode)
			c1, st1 := cmCommit(t, r, DirSource(tree), rootOwner(CommitOptions{Branch: "b", Timestamp: time.Unix(1, 0)}))
			if st1.ContentWritten != 5 {
				t.Errorf("cold CommitTree content objects written = %d, want 5", st1.ContentWritten)
			}
			c2, st2 := cmCommit(t, r, DirSource(tree), rootOwner(CommitOptions{Branch: "b", Timestamp: time.Unix(2, 0)}))
			if st2.ContentWritten != 0 || st2.ContentReused != 5 || st2.BytesWritten != 0 || st2.MetaWritten != 1 {
				t.Errorf("warm CommitTree stats = %+v, want 0 content written, 5 reused, 1 metadata object (the commit)", st2)
			}
			if st2.RootTree != st1.RootTree || st2.Parent != c1 {
				t.Errorf("warm CommitTree tree, parent = %s, %s, want %s, %s", st2.RootTree, st2.Parent, st1.RootTree, c1)
			}
			cmVerifyContent(t, r, c2)
			// The same tree as a tar stream, whose big file goes through
			// the spool, gives the same tree, cold and warm.
			tarData := cmWriteTar(t, es)
			r2 := cmNewRepo(t, mode)
			for _, temp := range []string{"cold", "warm"} {
				c3, st3 := cmCommit(t, r2, TarSource(bytes.NewReader(tarData)), CommitOptions{Timestamp: time.Unix(1, 0)})
				if st3.RootTree != st1.RootTree || st3.RootMeta != st1.RootMeta {
					t.Errorf("%s CommitTree(tar) root = %s/%s, want %s/%s as from the directory", temp, st3.RootTree, st3.RootMeta, st1.RootTree, st1.RootMeta)
				}
				cmVerifyContent(t, r2, c3)
			}
		})
	}
}
