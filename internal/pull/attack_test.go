package pull_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/pull/pulltest"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
)

// The attack tests pull from a hostile server over real HTTP on loopback. Every attack runs
// against an empty client (the ref is absent) and against a client that has the previous
// commit (the ref points at it), in an archive and a bare-user repository, and must:
//
//   - fail with an error of the expected class that names what was wrong (the object, the URL
//     or the key),
//   - store nothing of the attack: no object of the attacked name in objects/ or in staging,
//   - leave the ref where it was, and the repository passing fsck,
//   - and not poison a later pull: once the server is honest again the same pull succeeds.

const attackRef = "os/stable"

// attackEnv is a source repository with two commits on attackRef, served over HTTP, and a
// client repository.
type attackEnv struct {
	src        *pulltest.Source
	srv        *pulltest.Server
	base, next pulltest.Built // next is the child of base: the commit each attack is about
	client     *repo.Repo
	trusted    sign.SecretKey // the key the client trusts when a test verifies signatures (seed 1)
}

var (
	baseFiles = map[string]string{
		"usr/bin/tool":         "#!/bin/sh\necho v1\n",
		"usr/share/doc/README": strings.Repeat("documentation\n", 200),
		"etc/tool.conf":        "level=1\n",
		"var/empty/":           "",
	}
	nextFiles = map[string]string{
		"usr/bin/tool":         "#!/bin/sh\necho v2\n",
		"usr/lib/libtool.so":   strings.Repeat("\x7fELF library v2 ", 4096),
		"usr/share/doc/README": strings.Repeat("documentation\n", 200),
		"etc/tool.conf":        "level=2\n",
		"var/empty/":           "",
	}
)

// newAttackEnv builds the source and a client repository of the given mode. When update is
// set the client first pulls base from the honest server, so the attacked pull is an update.
func newAttackEnv(t *testing.T, mode repo.Mode, update bool) *attackEnv {
	t.Helper()
	e := &attackEnv{src: pulltest.NewSource(t), trusted: secretKey(t, 1)}
	e.base = e.src.Commit(attackRef, pulltest.Tree{Files: baseFiles, Timestamp: 1700000000, Version: "1"})
	e.next = e.src.Commit(attackRef, pulltest.Tree{Files: nextFiles, Parent: e.base.Commit, Timestamp: 1700086400, Version: "2"})
	e.srv = pulltest.NewServer(t, e.src.Dir)
	dir := filepath.Join(t.TempDir(), "client")
	var err error
	if e.client, err = repo.Init(dir, mode); err != nil {
		t.Fatalf("creating the client repository: %v", err)
	}
	e.client.SetFsync(false)
	t.Cleanup(func() { e.client.Close() })
	if update {
		e.src.SetRef(attackRef, e.base.Commit)
		if _, err := pull.Pull(context.Background(), e.client, e.options()); err != nil {
			t.Fatalf("pulling %s before the attack: %v", e.base.Commit, err)
		}
		e.src.SetRef(attackRef, e.next.Commit)
		e.srv.ClearLog()
	}
	return e
}

// secretKey is a deterministic ed25519 key in package sign's form.
func secretKey(t testing.TB, seed byte) sign.SecretKey {
	t.Helper()
	k, err := sign.NewSecretKey(pulltest.Key(seed).Seed())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// options are the pull options of the tests: no signatures unless a test asks, quick
// retries, and timeouts short enough for stalls to fail fast.
func (e *attackEnv) options() pull.Options {
	return pull.Options{
		URL:            e.srv.URL,
		Refs:           []string{attackRef},
		NoVerify:       true,
		Retry:          pull.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 4 * time.Millisecond},
		RequestTimeout: 10 * time.Second,
		StallTimeout:   5 * time.Second,
	}
}

// verifying makes o check ed25519 signatures against e's trusted key.
func (e *attackEnv) verifying(o *pull.Options) {
	o.NoVerify = false
	o.Verifier = pull.Signatures(sign.NewEd25519Verifier([]sign.PublicKey{e.trusted.Public()}, nil))
}

// signNext signs the next commit with the key of seed (ostree's .commitmeta form, written by
// pulltest, checked by package sign).
func (e *attackEnv) signNext(seed byte) {
	e.src.Sign(e.next.Commit, pulltest.Key(seed))
}

