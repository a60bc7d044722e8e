//go:build root

package sysroot_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
	"github.com/strata-os/strata/internal/testutil"
)

// recordingBootloader records the lists it is given and fails on demand.
type recordingBootloader struct {
	calls [][]string
	err   error
}

func (b *recordingBootloader) Sync(_ context.Context, _ string, list []sysroot.Deployment) error {
	var names []string
	for _, d := range list {
		names = append(names, d.Name())
	}
	b.calls = append(b.calls, names)
	return b.err
}

func TestWithBootloader(t *testing.T) {
	testutil.RequireRoot(t)
	s := filepath.Join(t.TempDir(), "sysroot")
	if err := sysroot.Init(s, "fakeos"); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { sysroottest.ClearImmutable(s) })
	bl := &recordingBootloader{}
	sr, err := sysroot.Open(s, sysroot.WithBootloader(bl))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { sr.Close() })
	ctx := context.Background()
	c1 := sysroottest.FakeOS{Version: "1"}.Commit(t, sr.Repo(), "os")
	c2 := sysroottest.FakeOS{Version: "2", Kernel: "kernel 2\n"}.Commit(t, sr.Repo(), "os")

	d1, err := sr.Deploy(ctx, "fakeos", c1.String(), sysroot.DeployOptions{})
	if err != nil {
		t.Fatalf("Deploy(c1) = %v", err)
	}
	d2, err := sr.Deploy(ctx, "fakeos", c2.String(), sysroot.DeployOptions{})
	if err != nil {
		t.Fatalf("Deploy(c2) = %v", err)
	}
	if _, err := sr.Rollback(ctx); err != nil {
		t.Fatalf("Rollback = %v", err)
	}
	want := [][]string{{d1.Name()}, {d2.Name(), d1.Name()}, {d1.Name(), d2.Name()}}
	if diff := cmp.Diff(want, bl.calls); diff != "" {
		t.Errorf("Sync calls after Deploy, Deploy, Rollback (-want +got):\n%s", diff)
	}

	// A failing boot loader fails the operation, but the switch stands.
	bl.err = errors.New("ESP unavailable")
	if _, err := sr.Rollback(ctx); !errors.Is(err, bl.err) {
		t.Fatalf("Rollback with a failing boot loader = %v, want its error", err)
	}
	if err := sr.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := names(sr.Deployments()); !cmp.Equal(got, []string{d2.Name(), d1.Name()}) {
		t.Errorf("deployments after the failed sync = %v, want the rollback committed [%s %s]", got, d2.Name(), d1.Name())
	}
	if last := bl.calls[len(bl.calls)-1]; !cmp.Equal(last, []string{d2.Name(), d1.Name()}) {
		t.Errorf("last Sync call = %v, want the committed list", last)
	}
}
