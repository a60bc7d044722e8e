package pulltest

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// Source is an archive repository that a test publishes with a Server: built commit by
// commit, signed, summarized, and changed by hand where an attack needs it.
type Source struct {
	Dir  string
	Repo *repo.Repo
	t    testing.TB
}

// NewSource creates an empty archive repository in a temporary directory.
func NewSource(t testing.TB) *Source {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "source")
	r, err := repo.Init(dir, repo.ModeArchive)
	if err != nil {
		t.Fatalf("creating the source repository: %v", err)
	}
	r.SetFsync(false)
	t.Cleanup(func() { r.Close() })
	return &Source{Dir: dir, Repo: r, t: t}
}

// Tree describes a commit to build.
type Tree struct {
	// Files maps slash-separated paths to the contents of regular files (mode 0644); a path
	// ending in "/" is an empty directory. Directories are 0755, everything is owned by root.
	Files map[string]string
	// Parent is the parent commit, zero for none.
	Parent ostree.Checksum
	// Timestamp is the commit time (seconds); 0 means 1700000000.
	Timestamp uint64
	// Bindings is the ostree.ref-binding list; nil binds the commit to the ref it is made on,
	// an empty non-nil slice writes no binding.
	Bindings []string
	// Version, when set, is the commit's "version" metadata.
	Version string
}

// Built names the objects of a commit that Source.Commit made.
type Built struct {
	Commit ostree.Checksum
	// Files maps each file path to its content object.
	Files map[string]ostree.Checksum
	// Trees maps each directory path ("" for the root) to its dirtree.
	Trees map[string]ostree.Checksum
	// Meta is the dirmeta every directory shares.
	Meta ostree.Checksum
}

// FileObject returns the object name of the file at p.
func (b Built) FileObject(p string) ostree.ObjectName {
	return ostree.ObjectName{Checksum: b.Files[p], Type: ostree.ObjectFile}
}

// TreeObject returns the object name of the dirtree of directory p.
func (b Built) TreeObject(p string) ostree.ObjectName {
	return ostree.ObjectName{Checksum: b.Trees[p], Type: ostree.ObjectDirTree}
}

// CommitObject returns the commit's object name.
func (b Built) CommitObject() ostree.ObjectName {
	return ostree.ObjectName{Checksum: b.Commit, Type: ostree.ObjectCommit}
}