// wantRef is the ref value the client must keep after a failed pull: absent, or base.
func (e *attackEnv) wantRef(update bool) ostree.Checksum {
	if update {
		return e.base.Commit
	}
	return ostree.Checksum{}
}

// storedFiles lists the files of the client repository whose path names object n, in
// objects/ or in any staging directory under tmp/ (any suffix: .file, .filez, .commit ...).
func storedFiles(t *testing.T, r *repo.Repo, n ostree.ObjectName) []string {
	t.Helper()
	hex := n.Checksum.String()
	var found []string
	for _, top := range []string{"objects", "tmp"} {
		err := filepath.WalkDir(filepath.Join(r.Path(), top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			name := filepath.Base(filepath.Dir(p)) + d.Name()
			if strings.HasPrefix(name, hex+".") {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("listing %s of the client repository: %v", top, err)
		}
	}
	return found
}

// checkAftermath asserts what every failed attack must leave: no file of the attacked object,
// the ref unchanged, and a repository that passes fsck.
func checkAftermath(t *testing.T, e *attackEnv, attacked ostree.ObjectName, wantRef ostree.Checksum) {
	t.Helper()
	if !attacked.Checksum.IsZero() {
		if files := storedFiles(t, e.client, attacked); len(files) > 0 {
			t.Errorf("after the attack the client stores %s: %v", attacked, files)
		}
	}
	got, err := e.client.ReadRef("", attackRef)
	switch {
	case wantRef.IsZero() && !errors.Is(err, errdefs.ErrNotFound):
		t.Errorf("ReadRef(%s) after the attack = %s, %v; want no ref", attackRef, got, err)
	case !wantRef.IsZero() && (err != nil || got != wantRef):
		t.Errorf("ReadRef(%s) after the attack = %s, %v; want %s", attackRef, got, err, wantRef)
	}
	checkFsck(t, e.client)
}

func checkFsck(t *testing.T, r *repo.Repo) {
	t.Helper()
	rep, err := repo.Fsck(context.Background(), r, repo.FsckOptions{})
	if err != nil {
		t.Fatalf("Fsck(%s): %v", r.Path(), err)
	}
	if !rep.OK() {
		var lines []string
		for _, p := range rep.Problems {
			lines = append(lines, p.String())
		}
		t.Errorf("Fsck(%s) found %d problems:\n%s", r.Path(), rep.Errors(), strings.Join(lines, "\n"))
	}
}

// checkHonestPull resets the server to honest and pulls again: the pull must succeed and move
// the ref to next, and the repository must pass fsck.
func checkHonestPull(t *testing.T, e *attackEnv, opts pull.Options) {
	t.Helper()
	e.srv.Reset()
	if _, err := pull.Pull(context.Background(), e.client, opts); err != nil {
		t.Fatalf("Pull() from the honest server after the attack: %v", err)
	}
	if got, err := e.client.ReadRef("", attackRef); err != nil || got != e.next.Commit {
		t.Errorf("ReadRef(%s) after the honest pull = %s, %v; want %s", attackRef, got, err, e.next.Commit)
	}
	checkFsck(t, e.client)
}

// checkErr asserts that err is of class want and mentions every string of msgs.
func checkErr(t *testing.T, err error, want error, msgs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Pull() = nil error, want an error wrapping %v", want)
	}
	t.Logf("Pull() failed as it must: %v", err)
	if want != nil && !errors.Is(err, want) {
		t.Errorf("Pull() = %v, want an error wrapping %v", err, want)
	}
	for _, m := range msgs {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("Pull() = %v, want it to mention %q", err, m)
		}
	}
}

// forEachClient runs fn for an empty and an updating client, in an archive and a bare-user
// repository.
func forEachClient(t *testing.T, fn func(t *testing.T, e *attackEnv, update bool)) {
	t.Helper()
	for _, mode := range []repo.Mode{repo.ModeArchive, repo.ModeBareUser} {
		for _, update := range []bool{false, true} {
			name := string(mode) + "/empty"
			if update {
				name = string(mode) + "/update"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				fn(t, newAttackEnv(t, mode, update), update)
			})
		}
	}
}

// tamperedContent returns a well-formed .filez whose payload differs from the one of the
// content object at path p of the next commit: what a server substituting a file would send.
func tamperedContent(t *testing.T, e *attackEnv, p string) []byte {
	t.Helper()
	other := pulltest.NewSource(t)
	b := other.Commit("x", pulltest.Tree{Files: map[string]string{p: nextFiles[p] + "# backdoor\n"}})
	return other.Read(b.FileObject(p))
}

