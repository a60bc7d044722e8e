//go:build root && peer

package sysroot

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestMergeEtcMatchesOstree is the differential test of the /etc merge:
// every case of etcMergeCases goes through a real `ostree admin deploy`
// (v1 deployed, local changes made in its etc, v2 deployed on top) and
// through MergeEtc on copies of the same trees. The new etc must be
// identical (type, mode, owner, content, symlink target, xattrs and the
// mtime of regular files), ostree's result must be the case's expected
// one, an ostree failure must be a strata failure, and DiffEtc must list
// what `ostree admin config-diff` prints.
//
// Deploys cost about a second each, so the cases that succeed share one
// sysroot, each in a directory of its own at the top of etc (the same
// directory, unchanged, in every tree); a failing case fails the whole
// deploy and gets its own sysroot, its paths at the top of etc.
func TestMergeEtcMatchesOstree(t *testing.T) {
	testutil.RequireRoot(t)
	ostree := testutil.Ostree(t)
	t.Parallel()
	var batch etcMergeCase
	var ok []etcMergeCase
	for _, c := range etcMergeCases() {
		if c.wantErr != "" {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				r := etcPeerDeploy(t, ostree, c)
				if r.ostreeErr == nil || !strings.Contains(strings.ToLower(r.ostreeStderr), c.wantErr) {
					t.Errorf("ostree admin deploy = %v, %q; want a failure containing %q", r.ostreeErr, r.ostreeStderr, c.wantErr)
				}
				if r.strataErr == nil || !strings.Contains(strings.ToLower(r.strataErr.Error()), c.wantErr) {
					t.Errorf("MergeEtc() = %v, want an error containing %q (ostree: %s)", r.strataErr, c.wantErr, strings.TrimSpace(r.ostreeStderr))
				}
			})
			continue
		}
		ok = append(ok, c)
		dir := etcCaseDir(c.name)
		batch.oldDefault = append(batch.oldDefault, etcPrefixed(dir, c.oldDefault)...)
		batch.oldEtc = append(batch.oldEtc, etcPrefixed(dir, c.oldEtc)...)
		batch.newDefault = append(batch.newDefault, etcPrefixed(dir, c.newDefault)...)
	}
	t.Run("cases that succeed", func(t *testing.T) {
		t.Parallel()
		r := etcPeerDeploy(t, ostree, batch)
		if r.ostreeErr != nil {
			t.Fatalf("ostree admin deploy os/v2: %v: %s", r.ostreeErr, r.ostreeStderr)
		}
		if r.strataErr != nil {
			t.Fatalf("MergeEtc() = %v, want nil as ostree", r.strataErr)
		}
		for _, c := range ok {
			t.Run(c.name, func(t *testing.T) {
				dir := etcCaseDir(c.name)
				if diff := cmp.Diff(etcSub(r.ostreeEtc, dir), etcSub(r.strataEtc, dir)); diff != "" {
					t.Errorf("new etc: MergeEtc differs from ostree admin deploy (-ostree +strata):\n%s", diff)
				}
				if diff := cmp.Diff(etcWant(c.want), etcSub(r.ostreePlain, dir)); diff != "" {
					t.Errorf("new etc after ostree admin deploy is not the case's expectation (-want +ostree):\n%s", diff)
				}
			})
		}
	})
}

// etcCaseDir names the directory of a case in the shared sysroot.
func etcCaseDir(name string) string {
	return "case-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(name))
}

func etcPrefixed(dir string, entries []etcEntry) []etcEntry {
	out := []etcEntry{eDir(dir)}
	for _, e := range entries {
		e.path = dir + "/" + e.path
		out = append(out, e)
	}
	return out
}

// etcSub is the part of a listing below dir, relative to it.
func etcSub(listing map[string]string, dir string) map[string]string {
	out := map[string]string{}
	for p, desc := range listing {
		if rel, ok := strings.CutPrefix(p, dir+"/"); ok {
			out[rel] = desc
		}
	}
	return out
}

type etcPeerResult struct {
	ostreeErr    error
	ostreeStderr string
	strataErr    error
	// Listings of the new etc, with the mtimes of regular files, from
	// ostree and from MergeEtc; and ostree's without mtimes.
	ostreeEtc, strataEtc, ostreePlain map[string]string
}