// Commit writes tr as a commit and points refs/heads/ref at it.
func (s *Source) Commit(ref string, tr Tree) Built {
	s.t.Helper()
	txn, err := s.Repo.Begin()
	if err != nil {
		s.t.Fatalf("starting a transaction in the source repository: %v", err)
	}
	dirMeta := ostree.DirMeta{Mode: ostree.ModeDir | 0o755}.Marshal()
	b := Built{Files: map[string]ostree.Checksum{}, Trees: map[string]ostree.Checksum{}}
	if b.Meta, err = txn.WriteMetadata(ostree.ObjectDirMeta, dirMeta); err != nil {
		s.t.Fatalf("writing dirmeta: %v", err)
	}
	// Directories, deepest first, so that each parent finds its children's dirtrees.
	dirs := map[string]*ostree.DirTree{"": {}}
	var addDir func(p string)
	addDir = func(p string) {
		if _, ok := dirs[p]; ok {
			return
		}
		dirs[p] = &ostree.DirTree{}
		addDir(parentDir(p))
	}
	for p, data := range tr.Files {
		if d, ok := strings.CutSuffix(p, "/"); ok {
			addDir(d)
			continue
		}
		addDir(parentDir(p))
		fi := ostree.FileInfo{Mode: ostree.ModeReg | 0o644}
		c, err := txn.WriteContent(fi, strings.NewReader(data), int64(len(data)), nil)
		if err != nil {
			s.t.Fatalf("writing file %s: %v", p, err)
		}
		b.Files[p] = c
		dt := dirs[parentDir(p)]
		dt.Files = append(dt.Files, ostree.TreeFile{Name: path.Base(p), Checksum: c})
	}
	order := make([]string, 0, len(dirs))
	for p := range dirs {
		order = append(order, p)
	}
	depth := func(p string) int {
		if p == "" {
			return -1
		}
		return strings.Count(p, "/")
	}
	sort.Slice(order, func(i, j int) bool { return depth(order[i]) > depth(order[j]) })
	for _, p := range order {
		dt := dirs[p]
		dt.Sort()
		c, err := txn.WriteMetadata(ostree.ObjectDirTree, dt.Marshal())
		if err != nil {
			s.t.Fatalf("writing dirtree %q: %v", p, err)
		}
		b.Trees[p] = c
		if p != "" {
			parent := dirs[parentDir(p)]
			parent.Dirs = append(parent.Dirs, ostree.TreeDir{Name: path.Base(p), Tree: c, Meta: b.Meta})
		}
	}
	var meta ostree.Metadata
	if tr.Version != "" {
		meta.Set(ostree.MetaVersion, gvariant.NewVariant("s", tr.Version))
	}
	bindings := tr.Bindings
	if bindings == nil {
		bindings = []string{ref}
	}
	if len(bindings) > 0 {
		list := make([]any, len(bindings))
		for i, v := range slices.Sorted(slices.Values(bindings)) {
			list[i] = v
		}
		meta.Set(ostree.MetaRefBinding, gvariant.NewVariant("as", list))
	}
	ts := tr.Timestamp
	if ts == 0 {
		ts = 1700000000
	}
	commit := &ostree.Commit{
		Metadata: meta, Parent: tr.Parent, Subject: "commit of " + ref, Timestamp: ts,
		RootTree: b.Trees[""], RootMeta: b.Meta,
	}
	data, err := commit.Marshal()
	if err != nil {
		s.t.Fatalf("serializing commit: %v", err)
	}
	if b.Commit, err = txn.WriteMetadata(ostree.ObjectCommit, data); err != nil {
		s.t.Fatalf("writing commit: %v", err)
	}
	if err := txn.SetRef("", ref, b.Commit); err != nil {
		s.t.Fatalf("setting ref %s: %v", ref, err)
	}
	if err := txn.Commit(); err != nil {
		s.t.Fatalf("committing the source transaction: %v", err)
	}
	return b
}

func parentDir(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}

// ObjectFile returns the path of an object's file in the source repository.
func (s *Source) ObjectFile(n ostree.ObjectName) string {
	return filepath.Join(s.Dir, filepath.FromSlash(ObjectPath(n)))
}

// Read returns the bytes of an object as stored (a .filez for content).
func (s *Source) Read(n ostree.ObjectName) []byte {
	s.t.Helper()
	b, err := os.ReadFile(s.ObjectFile(n))
	if err != nil {
		s.t.Fatalf("reading source object %s: %v", n, err)
	}
	return b
}

// PutObject stores data as a metadata object named by its sha256, without any check: the way
// to publish a hand-made, hostile object. It returns the name.
func (s *Source) PutObject(typ ostree.ObjectType, data []byte) ostree.ObjectName {
	s.t.Helper()
	n := ostree.ObjectName{Checksum: ostree.MetadataChecksum(data), Type: typ}
	s.writeFile(ObjectPath(n), data)
	return n
}

// PutCommit serializes c, stores it with PutObject and returns its checksum.
func (s *Source) PutCommit(c *ostree.Commit) ostree.Checksum {
	s.t.Helper()
	data, err := c.Marshal()
	if err != nil {
		s.t.Fatalf("serializing commit: %v", err)
	}
	return s.PutObject(ostree.ObjectCommit, data).Checksum
}

// ReadCommit parses a commit of the source repository.
func (s *Source) ReadCommit(c ostree.Checksum) *ostree.Commit {
	s.t.Helper()
	cm, err := ostree.ParseCommit(s.Read(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit}))
	if err != nil {
		s.t.Fatalf("parsing source commit %s: %v", c, err)
	}
	return cm
}

// SetRef writes refs/heads/name as given, without validating the name.
func (s *Source) SetRef(name string, c ostree.Checksum) {
	s.t.Helper()
	s.writeFile("refs/heads/"+name, []byte(c.String()+"\n"))
}

func (s *Source) writeFile(rel string, data []byte) {
	s.t.Helper()
	p := filepath.Join(s.Dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatalf("creating %s: %v", filepath.Dir(p), err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		s.t.Fatalf("writing %s: %v", p, err)
	}
}

// Key returns a deterministic ed25519 key made from one seed byte repeated.
func Key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytesOf(seed, ed25519.SeedSize))
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// PublicKeyBase64 is the public key in ostree's form: base64 of its 32 bytes (docs/formats/signatures.md).
func PublicKeyBase64(k ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
}