// TestAttackTamperedObjects serves objects whose bytes do not match their names.
func TestAttackTamperedObjects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// arm makes the server hostile and returns the attacked object.
		arm func(t *testing.T, e *attackEnv) ostree.ObjectName
		// wantMsg lists what the error must mention besides the object name.
		wantMsg []string
	}{
		{
			name: "content object replaced by another well-formed file",
			arm: func(t *testing.T, e *attackEnv) ostree.ObjectName {
				n := e.next.FileObject("usr/bin/tool")
				e.srv.Handle(pulltest.Object(n), pulltest.Body(tamperedContent(t, e, "usr/bin/tool")))
				return n
			},
			wantMsg: []string{"hashes to"},
		},
		{
			name: "content object with a flipped byte in its deflate stream",
			arm: func(t *testing.T, e *attackEnv) ostree.ObjectName {
				n := e.next.FileObject("usr/lib/libtool.so")
				e.srv.Handle(pulltest.Object(n), pulltest.FlipByte(-3))
				return n
			},
		},
		{
			name: "content object header claims another mode",
			arm: func(t *testing.T, e *attackEnv) ostree.ObjectName {
				n := e.next.FileObject("usr/bin/tool")
				e.srv.Handle(pulltest.Object(n), pulltest.Tamper(func(b []byte) []byte {
					// The mode is the third u32 of the archive header (docs/formats/objects.md): 0644 → 4755.
					i := 8 + 8 + 4 + 4
					b[i+2], b[i+3] = 0x89, 0xed
					return b
				}))
				return n
			},
			wantMsg: []string{"hashes to"},
		},
		{
			name: "dirtree with a flipped byte",
			arm: func(t *testing.T, e *attackEnv) ostree.ObjectName {
				n := e.next.TreeObject("usr/bin")
				e.srv.Handle(pulltest.Object(n), pulltest.FlipByte(0))
				return n
			},
			wantMsg: []string{"hashes to"},
		},
		{
			name: "root dirtree of another commit",
			arm: func(t *testing.T, e *attackEnv) ostree.ObjectName {
				n := e.next.TreeObject("")
				e.srv.Handle(pulltest.Object(n), pulltest.Body(e.src.Read(e.base.TreeObject(""))))
				return n
			},
			wantMsg: []string{"hashes to"},
		},
		{
			name: "commit bytes that are not its name",
			arm: func(t *testing.T, e *attackEnv) ostree.ObjectName {
				n := e.next.CommitObject()
				cm := e.src.ReadCommit(e.next.Commit)
				cm.Subject = "an evil twin"
				forged, err := cm.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				e.srv.Handle(pulltest.Object(n), pulltest.Body(forged))
				return n
			},
			wantMsg: []string{"hashes to"},
		},
		{
			name: "dirmeta with a flipped byte",
			arm: func(t *testing.T, e *attackEnv) ostree.ObjectName {
				// Both commits share the dirmeta: only the empty client fetches it.
				n := ostree.ObjectName{Checksum: e.next.Meta, Type: ostree.ObjectDirMeta}
				e.srv.Handle(pulltest.Object(n), pulltest.FlipByte(-1))
				return n
			},
			wantMsg: []string{"hashes to"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			forEachClient(t, func(t *testing.T, e *attackEnv, update bool) {
				n := tt.arm(t, e)
				_, err := pull.Pull(context.Background(), e.client, e.options())
				if n.Type == ostree.ObjectDirMeta && update {
					// The updating client has this dirmeta: the attack cannot reach it.
					if err != nil {
						t.Fatalf("Pull() with the shared dirmeta tampered = %v, want success (it is stored already)", err)
					}
					return
				}
				checkErr(t, err, errdefs.ErrCorrupt, append([]string{n.Checksum.String()}, tt.wantMsg...)...)
				checkAftermath(t, e, n, e.wantRef(update))
				checkHonestPull(t, e, e.options())
			})
		})
	}
}