// etcPeerDeploy deploys c.oldDefault, turns the deployment's etc into
// c.oldEtc, compares DiffEtc with ostree admin config-diff, deploys
// c.newDefault, and runs MergeEtc on copies of the same three trees.
func etcPeerDeploy(t *testing.T, ostree string, c etcMergeCase) etcPeerResult {
	dir := t.TempDir()
	s := etcPeerSysroot(t, ostree, dir)
	repo := filepath.Join(s, "ostree", "repo")
	deploys := filepath.Join(s, "ostree", "deploy", "os", "deploy")

	etcPeerCommit(t, ostree, repo, "os/v1", filepath.Join(dir, "v1"), c.oldDefault)
	etcPeerRun(t, ostree, "admin", "deploy", "--sysroot", s, "--os", "os", "os/v1")
	d1 := etcPeerDeployments(t, deploys)[0]

	// The local changes: the v1 etc becomes the case's oldEtc.
	etc1 := filepath.Join(d1, "etc")
	entries, err := os.ReadDir(etc1)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(etc1, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	etcWriteTree(t, etc1, c.oldEtc)

	out := etcPeerRun(t, ostree, "admin", "config-diff", "--sysroot", s, "--os", "os")
	got, err := DiffEtc(filepath.Join(d1, "usr", "etc"), etc1)
	if err != nil {
		t.Fatalf("DiffEtc(v1 usr/etc, v1 etc) = %v", err)
	}
	if diff := cmp.Diff(etcParseConfigDiff(t, out), got); diff != "" {
		t.Errorf("DiffEtc() differs from ostree admin config-diff (-ostree +strata):\n%s", diff)
	}

	oldEtc := filepath.Join(dir, "old-etc")
	etcPeerCopy(t, etc1, oldEtc)

	etcPeerCommit(t, ostree, repo, "os/v2", filepath.Join(dir, "v2"), c.newDefault)
	var r etcPeerResult
	cmd := exec.Command(ostree, "admin", "deploy", "--sysroot", s, "--os", "os", "os/v2")
	cmd.Env = append(os.Environ(), "OSTREE_SYSROOT_OPTS=skip-sync")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r.ostreeErr = cmd.Run()
	r.ostreeStderr = stderr.String()

	// A failed deploy leaves its checkout, usr/etc complete.
	var d2 string
	for _, d := range etcPeerDeployments(t, deploys) {
		if d != d1 {
			d2 = d
		}
	}
	if d2 == "" {
		t.Fatalf("ostree admin deploy os/v2 (%v, %s) left no second deployment in %s", r.ostreeErr, r.ostreeStderr, deploys)
	}
	newEtc := filepath.Join(dir, "new-etc")
	etcPeerCopy(t, filepath.Join(d2, "usr", "etc"), newEtc)
	r.strataErr = MergeEtc(filepath.Join(d1, "usr", "etc"), oldEtc, newEtc)
	if r.ostreeErr != nil || r.strataErr != nil {
		return r
	}

	// ostree's etc starts as a copy of usr/etc made at deploy time, with
	// new mtimes, ours as a cp -a: the mtime of an untouched new default
	// is left out. Files the merge copies keep oldEtc's mtime on both sides.
	r.ostreeEtc = etcListing(t, filepath.Join(d2, "etc"), true)
	r.strataEtc = etcListing(t, newEtc, true)
	for p, desc := range etcListing(t, filepath.Join(d2, "usr", "etc"), true) {
		if r.strataEtc[p] == desc {
			r.strataEtc[p] = etcStripMtime(desc)
			r.ostreeEtc[p] = etcStripMtime(r.ostreeEtc[p])
		}
	}
	r.ostreePlain = etcListing(t, filepath.Join(d2, "etc"), false)
	return r
}

// etcPeerSysroot makes an ostree sysroot with stateroot "os" under dir,
// its boot directory on a tmpfs of its own (ostree admin deploy freezes
// the filesystem of /boot). Cleanup unmounts it and clears the immutable
// flag of the deployments so that the temporary directory can go.
func etcPeerSysroot(t *testing.T, ostree, dir string) string {
	t.Helper()
	s := filepath.Join(dir, "sysroot")
	if err := os.Mkdir(s, 0o755); err != nil {
		t.Fatal(err)
	}
	etcPeerRun(t, ostree, "admin", "init-fs", s)
	etcPeerRun(t, ostree, "admin", "os-init", "os", "--sysroot", s)
	boot := filepath.Join(s, "boot")
	if err := unix.Mount("tmpfs", boot, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v", boot, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(boot, 0); err != nil {
			t.Errorf("unmounting %s: %v", boot, err)
		}
		dirs, _ := filepath.Glob(filepath.Join(s, "ostree", "deploy", "*", "deploy", "*"))
		for _, d := range dirs {
			if err := etcClearImmutable(d); err != nil {
				t.Errorf("clearing the immutable flag of %s: %v", d, err)
			}
		}
	})
	return s
}

