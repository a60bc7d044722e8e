//go:build root

package sysroot_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
	"github.com/strata-os/strata/internal/testutil"
)

const (
	bcsum1 = "88e5fa6e0596b2c2d4983d41f74ca9af221155fdd7270654a9aa81a093d76b18" // docs/formats/vectors.md
	kver   = sysroottest.FakeKernelVersion
)

// newSysroot makes an initialized sysroot with stateroot fakeos.
func newSysroot(t *testing.T) (string, *sysroot.Sysroot) {
	t.Helper()
	testutil.RequireRoot(t)
	s := filepath.Join(t.TempDir(), "sysroot")
	if err := sysroot.Init(s, "fakeos"); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { sysroottest.ClearImmutable(s) })
	sr, err := sysroot.Open(s)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { sr.Close() })
	return s, sr
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	return string(b)
}

func readlink(t *testing.T, p string) string {
	t.Helper()
	l, err := os.Readlink(p)
	if err != nil {
		t.Fatalf("readlink %s: %v", p, err)
	}
	return l
}

func names(ds []sysroot.Deployment) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name())
	}
	return out
}

func booted(t *testing.T, s string) sysroottest.View {
	t.Helper()
	v, err := sysroottest.BootedView(s)
	if err != nil {
		t.Fatalf("BootedView: %v", err)
	}
	return v
}

func entry(title, version, options, bc string) string {
	return "title " + title + "\nversion " + version + "\noptions " + options +
		"\nlinux /ostree/fakeos-" + bc + "/vmlinuz-" + kver + "\ninitrd /ostree/fakeos-" + bc + "/initramfs-" + kver + ".img\n"
}