// TestAttackSignatures serves commits and summaries whose signatures must not be accepted.
// Nothing of the commit's tree may be fetched before its signature is checked.
func TestAttackSignatures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		arm     func(t *testing.T, e *attackEnv)
		wantIs  error
		wantMsg []string
	}{
		{
			name:    "commit signed by another key",
			arm:     func(t *testing.T, e *attackEnv) { e.signNext(2) },
			wantIs:  sign.ErrUntrusted,
			wantMsg: []string{"commit", "untrusted"},
		},
		{
			name:    "no signature while a key is trusted",
			arm:     func(t *testing.T, e *attackEnv) {},
			wantIs:  sign.ErrNoSignature,
			wantMsg: []string{"commit", "no signatures"},
		},
		{
			name: "commit signature copied from another commit",
			arm: func(t *testing.T, e *attackEnv) {
				e.src.Sign(e.base.Commit, pulltest.Key(1))
				meta := e.src.Read(ostree.ObjectName{Checksum: e.base.Commit, Type: ostree.ObjectCommitMeta})
				e.srv.Handle(pulltest.Object(ostree.ObjectName{Checksum: e.next.Commit, Type: ostree.ObjectCommitMeta}), pulltest.Body(meta))
			},
			wantIs:  sign.ErrUntrusted,
			wantMsg: []string{"commit"},
		},
		{
			name: "summary signed by another key",
			arm: func(t *testing.T, e *attackEnv) {
				e.signNext(1)
				e.src.Summary(pulltest.Key(2))
			},
			wantIs:  sign.ErrUntrusted,
			wantMsg: []string{"summary"},
		},
		{
			name: "summary changed after it was signed",
			arm: func(t *testing.T, e *attackEnv) {
				e.signNext(1)
				e.src.Summary(pulltest.Key(1))
				e.srv.Handle(pulltest.Path("summary"), pulltest.FlipByte(-1))
			},
			wantIs:  sign.ErrUntrusted,
			wantMsg: []string{"summary"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			forEachClient(t, func(t *testing.T, e *attackEnv, update bool) {
				tt.arm(t, e)
				opts := e.options()
				e.verifying(&opts)
				_, err := pull.Pull(context.Background(), e.client, opts)
				msgs := tt.wantMsg
				if strings.HasPrefix(tt.name, "commit") || strings.HasPrefix(tt.name, "no signature") {
					msgs = append(msgs, e.next.Commit.String())
				}
				checkErr(t, err, tt.wantIs, msgs...)
				for _, r := range e.srv.Requests() {
					if strings.HasSuffix(r.Path, ".dirtree") || strings.HasSuffix(r.Path, ".dirmeta") || strings.HasSuffix(r.Path, ".filez") {
						t.Errorf("the client fetched %s although the commit's signature failed", r.Path)
					}
				}
				checkAftermath(t, e, e.next.CommitObject(), e.wantRef(update))
				// An honest, signed publication is accepted.
				e.signNext(1)
				e.src.Summary(pulltest.Key(1))
				checkHonestPull(t, e, opts)
			})
		})
	}
}

// TestAttackRefBinding serves, under attackRef, a commit bound to another ref: a valid,
// even correctly signed, commit of another branch must not be installed as this one
// (ostree.ref-binding, docs/formats/signatures.md).
func TestAttackRefBinding(t *testing.T) {
	t.Parallel()
	for _, withSummary := range []bool{false, true} {
		name := "refs/heads"
		if withSummary {
			name = "summary"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			forEachClient(t, func(t *testing.T, e *attackEnv, update bool) {
				other := e.src.Commit("os/testing", pulltest.Tree{Files: nextFiles, Parent: e.base.Commit, Timestamp: 1700090000})
				e.src.Sign(other.Commit, pulltest.Key(1))
				e.src.SetRef(attackRef, other.Commit)
				if withSummary {
					e.src.Summary()
				}
				opts := e.options()
				e.verifying(&opts)
				_, err := pull.Pull(context.Background(), e.client, opts)
				checkErr(t, err, errdefs.ErrFailedPrecondition, other.Commit.String(), "os/testing", "ostree.ref-binding")
				checkAftermath(t, e, ostree.ObjectName{}, e.wantRef(update))
				for _, r := range e.srv.Requests() {
					if strings.HasSuffix(r.Path, ".filez") {
						t.Errorf("the client fetched %s of a commit bound to another ref", r.Path)
					}
				}
				e.src.SetRef(attackRef, e.next.Commit)
				e.signNext(1)
				if withSummary {
					e.src.Summary()
				}
				checkHonestPull(t, e, opts)
			})
		})
	}
}
