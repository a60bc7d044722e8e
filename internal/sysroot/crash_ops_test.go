//go:build root

package sysroot_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
)

// The operations of the step-hook crash matrix (crash_hook_test.go) and
// the starting states they and the kill matrix (crash_kill_test.go) use.

// crashFixture builds starting states.
type crashFixture struct {
	t    *testing.T
	ctx  context.Context
	s    string
	sr   *sysroot.Sysroot
	fake func(n int) sysroottest.FakeOS // version n of the fake OS
}

func (f crashFixture) commit(o sysroottest.FakeOS) ostree.Checksum {
	f.t.Helper()
	return o.Commit(f.t, f.sr.Repo(), "fakeos/stable")
}

// commitV commits version n of the fixture's fake OS to fakeos/stable.
func (f crashFixture) commitV(n int) ostree.Checksum {
	f.t.Helper()
	return f.commit(f.fake(n))
}

func (f crashFixture) deploy(opts sysroot.DeployOptions) sysroot.Deployment {
	f.t.Helper()
	d, err := f.sr.Deploy(f.ctx, "fakeos", "fakeos/stable", opts)
	if err != nil {
		f.t.Fatalf("Deploy: %v", err)
	}
	return d
}

// write writes a file of the sysroot (parents created).
func (f crashFixture) write(rel, content string) {
	f.t.Helper()
	p := filepath.Join(f.s, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f crashFixture) remove(rel string) {
	f.t.Helper()
	if err := os.Remove(filepath.Join(f.s, rel)); err != nil {
		f.t.Fatal(err)
	}
}

func (f crashFixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// The fake OS versions: each has its own kernel (so a switch writes a
// new boot version and a boot directory) and its own /etc defaults.
func fakeV(n int) sysroottest.FakeOS {
	return sysroottest.FakeOS{
		Version:   fmt.Sprint(n),
		Kernel:    fmt.Sprintf("kernel %d\n", n),
		Initramfs: fmt.Sprintf("initramfs %d\n", n),
		Etc: map[string]string{
			"hostname":      fmt.Sprintf("v%d\n", n),
			"conf.d/a.conf": fmt.Sprintf("a%d\n", n),
			"new.conf":      fmt.Sprintf("n%d\n", n),
		},
	}
}

// v1Local: v1 deployed with kargs, then local /etc changes that every
// later deployment must carry: a modified, an added and a deleted file.
func v1Local(f crashFixture) sysroot.Deployment {
	f.commitV(1)
	d := f.deploy(sysroot.DeployOptions{Kargs: []string{"rw", "quiet"}})
	f.write(d.Path()+"/etc/hostname", "myhost\n")
	f.write(d.Path()+"/etc/local.conf", "mine\n")
	f.remove(d.Path() + "/etc/conf.d/a.conf")
	return d
}

// v2v1: [v2, v1] with v1's local changes merged into v2.
func v2v1(f crashFixture) {
	v1Local(f)
	f.commitV(2)
	f.deploy(sysroot.DeployOptions{})
}

// v1Next: v1 with local changes deployed, v2 committed.
func v1Next(f crashFixture) { v1Local(f); f.commitV(2) }

// toClean: [v3, v2, v1] with v1 no longer pinned, an orphan deployment
// directory and an unused boot directory: what Cleanup removes (with
// v1's objects).
func toClean(f crashFixture) {
	v2v1(f)
	_, err := f.sr.SetPinned(f.ctx, 1, true)
	f.must(err)
	f.commitV(3)
	f.deploy(sysroot.DeployOptions{})
	_, err = f.sr.SetPinned(f.ctx, 2, false)
	f.must(err)
	d := f.sr.Deployments()[2]
	f.write(fmt.Sprintf("ostree/deploy/fakeos/deploy/%s.7/usr/x", d.Checksum), "orphan\n")
	f.write("boot/ostree/fakeos-"+strings.Repeat("0", 64)+"/vmlinuz-x", "stale\n")
}

// stagedV2: v1 (local changes) deployed, v2 staged, then an /etc edit
// of v1 made after staging (Finalize must carry it).
func stagedV2(f crashFixture) {
	d := v1Local(f)
	f.commitV(2)
	f.deploy(sysroot.DeployOptions{Stage: true})
	f.write(d.Path()+"/etc/late.conf", "late\n")
}

// localEtc is what /etc of a deployment made from version n over v1Local
// holds.
func localEtc(n int, late bool) map[string]string {
	m := map[string]string{"hostname": "myhost\n", "local.conf": "mine\n", "new.conf": fmt.Sprintf("n%d\n", n), "conf.d": "dir -rwxr-xr-x"}
	if late {
		m["late.conf"] = "late\n"
	}
	return m
}

// hookOp is one operation of the matrix.
type hookOp struct {
	name  string
	setup func(f crashFixture)
	run   func(ctx context.Context, sr *sysroot.Sysroot) error
	// rerun is what recovery runs again (nil: run).
	rerun func(ctx context.Context, sr *sysroot.Sysroot) error
	// discardsStaged: an interruption before the commit point leaves
	// the old default and drops the staged deployment (Finalize removes
	// the staged record first, as libostree does).
	discardsStaged bool
	// want checks the uninterrupted run's result.
	want func(t *testing.T, start, end crashState)
}

func deployRun(opts sysroot.DeployOptions) func(context.Context, *sysroot.Sysroot) error {
	return func(ctx context.Context, sr *sysroot.Sysroot) error {
		_, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", opts)
		return err
	}
}

func finalizeRun(ctx context.Context, sr *sysroot.Sysroot) error {
	_, _, err := sr.Finalize(ctx)
	return err
}

// wantEtc checks the etc tree of the deployment at index i of st.
func wantEtc(t *testing.T, st crashState, i int, want map[string]string) {
	t.Helper()
	if i >= len(st.Deployments) {
		t.Fatalf("state has %d deployments, want one at %d", len(st.Deployments), i)
	}
	if diff := cmp.Diff(want, st.Deployments[i].Etc); diff != "" {
		t.Errorf("etc of %s (index %d) mismatch (-want +got):\n%s", st.Deployments[i].Name, i, diff)
	}
}

func hookOps() []hookOp {
	return []hookOp{
		{
			name:  "deploy-first",
			setup: func(f crashFixture) { f.commitV(1) },
			run:   deployRun(sysroot.DeployOptions{Kargs: []string{"rw"}}),
			want: func(t *testing.T, start, end crashState) {
				if len(start.Deployments) != 0 || len(end.Deployments) != 1 || end.View.Title != "Fake OS 1 (ostree:0)" {
					t.Errorf("deploy-first: %d deployments → %d, boots %q", len(start.Deployments), len(end.Deployments), end.View.Title)
				}
			},
		},
		{
			name:  "deploy-merge",
			setup: v1Next,
			run:   deployRun(sysroot.DeployOptions{}),
			want: func(t *testing.T, start, end crashState) {
				wantEtc(t, end, 0, localEtc(2, false))
				wantEtc(t, end, 1, start.Deployments[0].Etc)
				if end.Deployments[0].Kargs != "rw quiet" {
					t.Errorf("kargs of the new deployment = %q, want the merge deployment's", end.Deployments[0].Kargs)
				}
			},
		},
		{
			name:  "stage",
			setup: v1Next,
			run:   deployRun(sysroot.DeployOptions{Stage: true}),
			want: func(t *testing.T, start, end crashState) {
				if len(end.Deployments) != 2 || !end.Deployments[0].Staged || end.View != start.View {
					t.Errorf("stage: %+v, want a staged deployment and the same boot", end.Deployments)
				}
			},
		},
		{
			name:  "finalize",
			setup: stagedV2,
			run:   finalizeRun,
			rerun: func(ctx context.Context, sr *sysroot.Sysroot) error {
				if _, ok := sr.Staged(); !ok && sr.Deployments()[0].Version == "1" {
					if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Stage: true}); err != nil {
						return err
					}
				}
				return finalizeRun(ctx, sr)
			},
			discardsStaged: true,
			want: func(t *testing.T, start, end crashState) {
				wantEtc(t, end, 0, localEtc(2, true))
				if end.View.Title != "Fake OS 2 (ostree:0)" {
					t.Errorf("finalize: boots %q, want version 2", end.View.Title)
				}
			},
		},
		{
			name:  "upgrade",
			setup: v1Next,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.Upgrade(ctx, nil, sysroot.UpgradeOptions{})
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				wantEtc(t, end, 0, localEtc(2, false))
				if end.Deployments[0].Refspec != "fakeos/stable" {
					t.Errorf("upgrade: refspec %q", end.Deployments[0].Refspec)
				}
			},
		},
		{
			name:  "rollback",
			setup: v2v1,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.Rollback(ctx)
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if end.View.Title != "Fake OS 1 (ostree:0)" || end.Deployments[1].Name != start.Deployments[0].Name {
					t.Errorf("rollback: boots %q, list %+v", end.View.Title, end.Deployments)
				}
			},
		},
		{
			// Same kernel, kargs and version: only ostree/boot.B is swapped.
			name: "rollback-subboot",
			setup: func(f crashFixture) {
				a := fakeV(1)
				a.Files = map[string]string{"usr/share/a": "a"}
				f.commit(a)
				f.deploy(sysroot.DeployOptions{})
				b := fakeV(1)
				b.Files = map[string]string{"usr/share/b": "b"}
				f.commit(b)
				f.deploy(sysroot.DeployOptions{})
			},
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.Rollback(ctx)
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if end.View.Loader != start.View.Loader || end.View.Checksum == start.View.Checksum {
					t.Errorf("rollback-subboot: loader %s → %s, boots %s → %s", start.View.Loader, end.View.Loader, start.View.Checksum, end.View.Checksum)
				}
			},
		},
		{
			name:  "kargs",
			setup: v2v1,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.SetKargs(ctx, 0, []string{"rw", "console=ttyS0"})
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if !strings.HasPrefix(end.View.Options, "rw console=ttyS0 ostree=") {
					t.Errorf("kargs: options %q", end.View.Options)
				}
			},
		},
		{
			name:  "kargs-staged",
			setup: stagedV2,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.SetKargs(ctx, 0, []string{"rw", "staged"})
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if end.Deployments[0].Kargs != "rw staged" || !end.Deployments[0].Staged {
					t.Errorf("kargs-staged: %+v", end.Deployments[0])
				}
			},
		},
		{
			name:  "undeploy",
			setup: v2v1,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.Undeploy(ctx, 1, sysroot.UndeployOptions{})
				return err
			},
			// Again means: undeploy the same deployment if it is still there.
			rerun: func(ctx context.Context, sr *sysroot.Sysroot) error {
				if len(sr.Deployments()) < 2 {
					return nil
				}
				_, err := sr.Undeploy(ctx, 1, sysroot.UndeployOptions{})
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if len(end.Deployments) != 1 || end.Deployments[0].Name != start.Deployments[0].Name {
					t.Errorf("undeploy: %+v", end.Deployments)
				}
			},
		},
		{
			name:  "cleanup",
			setup: toClean,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.Cleanup(ctx)
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if len(start.Deployments) != 3 || len(end.Deployments) != 2 {
					t.Errorf("cleanup: %d deployments → %d, want 3 → 2", len(start.Deployments), len(end.Deployments))
				}
			},
		},
		{
			name:  "pin",
			setup: v2v1,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.SetPinned(ctx, 1, true)
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if !end.Deployments[1].Pinned {
					t.Errorf("pin: %+v", end.Deployments[1])
				}
			},
		},
	}
}
