package prepareroot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"golang.org/x/sys/unix"
)

const testDeploy = "0123abcd.0"

// makeSysroot writes an ostree-like physical root with one deployment of
// stateroot "os" and the boot symlink farm of docs/formats/sysroot.md.
func makeSysroot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dep := filepath.Join(root, "ostree/deploy/os/deploy", testDeploy)
	for _, d := range []string{"usr/bin", "etc", "var", "sysroot", "run", "dev", "proc", "sys", "boot"} {
		mkdir(t, filepath.Join(dep, d))
	}
	mkdir(t, filepath.Join(root, "ostree/deploy/os/var/lib"))
	mkdir(t, filepath.Join(root, "ostree/boot.1.0/os/bbbb"))
	mkdir(t, filepath.Join(root, "etc"))
	mkdir(t, filepath.Join(root, "boot"))
	symlink(t, "boot.1.0", filepath.Join(root, "ostree/boot.1"))
	symlink(t, "../../../deploy/os/deploy/"+testDeploy, filepath.Join(root, "ostree/boot.1.0/os/bbbb/0"))
	return root
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func TestResolveDeployment(t *testing.T) {
	t.Parallel()
	root := makeSysroot(t)
	dep := filepath.Join(root, "ostree/deploy/os/deploy", testDeploy)
	// Crafted links, each in its own boot directory.
	links := map[string]string{
		"abs":          "/ostree/deploy/os/deploy/" + testDeploy,
		"etc":          "../../../../etc",
		"root":         "/",
		"dotdot-above": "../../../../../../../../../../etc",
		"host":         "/../../../../../../" + strings.TrimPrefix(root, "/") + "/etc",
		"loop-a":       "loop-b",
		"loop-b":       "loop-a",
		"missing":      "../../../deploy/os/deploy/ffff.0",
		"origin-file":  "../../../deploy/os/deploy/" + testDeploy + ".origin",
		"not-csum":     "../../../deploy/os/deploy/notacsum",
		"nested":       "../../../deploy/os/deploy/" + testDeploy + "/usr",
		"novar":        "../../../deploy/other/deploy/eeee.1",
		"via-file":     "../../../deploy/os/deploy/" + testDeploy + ".origin/x",
	}
	mkdir(t, filepath.Join(root, "ostree/boot.1.0/os/x"))
	for name, target := range links {
		symlink(t, target, filepath.Join(root, "ostree/boot.1.0/os/x", name))
	}
	mkdir(t, filepath.Join(root, "ostree/deploy/os/deploy/notacsum"))
	mkdir(t, filepath.Join(root, "ostree/deploy/other/deploy/eeee.1"))
	if err := os.WriteFile(filepath.Join(root, "ostree/deploy/os/deploy", testDeploy+".origin"), []byte("[origin]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := Deployment{Stateroot: "os", Name: testDeploy, Dir: dep, Var: filepath.Join(root, "ostree/deploy/os/var")}

	tests := []struct {
		name    string
		arg     string
		wantErr string // "" for success
		class   error
	}{
		{"boot symlink", "/ostree/boot.1/os/bbbb/0", "", nil},
		{"deployment path", "/ostree/deploy/os/deploy/" + testDeploy, "", nil},
		{"double slashes and dots", "//ostree/./boot.1//os/bbbb/0/", "", nil},
		{"absolute link stays in sysroot", "/ostree/boot.1/os/x/abs", "", nil},
		{"relative arg", "ostree/boot.1/os/bbbb/0", "want an absolute path", errdefs.ErrInvalid},
		{"dotdot in arg", "/ostree/deploy/os/deploy/../../../../etc", `".." is not allowed`, errdefs.ErrInvalid},
		{"link to sysroot etc", "/ostree/boot.1/os/x/etc", "resolves to /etc, not a deployment", errdefs.ErrInvalid},
		{"link to /", "/ostree/boot.1/os/x/root", "resolves to /, not a deployment", errdefs.ErrInvalid},
		{"dotdot above the root", "/ostree/boot.1/os/x/dotdot-above", "resolves to /etc, not a deployment", errdefs.ErrInvalid},
		{"host path", "/ostree/boot.1/os/x/host", "does not exist", errdefs.ErrNotFound},
		{"symlink loop", "/ostree/boot.1/os/x/loop-a", "too many levels of symbolic links", errdefs.ErrInvalid},
		{"missing deployment", "/ostree/boot.1/os/x/missing", "/ostree/deploy/os/deploy/ffff.0 does not exist", errdefs.ErrNotFound},
		{"missing boot entry", "/ostree/boot.1/os/bbbb/7", "/ostree/boot.1.0/os/bbbb/7 does not exist", errdefs.ErrNotFound},
		{"origin file", "/ostree/boot.1/os/x/origin-file", "not a deployment", errdefs.ErrInvalid},
		{"not a checksum", "/ostree/boot.1/os/x/not-csum", "not a deployment", errdefs.ErrInvalid},
		{"inside a deployment", "/ostree/boot.1/os/x/nested", "not a deployment", errdefs.ErrInvalid},
		{"stateroot without var", "/ostree/boot.1/os/x/novar", "stateroot other: var", errdefs.ErrNotFound},
		{"through a file", "/ostree/boot.1/os/x/via-file", "is not a directory", errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ResolveDeployment(root, tt.arg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, tt.class) {
					t.Fatalf("ResolveDeployment(%s) = %+v, %v; want a %v error containing %q", tt.arg, got, err, tt.class, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveDeployment(%s) = %v", tt.arg, err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("ResolveDeployment(%s) mismatch (-want +got):\n%s", tt.arg, d)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	root := makeSysroot(t)
	l := Layout{Sysroot: root, NewRoot: "/newroot", Run: "/run"}
	dep := filepath.Join(root, "ostree/deploy/os/deploy", testDeploy)
	cfg := Config{Root: "/dev/vda", OSTree: "/ostree/boot.1/os/bbbb/0"}

	d, steps, err := Plan(l, cfg)
	if err != nil {
		t.Fatalf("Plan = %v", err)
	}
	if d.Name != testDeploy || d.Stateroot != "os" {
		t.Errorf("Plan deployment = %+v, want %s of stateroot os", d, testDeploy)
	}
	want := []Step{
		{Op: OpBind, Source: dep, Target: "/newroot"},
		{Op: OpBind, Source: "/newroot/usr", Target: "/newroot/usr"},
		{Op: OpRemountRO, Target: "/newroot/usr"},
		{Op: OpBind, Source: filepath.Join(root, "ostree/deploy/os/var"), Target: "/newroot/var"},
		{Op: OpCreateFile, Target: "/run/ostree-booted"},
		{Op: OpWriteFile, Target: "/run/systemd/system/var.mount", Data: "# Written by strata prepare-root, which bind-mounted /var before systemd started.\n" +
			"[Unit]\nDescription=The stateroot's /var\nDefaultDependencies=no\nConflicts=umount.target\nBefore=local-fs.target umount.target\n\n" +
			"[Mount]\nWhat=/sysroot/ostree/deploy/os/var\nWhere=/var\nOptions=bind\n"},
		{Op: OpMove, Source: root, Target: "/newroot/sysroot"},
		{Op: OpMove, Source: "/run", Target: "/newroot/run"},
	}
	if diff := cmp.Diff(want, steps); diff != "" {
		t.Errorf("Plan steps mismatch (-want +got):\n%s", diff)
	}

	t.Run("boot on the root filesystem", func(t *testing.T) {
		t.Parallel()
		root := makeSysroot(t)
		symlink(t, "loader.0", filepath.Join(root, "boot/loader"))
		_, steps, err := Plan(Layout{Sysroot: root, NewRoot: "/n", Run: "/run"}, cfg)
		if err != nil {
			t.Fatalf("Plan = %v", err)
		}
		bootStep := Step{Op: OpBind, Source: filepath.Join(root, "boot"), Target: "/n/boot"}
		if !containsStep(steps, bootStep) {
			t.Errorf("Plan steps = %v, want %v", steps, bootStep)
		}
	})
	t.Run("no ostree=", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		mkdir(t, filepath.Join(root, "run"))
		d, steps, err := Plan(Layout{Sysroot: root, NewRoot: "/n", Run: "/run"}, Config{Root: "/dev/vda"})
		if err != nil {
			t.Fatalf("Plan = %v", err)
		}
		want := []Step{{Op: OpMove, Source: root, Target: "/n"}, {Op: OpMove, Source: "/run", Target: "/n/run"}}
		if d != (Deployment{}) || !cmp.Equal(steps, want) {
			t.Errorf("Plan = %+v, %v; want no deployment, %v", d, steps, want)
		}
	})
	t.Run("missing mount point", func(t *testing.T) {
		t.Parallel()
		root := makeSysroot(t)
		if err := os.Remove(filepath.Join(root, "ostree/deploy/os/deploy", testDeploy, "sysroot")); err != nil {
			t.Fatal(err)
		}
		_, _, err := Plan(Layout{Sysroot: root, NewRoot: "/n", Run: "/run"}, cfg)
		if err == nil || !strings.Contains(err.Error(), "has no /sysroot mount point") {
			t.Errorf("Plan = %v, want an error naming the missing /sysroot", err)
		}
	})
}

func containsStep(steps []Step, s Step) bool {
	for _, x := range steps {
		if x == s {
			return true
		}
	}
	return false
}

type mountCall struct {
	Source, Target, FSType string
	Flags                  uintptr
}

// recMounter records mount calls and fails the call at index failAt (-1: never).
type recMounter struct {
	calls  []mountCall
	failAt int
}

func (m *recMounter) Mount(source, target, fstype string, flags uintptr, _ string) error {
	if len(m.calls) == m.failAt {
		return unix.EINVAL
	}
	m.calls = append(m.calls, mountCall{source, target, fstype, flags})
	return nil
}

func TestApply(t *testing.T) {
	t.Parallel()
	run := t.TempDir()
	steps := []Step{
		{Op: OpBind, Source: "/a", Target: "/n"},
		{Op: OpRemountRO, Target: "/n/usr"},
		{Op: OpCreateFile, Target: filepath.Join(run, "ostree-booted")},
		{Op: OpWriteFile, Target: filepath.Join(run, "systemd", "system", "var.mount"), Data: "[Mount]\n"},
		{Op: OpMove, Source: "/s", Target: "/n/sysroot"},
	}
	m := &recMounter{failAt: -1}
	if err := Apply(m, steps); err != nil {
		t.Fatalf("Apply = %v", err)
	}
	want := []mountCall{
		{"/a", "/n", "", unix.MS_BIND},
		{"", "/n/usr", "", unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY},
		{"/s", "/n/sysroot", "", unix.MS_MOVE},
	}
	if d := cmp.Diff(want, m.calls); d != "" {
		t.Errorf("Apply mount calls mismatch (-want +got):\n%s", d)
	}
	if _, err := os.Stat(filepath.Join(run, "ostree-booted")); err != nil {
		t.Errorf("Apply did not create ostree-booted: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(run, "systemd", "system", "var.mount")); err != nil || string(b) != "[Mount]\n" {
		t.Errorf("Apply wrote var.mount = %q, %v; want the step's data (and its parent directories)", b, err)
	}

	t.Run("stops at the failing step", func(t *testing.T) {
		t.Parallel()
		m := &recMounter{failAt: 1}
		err := Apply(m, steps)
		if err == nil || !strings.Contains(err.Error(), "remount-ro /n/usr") || !errors.Is(err, unix.EINVAL) {
			t.Errorf("Apply = %v, want the remount-ro step's EINVAL", err)
		}
		if len(m.calls) != 1 {
			t.Errorf("Apply made %d mount calls after the failure, want 1 before it", len(m.calls))
		}
	})
}

func TestRemoveTreeStaysOnItsFilesystem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mkdir(t, filepath.Join(dir, "a/b/c"))
	for _, f := range []string{"init", "a/x", "a/b/c/y"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	symlink(t, "/etc", filepath.Join(dir, "a/link"))
	if err := removeTree(dir); err != nil {
		t.Fatalf("removeTree = %v", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 0 {
		t.Errorf("removeTree left %v (%v), want an empty directory", ents, err)
	}
	if _, err := os.Stat("/etc"); err != nil {
		t.Errorf("removeTree followed a symlink: /etc: %v", err)
	}
}

// TestVarMountUnitRefusesUnsafeNames: a stateroot whose name a unit file cannot hold as it
// is gets no var.mount (a line break would add settings to the unit); a plain one does, with
// its path as the physical root has it after the switch and % escaped.
func TestVarMountUnitRefusesUnsafeNames(t *testing.T) {
	t.Parallel()
	l := Layout{Sysroot: "/sysroot", NewRoot: "/newroot", Run: "/run"}
	for _, tc := range []struct {
		stateroot string
		ok        bool
		what      string
	}{
		{"os", true, "What=/sysroot/ostree/deploy/os/var\n"},
		{"a%b", true, "What=/sysroot/ostree/deploy/a%%b/var\n"},
		{"os\nExecStart=/bin/evil", false, ""},
		{"os var", false, ""},
		{`os\`, false, ""},
	} {
		unit, ok := varMountUnit(l, Deployment{Stateroot: tc.stateroot, Var: filepath.Join("/sysroot/ostree/deploy", tc.stateroot, "var")})
		if ok != tc.ok || (ok && !strings.Contains(unit, tc.what)) {
			t.Errorf("varMountUnit(stateroot %q) = %q, %v; want ok %v with %q", tc.stateroot, unit, ok, tc.ok, tc.what)
		}
	}
}
