//go:build peer

package pull_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/pull/pulltest"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
)

// ostreeSource returns a runner of Debian's ostree that fails the test on an error and
// returns the command's trimmed output, and an empty archive repository that ostree made. The
// test runs in parallel from here.
func ostreeSource(t *testing.T) (run func(args ...string) string, src string) {
	t.Helper()
	ostreeBin := testutil.Ostree(t)
	t.Parallel()
	run = func(args ...string) string {
		t.Helper()
		out, err := exec.Command(ostreeBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	src = filepath.Join(t.TempDir(), "src")
	run("init", "--repo="+src, "--mode=archive")
	return run, src
}

// TestPullOstreeSizes pulls commits that `ostree commit --generate-sizes`
// made, which list each object's size in ostree.sizes: a content object
// whose header declares another size is refused before anything of it is
// written, and a file that compresses far past the inflate-ratio bound
// pulls because its size is the signer's, not the server's. The same file
// in a commit without sizes is refused by the ratio bound.
func TestPullOstreeSizes(t *testing.T) {
	run, src := ostreeSource(t)
	tree := t.TempDir()
	// 32 MiB of zeros deflate about 1000:1, past the default 400:1.
	if err := os.WriteFile(filepath.Join(tree, "zeros.img"), make([]byte, 32<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "tool"), []byte("#!/bin/sh\necho tool\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sized := run("commit", "--repo="+src, "--branch=sized", "--generate-sizes", "--no-bindings", "--tree=dir="+tree)
	plain := run("commit", "--repo="+src, "--branch=plain", "--no-bindings", "--tree=dir="+tree)
	srv := pulltest.NewServer(t, src)
	// MODE UID GID SIZE CHECKSUM PATH
	ls := strings.Fields(run("ls", "--repo="+src, "-C", "sized", "/tool"))
	if len(ls) != 6 {
		t.Fatalf("ostree ls -C sized /tool = %q, want 6 fields", ls)
	}
	tool, err := ostree.ParseChecksum(ls[4])
	if err != nil {
		t.Fatalf("checksum of /tool from ostree ls: %v", err)
	}
	opts := func(ref string) pull.Options {
		return pull.Options{URL: srv.URL, Refs: []string{ref}, NoVerify: true,
			Retry: pull.RetryPolicy{Attempts: 1}, RequestTimeout: time.Minute}
	}
	client := func(t *testing.T) *repo.Repo {
		r, err := repo.Init(filepath.Join(t.TempDir(), "client"), repo.ModeBareUser)
		if err != nil {
			t.Fatal(err)
		}
		r.SetFsync(false)
		t.Cleanup(func() { r.Close() })
		return r
	}

	t.Run("honest, sized", func(t *testing.T) {
		r := client(t)
		if _, err := pull.Pull(context.Background(), r, opts("sized")); err != nil {
			t.Fatalf("Pull(sized) = %v, want success: the sizes are the commit's", err)
		}
		if got, _ := r.ReadRef("", "sized"); got.String() != sized {
			t.Errorf("ReadRef(sized) = %s, want %s", got, sized)
		}
	})
	t.Run("honest, not sized", func(t *testing.T) {
		_, err := pull.Pull(context.Background(), client(t), opts("plain"))
		checkErr(t, err, errdefs.ErrCorrupt, "400:1")
		o := opts("plain")
		o.MaxInflateRatio = -1
		r := client(t)
		if _, err := pull.Pull(context.Background(), r, o); err != nil {
			t.Fatalf("Pull(plain) without a ratio bound = %v, want success", err)
		}
		if got, _ := r.ReadRef("", "plain"); got.String() != plain {
			t.Errorf("ReadRef(plain) = %s, want %s", got, plain)
		}
	})
	t.Run("size differs from ostree.sizes", func(t *testing.T) {
		n := ostree.ObjectName{Checksum: tool, Type: ostree.ObjectFile}
		srv.Handle(pulltest.Object(n), pulltest.Body(zeroBomb(t, 4<<20)))
		defer srv.Reset()
		r := client(t)
		_, err := pull.Pull(context.Background(), r, opts("sized"))
		checkErr(t, err, errdefs.ErrCorrupt, tool.String(), "declares 4194304 bytes, and its commit's ostree.sizes says 20")
	})
}