func TestDeployLifecycle(t *testing.T) {
	s, sr := newSysroot(t)
	ctx := context.Background()
	c1 := sysroottest.FakeOS{Version: "1", Etc: map[string]string{"hostname": "v1\n", "conf.d/a.conf": "a1\n"}}.Commit(t, sr.Repo(), "fakeos/stable")

	// First deploy.
	d1, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Kargs: []string{"root=LABEL=root", "rw"}})
	if err != nil {
		t.Fatalf("Deploy(v1): %v", err)
	}
	if d1.Name() != c1.String()+".0" || d1.BootChecksum != bcsum1 || d1.Refspec != "fakeos/stable" || d1.Version != "1" {
		t.Errorf("Deploy(v1) = %s boot %s refspec %q version %q", d1.Name(), d1.BootChecksum, d1.Refspec, d1.Version)
	}
	dep1 := filepath.Join(s, d1.Path())
	wantLinks := map[string]string{
		"boot/loader":   "loader.1",
		"boot/boot":     ".",
		"ostree/boot.1": "boot.1.1",
		"ostree/boot.1.1/fakeos/" + bcsum1 + "/0": "../../../deploy/fakeos/deploy/" + c1.String() + ".0",
	}
	for l, want := range wantLinks {
		if got := readlink(t, filepath.Join(s, l)); got != want {
			t.Errorf("%s -> %q, want %q", l, got, want)
		}
	}
	wantFiles := map[string]string{
		"boot/loader.1/entries/ostree-1-fakeos.conf":                   entry("Fake OS 1 (ostree:0)", "1", "root=LABEL=root rw ostree=/ostree/boot.1/fakeos/"+bcsum1+"/0", bcsum1),
		"boot/ostree/fakeos-" + bcsum1 + "/vmlinuz-" + kver:            "fake kernel v1\n",
		"boot/ostree/fakeos-" + bcsum1 + "/initramfs-" + kver + ".img": "fake initramfs\n",
		d1.OriginPath():                       "[origin]\nrefspec=fakeos/stable\n",
		"ostree/repo/refs/heads/ostree/1/1/0": c1.String() + "\n",
	}
	for f, want := range wantFiles {
		if diff := cmp.Diff(want, readFile(t, filepath.Join(s, f))); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", f, diff)
		}
	}
	for _, gone := range []string{"boot/loader.0", "ostree/boot.0", "boot/loader.tmp", "ostree/lock"} {
		if _, err := os.Lstat(filepath.Join(s, gone)); err == nil {
			t.Errorf("%s exists after the first deploy", gone)
		}
	}
	if !sysroottest.IsImmutable(dep1) {
		t.Errorf("deployment root %s is not immutable", d1.Path())
	}
	a, _ := os.Stat(filepath.Join(dep1, "etc/hostname"))
	b, _ := os.Stat(filepath.Join(dep1, "usr/etc/hostname"))
	if os.SameFile(a, b) || readFile(t, filepath.Join(dep1, "etc/hostname")) != "v1\n" {
		t.Errorf("etc/hostname is not a copy of usr/etc/hostname")
	}
	if v := booted(t, s); v.Checksum != c1.String() || v.Serial != 0 {
		t.Errorf("BootedView after v1 = %s.%d", v.Checksum, v.Serial)
	}

	// A local change, then the second deploy merges it and inherits kargs.
	if err := os.WriteFile(filepath.Join(dep1, "etc/local.conf"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c2 := sysroottest.FakeOS{Version: "2", Kernel: "fake kernel v2\n", Etc: map[string]string{"hostname": "v2\n"}}.Commit(t, sr.Repo(), "fakeos/stable")
	d2, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{})
	if err != nil {
		t.Fatalf("Deploy(v2): %v", err)
	}
	bcsum2 := d2.BootChecksum
	if got, want := names(sr.Deployments()), []string{c2.String() + ".0", c1.String() + ".0"}; !cmp.Equal(got, want) {
		t.Errorf("Deployments() after v2 = %v, want %v", got, want)
	}
	wantFiles = map[string]string{
		"boot/loader.0/entries/ostree-2-fakeos.conf": entry("Fake OS 2 (ostree:0)", "2", "root=LABEL=root rw ostree=/ostree/boot.0/fakeos/"+bcsum2+"/0", bcsum2),
		"boot/loader.0/entries/ostree-1-fakeos.conf": entry("Fake OS 1 (ostree:1)", "1", "root=LABEL=root rw ostree=/ostree/boot.0/fakeos/"+bcsum1+"/0", bcsum1),
		d2.Path() + "/etc/local.conf":                "mine\n",
		d2.Path() + "/etc/hostname":                  "v2\n",
	}
	for f, want := range wantFiles {
		if diff := cmp.Diff(want, readFile(t, filepath.Join(s, f))); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", f, diff)
		}
	}
	if got := readlink(t, filepath.Join(s, "boot/loader")); got != "loader.0" {
		t.Errorf("boot/loader -> %s after v2, want loader.0", got)
	}
	for _, gone := range []string{"boot/loader.1", "ostree/boot.1", "ostree/boot.1.1", "ostree/repo/refs/heads/ostree/1/1/0"} {
		if _, err := os.Lstat(filepath.Join(s, gone)); err == nil {
			t.Errorf("%s still exists after v2", gone)
		}
	}
	if v := booted(t, s); v.Checksum != c2.String() {
		t.Errorf("BootedView after v2 = %s, want %s", v.Checksum, c2)
	}

	// Rollback: v1 is the default again.
	if _, err := sr.Rollback(ctx); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if got, want := names(sr.Deployments()), []string{c1.String() + ".0", c2.String() + ".0"}; !cmp.Equal(got, want) {
		t.Errorf("Deployments() after rollback = %v, want %v", got, want)
	}
	if v := booted(t, s); v.Checksum != c1.String() || v.Title != "Fake OS 1 (ostree:0)" {
		t.Errorf("BootedView after rollback = %s %q", v.Checksum, v.Title)
	}

	// Deploying v2 again gets serial 1 (v2.0 still exists when it is
	// allocated) and drops v2.0, which is neither booted nor the merge one.
	d3, err := sr.Deploy(ctx, "fakeos", c2.String(), sysroot.DeployOptions{})
	if err != nil {
		t.Fatalf("Deploy(v2 again): %v", err)
	}
	if d3.Serial != 1 || d3.Refspec != c2.String() {
		t.Errorf("Deploy(v2 again) = serial %d refspec %q, want 1 and the checksum", d3.Serial, d3.Refspec)
	}
	if got, want := names(sr.Deployments()), []string{c2.String() + ".1", c1.String() + ".0"}; !cmp.Equal(got, want) {
		t.Errorf("Deployments() = %v, want %v", got, want)
	}
	if _, err := os.Lstat(filepath.Join(s, "ostree/deploy/fakeos/deploy", c2.String()+".0")); err == nil {
		t.Errorf("%s.0 survived the cleanup", c2)
	}

	// Undeploy v1: its directory, boot directory and commit go away.
	if _, err := sr.Undeploy(ctx, 1, sysroot.UndeployOptions{}); err != nil {
		t.Fatalf("Undeploy(1): %v", err)
	}
	if got, want := names(sr.Deployments()), []string{c2.String() + ".1"}; !cmp.Equal(got, want) {
		t.Errorf("Deployments() after undeploy = %v, want %v", got, want)
	}
	for _, gone := range []string{d1.Path(), d1.OriginPath(), "boot/ostree/fakeos-" + bcsum1} {
		if _, err := os.Lstat(filepath.Join(s, gone)); err == nil {
			t.Errorf("%s still exists after undeploy", gone)
		}
	}
	if ok, _ := sr.Repo().HasObject(ostree.ObjectName{Checksum: c1, Type: ostree.ObjectCommit}); ok {
		t.Errorf("commit %s survived the prune", c1)
	}
	if v := booted(t, s); v.Checksum != c2.String() || v.Serial != 1 || v.Version != "1" {
		t.Errorf("BootedView after undeploy = %s.%d version %s", v.Checksum, v.Serial, v.Version)
	}
	if _, err := sr.Undeploy(ctx, 5, sysroot.UndeployOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Undeploy(5) = %v, want ErrNotFound", err)
	}
}