func etcStripMtime(desc string) string {
	if i := strings.LastIndex(desc, " mtime="); i >= 0 {
		return desc[:i]
	}
	return desc
}

// etcImmutableFL is FS_IMMUTABLE_FL (linux/fs.h).
const etcImmutableFL = 0x10

func etcClearImmutable(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENXIO) {
		return nil // .origin files are opened fine; only directories carry the flag
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if flags&etcImmutableFL == 0 {
		return nil
	}
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags&^etcImmutableFL))
}

// etcPeerCommit commits a bootable tree (a fake kernel, os-release) whose
// usr/etc holds etc, to branch in repo.
func etcPeerCommit(t *testing.T, ostree, repo, branch, tree string, etc []etcEntry) {
	t.Helper()
	etcWriteTree(t, tree, []etcEntry{
		eDir("usr"), eDir("usr/lib"), eDir("usr/lib/modules"), eDir("usr/lib/modules/5.10.0-fake"),
		eFile("usr/lib/modules/5.10.0-fake/vmlinuz", "fake kernel\n"),
		eFile("usr/lib/modules/5.10.0-fake/initramfs.img", "fake initramfs\n"),
		eFile("usr/lib/os-release", "ID=fake\nPRETTY_NAME=\"Fake OS\"\n"),
	})
	etcWriteTree(t, filepath.Join(tree, "usr", "etc"), etc)
	etcPeerRun(t, ostree, "--repo="+repo, "commit", "-b", branch, "--tree=dir="+tree)
}

// etcPeerDeployments lists the deployment directories, sorted.
func etcPeerDeployments(t *testing.T, deploys string) []string {
	t.Helper()
	entries, err := os.ReadDir(deploys)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(deploys, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no deployment in %s", deploys)
	}
	return out
}

// etcPeerCopy copies a tree with owners, modes, xattrs and times (cp -a,
// not strata's code, so that the comparison stays independent).
func etcPeerCopy(t *testing.T, src, dst string) {
	t.Helper()
	cp := testutil.RequireTool(t, "cp", "coreutils")
	if out, err := exec.Command(cp, "-a", "--preserve=all", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
}

func etcPeerRun(t *testing.T, ostree string, args ...string) string {
	t.Helper()
	cmd := exec.Command(ostree, args...)
	cmd.Env = append(os.Environ(), "OSTREE_SYSROOT_OPTS=skip-sync")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ostree %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// etcParseConfigDiff reads `ostree admin config-diff` output, lines of
// "M    path", "D    path" and "A    path", into a sorted EtcDiff.
func etcParseConfigDiff(t *testing.T, out string) EtcDiff {
	t.Helper()
	var d EtcDiff
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		kind, p, ok := strings.Cut(sc.Text(), "    ")
		if !ok {
			t.Fatalf("config-diff line %q: no 4-space separator", sc.Text())
		}
		switch kind {
		case "M":
			d.Modified = append(d.Modified, p)
		case "D":
			d.Removed = append(d.Removed, p)
		case "A":
			d.Added = append(d.Added, p)
		default:
			t.Fatalf("config-diff line %q: unknown kind %q", sc.Text(), kind)
		}
	}
	slices.Sort(d.Modified)
	slices.Sort(d.Removed)
	slices.Sort(d.Added)
	return d
}