// SecretKeyBase64 is the secret key in ostree's form: base64 of seed || public key.
func SecretKeyBase64(k ed25519.PrivateKey) string { return base64.StdEncoding.EncodeToString(k) }

// WriteKeys writes k's ostree-form secret and public keys as PREFIX.key and PREFIX.pub in a
// temporary directory, one base64 line each, and returns their paths.
func WriteKeys(t testing.TB, k ed25519.PrivateKey) (secret, public string) {
	t.Helper()
	dir := t.TempDir()
	secret, public = filepath.Join(dir, "test.key"), filepath.Join(dir, "test.pub")
	if err := os.WriteFile(secret, []byte(SecretKeyBase64(k)+"\n"), 0o600); err != nil {
		t.Fatalf("writing %s: %v", secret, err)
	}
	if err := os.WriteFile(public, []byte(PublicKeyBase64(k)+"\n"), 0o644); err != nil {
		t.Fatalf("writing %s: %v", public, err)
	}
	return secret, public
}

// signatures builds the a{sv} ostree stores in .commitmeta and summary.sig:
// {"ostree.sign.ed25519": <aay [sig...]>} (docs/formats/signatures.md).
func signatures(data []byte, keys ...ed25519.PrivateKey) ([]byte, error) {
	sigs := make([]any, len(keys))
	for i, k := range keys {
		sigs[i] = ed25519.Sign(k, data)
	}
	m := ostree.Metadata{{Key: "ostree.sign.ed25519", Value: gvariant.NewVariant("aay", sigs)}}
	return m.Marshal()
}

// Sign writes commit c's detached metadata with one ed25519 signature per key, replacing any
// earlier one.
func (s *Source) Sign(c ostree.Checksum, keys ...ed25519.PrivateKey) {
	s.t.Helper()
	meta, err := signatures(s.Read(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit}), keys...)
	if err != nil {
		s.t.Fatalf("building detached metadata of %s: %v", c, err)
	}
	s.writeFile(ObjectPath(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommitMeta}), meta)
}

// Summary writes the summary file from refs/heads (names as stored, unchecked), and
// summary.sig signed by keys when there are any (an existing summary.sig is removed
// otherwise). It returns the summary bytes.
func (s *Source) Summary(keys ...ed25519.PrivateKey) []byte {
	s.t.Helper()
	heads := filepath.Join(s.Dir, "refs", "heads")
	sum := &ostree.Summary{}
	err := filepath.WalkDir(heads, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(heads, p)
		text, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		c, err := ostree.ParseChecksum(strings.TrimSpace(string(text)))
		if err != nil {
			return err
		}
		data := s.Read(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit})
		cm, err := ostree.ParseCommit(data)
		if err != nil {
			return err
		}
		sum.Refs = append(sum.Refs, ostree.NewSummaryRef(filepath.ToSlash(rel), data, cm))
		return nil
	})
	if err != nil {
		s.t.Fatalf("reading the source refs: %v", err)
	}
	return s.PutSummary(sum, keys...)
}

// PutSummary writes sum as the summary file (and summary.sig as Summary does).
func (s *Source) PutSummary(sum *ostree.Summary, keys ...ed25519.PrivateKey) []byte {
	s.t.Helper()
	sum.Metadata.Set(ostree.SummaryMode, gvariant.NewVariant("s", "archive-z2"))
	sum.Metadata.Set(ostree.SummaryLastModified, ostree.BETimestamp(1700000000))
	data, err := sum.Marshal()
	if err != nil {
		s.t.Fatalf("serializing summary: %v", err)
	}
	s.writeFile("summary", data)
	sigPath := filepath.Join(s.Dir, "summary.sig")
	if len(keys) == 0 {
		if err := os.Remove(sigPath); err != nil && !os.IsNotExist(err) {
			s.t.Fatalf("removing summary.sig: %v", err)
		}
		return data
	}
	sig, err := signatures(data, keys...)
	if err != nil {
		s.t.Fatalf("building summary.sig: %v", err)
	}
	s.writeFile("summary.sig", sig)
	return data
}
