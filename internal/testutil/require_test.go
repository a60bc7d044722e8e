package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fatalRecorder stands in for a *testing.T whose Fatal* calls are recorded instead of failing the
// real test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// runRecorded runs fn on its own goroutine, as a test does, and returns the Fatal message, if any.
func runRecorded(t *testing.T, fn func(tb testing.TB)) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.msg
}

func TestRequireTool(t *testing.T) {
	t.Parallel()
	t.Run("present", func(t *testing.T) {
		t.Parallel()
		var got string
		if msg := runRecorded(t, func(tb testing.TB) { got = RequireTool(tb, "sh", "dash") }); msg != "" {
			t.Fatalf("RequireTool(sh) failed: %s", msg)
		}
		if !filepath.IsAbs(got) {
			t.Errorf("RequireTool(sh) = %q, want an absolute path", got)
		}
	})
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		msg := runRecorded(t, func(tb testing.TB) { RequireTool(tb, "strata-no-such-tool", "strata-pkg") })
		want := "strata-no-such-tool not found: install the Debian package strata-pkg (scripts/deps)"
		if msg != want {
			t.Errorf("RequireTool(missing) fails with %q, want %q", msg, want)
		}
	})
}

func TestRepoRoot(t *testing.T) {
	t.Parallel()
	root := RepoRoot(t)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(gomod), "module github.com/strata-os/strata\n") {
		t.Errorf("RepoRoot() = %s, whose go.mod is not strata's", root)
	}
	if _, err := os.Stat(filepath.Join(root, vectorsArchive)); err != nil {
		t.Errorf("RepoRoot() = %s, which has no %s: %v", root, vectorsArchive, err)
	}
}
