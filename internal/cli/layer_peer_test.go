//go:build root && peer

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/compose"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
)

// layerNode is a sysroot whose repository holds the composed test base
// (hardlinked from the cache) and the test packages.
type layerNode struct {
	sys, repoPath string
	r             *repo.Repo
	base          ostree.Checksum
	debs          string // directory of the built .deb files
	source        string // sources.list line of the loopback apt archive
}

// The test packages: hello-layer has a file, a dependency only the
// archive has, and a postinst that writes into a file of the base in
// place and creates a /var directory; bad-postinst's postinst fails;
// needs-old depends on base-marker << 2, which the third base breaks.
var (
	helloLib   = testDeb{name: "hello-lib", version: "1.0", files: map[string]string{"usr/lib/hello-lib/lib.txt": "hello lib\n"}}
	helloLayer = testDeb{name: "hello-layer", version: "1.0", control: "Depends: hello-lib\n",
		files:    map[string]string{"usr/bin/hello-layer": "#!/bin/sh\necho hello from a layered package\n", "usr/share/hello-layer/README": "layered\n"},
		postinst: "echo LAYERED=hello-layer >> /usr/lib/os-release\nmkdir -p /var/lib/hello-layer"}
	badPostinst = testDeb{name: "bad-postinst", version: "1.0", files: map[string]string{"usr/share/bad-postinst/x": "x\n"},
		postinst: "echo 'bad-postinst: cannot configure this node' >&2\nexit 3"}
	needsOld = testDeb{name: "needs-old", version: "1.0", control: "Depends: base-marker (<< 2)\n",
		files: map[string]string{"usr/share/needs-old/x": "needs an old base\n"}}
)

func marker(v string) testDeb {
	return testDeb{name: "base-marker", version: v, files: map[string]string{"usr/share/base-marker/version": v + "\n"}}
}

func newLayerNode(t *testing.T) *layerNode {
	t.Helper()
	cache, base := composedBase(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	testutil.RequireTool(t, "dpkg-query", "dpkg")
	work := t.TempDir()
	n := &layerNode{sys: filepath.Join(work, "sys"), base: base, debs: filepath.Join(work, "debs")}
	publishMustRun(t, "sysroot", "init", "--sysroot", n.sys, "--os", "testos")
	clearImmutable(t, n.sys)
	n.repoPath = filepath.Join(n.sys, "ostree/repo")
	if b, err := exec.Command("cp", "-al", filepath.Join(cache, "objects")+"/.", filepath.Join(n.repoPath, "objects")).CombinedOutput(); err != nil {
		t.Fatalf("cp -al the cached base: %v: %s", err, b)
	}
	r, err := repo.Open(n.repoPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	n.r = r
	// A ref keeps the composed base from the prune of every deploy.
	if err := r.SetRef("", "test/layer/base", base); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(n.debs, 0o755); err != nil {
		t.Fatal(err)
	}
	n.source = aptArchive(t, buildDeb(t, n.debs, helloLib), buildDeb(t, n.debs, helloLayer), buildDeb(t, n.debs, badPostinst))
	return n
}

// makeBase commits, on ref testos/stable, a base: the composed tree plus
// the given local packages, version v.
func (n *layerNode) makeBase(t *testing.T, v string, debs ...testDeb) ostree.Checksum {
	t.Helper()
	return n.makeBaseOn(t, "testos/stable", v, debs...)
}

// makeBaseOn is makeBase on another ref.
func (n *layerNode) makeBaseOn(t *testing.T, ref, v string, debs ...testDeb) ostree.Checksum {
	t.Helper()
	var q compose.DeriveRequest
	for _, d := range debs {
		ld, err := compose.CheckDeb(buildDeb(t, t.TempDir(), d))
		if err != nil {
			t.Fatal(err)
		}
		q.Local = append(q.Local, ld)
	}
	res, err := compose.Derive(context.Background(), n.r, n.base, q, compose.DeriveOptions{SourceFiles: map[string][]byte{}})
	if err != nil {
		t.Fatalf("deriving base %s: %v", v, err)
	}
	return rebase(t, n.r, res.Commit, v, ref)
}

// deployment returns the directory of the default deployment.
func (n *layerNode) deployment(t *testing.T) deploymentJSON {
	t.Helper()
	return nodeStatus(t, n.sys).Deployments[0]
}

// useTestSources makes the deployment's apt sources the loopback archive
// only (the node's configuration; the base's own point at Debian's
// mirror, which the tests do not use).
func (n *layerNode) useTestSources(t *testing.T, dj deploymentJSON) {
	t.Helper()
	etc := filepath.Join(dj.Path, "etc/apt")
	writeTestFile(t, filepath.Join(etc, "sources.list"), "")
	writeTestFile(t, filepath.Join(etc, "sources.list.d/test.list"), n.source+"\n")
}

// TestDeriveKeepsBaseObjects derives a commit with a package whose
// postinst appends to a file of the base: the derived commit has the new
// content, the base's object is unchanged (fsck), and the derived commit
// writes only the packages' files, the dpkg database, the changed file
// and the changed directories.
func TestDeriveKeepsBaseObjects(t *testing.T) {
	n := newLayerNode(t)
	ctx := context.Background()
	before := countObjects(t, n.r)
	start := time.Now()
	// The work directory's path holds what overlayfs options take as syntax (escaped;
	// no backslash, which /proc/self/mountinfo would show escaped to the watch below).
	tmp := filepath.Join(n.repoPath, "tmp", "odd,dir:x")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	// While apt runs (its output arrives), the host's mount table, seen
	// from a thread of this process outside the derivation's namespace,
	// shows none of the derivation's mounts.
	seen := &mountWatch{dir: tmp}
	res, err := compose.Derive(ctx, n.r, n.base, compose.DeriveRequest{Install: []string{"hello-layer"}},
		compose.DeriveOptions{SourceFiles: map[string][]byte{"test.list": []byte(n.source + "\n")}, Log: seen, TmpDir: tmp})
	if err != nil {
		t.Fatalf("Derive(hello-layer) = %v", err)
	}
	took := time.Since(start)
	if seen.writes == 0 || seen.leaked != "" {
		t.Errorf("during Derive (%d writes of apt's output) the host's mount table showed %q, want no mount below %s", seen.writes, seen.leaked, seen.dir)
	}
	if seen.preconfigure {
		t.Errorf("dpkg-preconfigure ran (debconf said it was delaying package configuration); the derivation's apt configuration clears that hook")
	}
	after := countObjects(t, n.r)
	noLeftovers(t, n.repoPath)

	c, err := n.r.ReadCommit(res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if c.Parent != n.base {
		t.Errorf("derived commit's parent = %s, want the base %s", c.Parent, n.base)
	}
	if got := c.Metadata.Strings(compose.MetaLayerRequested); !slices.Equal(got, []string{"hello-layer"}) {
		t.Errorf("metadata %s = %v, want [hello-layer]", compose.MetaLayerRequested, got)
	}
	var added []string
	for _, p := range res.Added {
		added = append(added, p.Name)
	}
	if !slices.Equal(added, []string{"hello-layer", "hello-lib"}) {
		t.Errorf("Derive added %v, want [hello-layer hello-lib] (the package and its dependency from the archive)", added)
	}
	if got := catString(t, n.r, res.Commit, "/usr/lib/os-release"); !strings.Contains(got, "LAYERED=hello-layer") {
		t.Errorf("derived /usr/lib/os-release = %q, want the postinst's line", got)
	}
	if got := catString(t, n.r, n.base, "/usr/lib/os-release"); strings.Contains(got, "LAYERED") {
		t.Errorf("base /usr/lib/os-release = %q after Derive: the postinst wrote into the base", got)
	}
	if got := catString(t, n.r, res.Commit, "/"+compose.LayerTmpfilesConf); !strings.Contains(got, "d /var/lib/hello-layer 0755 root root -") {
		t.Errorf("%s = %q, want the postinst's /var directory", compose.LayerTmpfilesConf, got)
	}
	rep, err := repo.Fsck(ctx, n.r, repo.FsckOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("fsck after Derive = %v, %+v, want clean (no base object modified)", err, rep.Problems)
	}

	// What the commit wrote: every changed file is the packages', the
	// database's, the postinst's or the tmpfiles.d file.
	changed := changedPaths(t, n.r, n.base, res.Commit)
	for _, p := range changed {
		ok := strings.HasPrefix(p, "/usr/lib/hello-lib/") || strings.HasPrefix(p, "/usr/share/hello-layer/") ||
			p == "/usr/bin/hello-layer" || strings.HasPrefix(p, "/"+compose.DpkgDatabase+"/") ||
			p == "/usr/lib/os-release" || p == "/"+compose.LayerTmpfilesConf || p == "/usr/etc/ld.so.cache"
		if !ok {
			t.Errorf("the derived commit changed %s, which is neither the packages' nor the database's", p)
		}
	}
	newContent := after[ostree.ObjectFile] - before[ostree.ObjectFile]
	newMeta := after[ostree.ObjectDirTree] + after[ostree.ObjectDirMeta] + after[ostree.ObjectCommit] -
		before[ostree.ObjectDirTree] - before[ostree.ObjectDirMeta] - before[ostree.ObjectCommit]
	if int64(newContent) != res.Stats.ContentWritten || int64(newMeta) != res.Stats.MetaWritten {
		t.Errorf("repository grew by %d content and %d metadata objects; Derive counted %d and %d",
			newContent, newMeta, res.Stats.ContentWritten, res.Stats.MetaWritten)
	}
	if newContent > len(changed) {
		t.Errorf("Derive wrote %d content objects for %d changed files", newContent, len(changed))
	}
	t.Logf("layered hello-layer (+hello-lib) on %s in %.2fs (checkout %.2fs, apt/dpkg %.2fs, commit %.2fs, cleanup %.2fs): "+
		"%d changed files; %d content objects (%d bytes) and %d metadata objects written, %d reused",
		n.base, took.Seconds(), res.Stats.Checkout.Seconds(), res.Stats.Install.Seconds(), res.Stats.Commit.Seconds(), res.Stats.Cleanup.Seconds(),
		len(changed), newContent, res.Stats.BytesWritten, newMeta, res.Stats.ContentReused)

	// Derived again on top: removing hello-layer deletes its files
	// (whiteouts in the upper directory).
	r2, err := compose.Derive(ctx, n.r, res.Commit, compose.DeriveRequest{Remove: []string{"hello-layer"}},
		compose.DeriveOptions{SourceFiles: map[string][]byte{}})
	if err != nil {
		t.Fatalf("Derive(remove hello-layer) = %v", err)
	}
	files := treeFiles(t, n.r, r2.Commit)
	if _, ok := files["/usr/bin/hello-layer"]; ok {
		t.Errorf("/usr/bin/hello-layer is still in the commit after removing its package")
	}
	if _, ok := files["/usr/lib/hello-lib/lib.txt"]; !ok {
		t.Errorf("/usr/lib/hello-lib/lib.txt is gone, but only hello-layer was removed")
	}
	if len(r2.Removed) != 1 || r2.Removed[0].Name != "hello-layer" {
		t.Errorf("Derive(remove) removed %v, want hello-layer", r2.Removed)
	}
}

// TestLayerBadInput: a file that is not a .deb, a package whose postinst
// fails, a package name the archive lacks and a removal another package
// depends on each fail with a clear error; nothing is deployed, the
// deployment list and the booted deployment stay as they were, and no
// work directory or mount is left.
func TestLayerBadInput(t *testing.T) {
	n := newLayerNode(t)
	n.makeBase(t, "1", marker("1"))
	publishMustRun(t, "deploy", "--sysroot", n.sys, "--os", "testos", "testos/stable")
	dj := n.deployment(t)
	n.useTestSources(t, dj)
	notDeb := filepath.Join(t.TempDir(), "fake.deb")
	writeTestFile(t, notDeb, "#!/bin/sh\necho this is no package\n")
	before := nodeStatus(t, n.sys)

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"not a deb", []string{"install", notDeb}, []string{"fake.deb is not a Debian package"}},
		{"failing postinst", []string{"install", "bad-postinst"}, []string{"installing bad-postinst", "cannot configure this node", "post-installation script"}},
		{"unknown package", []string{"install", "no-such-package"}, []string{"installing no-such-package", "Unable to locate package no-such-package"}},
		{"package of the base", []string{"install", "base-marker"}, []string{"base-marker is in the base commit already"}},
		{"missing .deb", []string{"install", "./no-such.deb"}, []string{"no-such.deb"}},
		{"removal of no base package", []string{"override", "remove", "hello-layer"}, []string{"hello-layer to remove is not in the base commit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := publishRun(t, append(tc.args, "--sysroot", n.sys)...)
			if code == exitOK {
				t.Fatalf("strata %v = exit 0 (%s), want a failure", tc.args, out)
			}
			t.Logf("strata %v: exit %d: %s", tc.args, code, strings.TrimSpace(errs))
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("strata %v said %q, want it to say %q", tc.args, errs, w)
				}
			}
			after := nodeStatus(t, n.sys)
			if len(after.Deployments) != len(before.Deployments) || after.Deployments[0].Checksum != before.Deployments[0].Checksum {
				t.Errorf("after a failed %v the deployments are %+v, want them as before (%+v)", tc.args, after.Deployments, before.Deployments)
			}
			noLeftovers(t, n.repoPath)
		})
	}
	_, err := compose.CheckDeb(notDeb)
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("CheckDeb(a shell script) = %v, want ErrInvalid", err)
	}
}

// TestLayerLifecycle installs packages on a node (from the archive and a
// local .deb), checks status, the origin and dpkg's database, upgrades to
// a base on which the layer still installs, then to one on which it
// cannot (refused before anything is staged, the block shown by status),
// and removes the layer again; it logs the timings of a layered and a
// plain upgrade.
func TestLayerLifecycle(t *testing.T) {
	n := newLayerNode(t)
	v1 := n.makeBase(t, "1", marker("1"))
	publishMustRun(t, "deploy", "--sysroot", n.sys, "--os", "testos", "testos/stable")
	n.useTestSources(t, n.deployment(t))
	localDeb := buildDeb(t, t.TempDir(), needsOld)

	start := time.Now()
	var lj layerJSON
	out := publishMustRun(t, "install", "--sysroot", n.sys, "--json", "hello-layer", localDeb)
	installTook := time.Since(start)
	if err := json.Unmarshal([]byte(out), &lj); err != nil {
		t.Fatalf("install --json printed %q: %v", out, err)
	}
	if lj.Base != v1.String() || !slices.Equal(lj.Requested, []string{"hello-layer"}) || len(lj.Local) != 1 || !strings.HasSuffix(lj.Local[0], ":needs-old_1.0_all") {
		t.Errorf("install --json = %s, want base %s, requested [hello-layer] and needs-old pinned", out, v1)
	}
	t.Logf("strata install hello-layer needs-old.deb (derive + deploy): %.2fs; %d content objects (%d bytes) and %d metadata objects written",
		installTook.Seconds(), lj.Stats.ContentWritten, lj.Stats.BytesWritten, lj.Stats.MetaWritten)
	st := nodeStatus(t, n.sys)
	d0 := st.Deployments[0]
	checkDeployedTree(t, n.r, mustChecksum(t, d0.Checksum), d0.Path)
	noLeftovers(t, n.repoPath)
	if d0.BaseChecksum != v1.String() || !slices.Equal(d0.RequestedPackages, []string{"hello-layer"}) || len(d0.RequestedLocal) != 1 {
		t.Errorf("status after install: %+v, want base-checksum %s and the requested packages", d0, v1)
	}
	origin, err := os.ReadFile(d0.Path + ".origin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(origin), "baserefspec=testos/stable\n") || !strings.Contains(string(origin), "requested=hello-layer;\n") ||
		!strings.Contains(string(origin), "requested-local="+lj.Local[0]+";\n") {
		t.Errorf("origin after install:\n%s\nwant baserefspec and [packages] requested, requested-local", origin)
	}
	for _, p := range []string{"hello-layer", "hello-lib", "needs-old", "base-marker"} {
		if got := dpkgList(t, d0.Path, p); !strings.HasPrefix(got, "ii") {
			t.Errorf("dpkg-query in the deployment: %s = %q, want installed (ii)", p, got)
		}
	}
	text := publishMustRun(t, "status", "--sysroot", n.sys)
	if !strings.Contains(text, "BaseCommit: "+v1.String()) || !strings.Contains(text, "LayeredPackages: hello-layer "+lj.Local[0]) {
		t.Errorf("status:\n%s\nwant the base commit and the layered packages", text)
	}

	// An upgrade to a base the layer still installs on keeps it.
	v2 := n.makeBase(t, "2", marker("1.5"))
	start = time.Now()
	var up upgradeJSON
	out = publishMustRun(t, "upgrade", "--sysroot", n.sys, "--json")
	layeredUpgrade := time.Since(start)
	if err := json.Unmarshal([]byte(out), &up); err != nil || up.Deployed == nil {
		t.Fatalf("upgrade --json = %s (%v), want a deployment", out, err)
	}
	d0 = n.deployment(t)
	if d0.BaseChecksum != v2.String() || !slices.Equal(d0.RequestedPackages, []string{"hello-layer"}) {
		t.Errorf("after the upgrade to %s: %+v, want it as the base and hello-layer still requested", v2, d0)
	}
	if got := dpkgList(t, d0.Path, "needs-old"); !strings.HasPrefix(got, "ii") {
		t.Errorf("needs-old after the upgrade = %q, want installed", got)
	}
	if got := dpkgList(t, d0.Path, "base-marker"); got != "ii 1.5" {
		t.Errorf("base-marker after the upgrade = %q, want the new base's 1.5", got)
	}
	if _, err := os.Stat(filepath.Join(d0.Path, "usr/bin/hello-layer")); err != nil {
		t.Errorf("the layered file after the upgrade: %v", err)
	}
	// The deployment took the base's unchanged directories from the
	// derivation's checkout: it is the derived commit all the same.
	checkDeployedTree(t, n.r, mustChecksum(t, d0.Checksum), d0.Path)
	noLeftovers(t, n.repoPath)

	// A base that breaks needs-old: refused before staging, named.
	before := nodeStatus(t, n.sys)
	v3 := n.makeBase(t, "3", marker("2"))
	code, out, errs := publishRun(t, "upgrade", "--sysroot", n.sys)
	if code == exitOK || !strings.Contains(errs, "needs-old") || !strings.Contains(errs, "base-marker") || !strings.Contains(errs, "updates blocked") {
		t.Errorf("upgrade to a base that breaks needs-old = exit %d (%s%s), want a failure naming needs-old and base-marker", code, out, errs)
	}
	after := nodeStatus(t, n.sys)
	if len(after.Deployments) != len(before.Deployments) || after.Deployments[0].Checksum != before.Deployments[0].Checksum {
		t.Errorf("after the refused upgrade the deployments are %+v, want them unchanged", after.Deployments)
	}
	lb := after.UpdatesBlocked["testos"]
	if lb == nil || lb.Base != v3.String() || !strings.Contains(lb.Reason, "needs-old") || lb.Version != "3" {
		t.Errorf("status --json updates_blocked = %+v, want base %s version 3 and needs-old's reason", lb, v3)
	}
	if text := publishMustRun(t, "status", "--sysroot", n.sys); !strings.Contains(text, "Updates blocked (testos)") {
		t.Errorf("status:\n%s\nwant the blocked update", text)
	}
	noLeftovers(t, n.repoPath)

	// Uninstalling the blocker unblocks the update: the layer is derived
	// on the current base without it, and the next upgrade goes through.
	publishMustRun(t, "uninstall", "--sysroot", n.sys, "needs-old")
	d0 = n.deployment(t)
	if len(d0.RequestedLocal) != 0 || d0.BaseChecksum != v2.String() {
		t.Errorf("after uninstall needs-old: %+v, want no local package, base %s", d0, v2)
	}
	if got := dpkgList(t, d0.Path, "needs-old"); strings.HasPrefix(got, "ii") {
		t.Errorf("needs-old after uninstall = %q, want gone", got)
	}
	publishMustRun(t, "upgrade", "--sysroot", n.sys)
	if st := nodeStatus(t, n.sys); st.Deployments[0].BaseChecksum != v3.String() || st.UpdatesBlocked != nil {
		t.Errorf("after uninstall and upgrade: base %s, blocked %+v; want base %s and nothing blocked", st.Deployments[0].BaseChecksum, st.UpdatesBlocked, v3)
	}

	// Nothing layered any more: the base itself is deployed, with a
	// plain origin; a plain upgrade's time is the reference.
	publishMustRun(t, "uninstall", "--sysroot", n.sys, "hello-layer")
	d0 = n.deployment(t)
	if d0.Checksum != v3.String() || d0.BaseChecksum != "" || d0.Refspec != "testos/stable" {
		t.Errorf("after uninstalling everything: %+v, want the base %s itself", d0, v3)
	}
	n.makeBase(t, "4", marker("1.6"))
	start = time.Now()
	publishMustRun(t, "upgrade", "--sysroot", n.sys)
	plainUpgrade := time.Since(start)
	t.Logf("upgrade with one layered package (plus its dependency and a local .deb): %.2fs; plain upgrade: %.2fs; ratio %.2f",
		layeredUpgrade.Seconds(), plainUpgrade.Seconds(), layeredUpgrade.Seconds()/plainUpgrade.Seconds())

	// A base package removed, then put back.
	publishMustRun(t, "override", "remove", "--sysroot", n.sys, "base-marker")
	d0 = n.deployment(t)
	if !slices.Equal(d0.RequestedBaseRemovals, []string{"base-marker"}) || d0.BaseChecksum == "" {
		t.Errorf("after override remove base-marker: %+v, want it among the requested base removals", d0)
	}
	if got := dpkgList(t, d0.Path, "base-marker"); strings.HasPrefix(got, "ii") {
		t.Errorf("base-marker after override remove = %q, want gone", got)
	}
	if _, err := os.Stat(filepath.Join(d0.Path, "usr/share/base-marker/version")); err == nil {
		t.Errorf("base-marker's file is still in the deployment after override remove")
	}
	if text := publishMustRun(t, "status", "--sysroot", n.sys); !strings.Contains(text, "RemovedBasePackages: base-marker") {
		t.Errorf("status:\n%s\nwant the removed base package", text)
	}
	publishMustRun(t, "override", "reset", "--sysroot", n.sys)
	if d0 = n.deployment(t); d0.BaseChecksum != "" || len(d0.RequestedBaseRemovals) != 0 || !strings.HasPrefix(dpkgList(t, d0.Path, "base-marker"), "ii") {
		t.Errorf("after override reset: %+v, want the base itself with base-marker", d0)
	}
}

// mountWatch is a Log writer that reads the mount table of the thread it
// is called on each time apt or dpkg prints something.
type mountWatch struct {
	dir          string
	writes       int
	leaked       string
	preconfigure bool // debconf's pre-install hook ran
}

func (w *mountWatch) Write(p []byte) (int, error) {
	w.writes++
	if strings.Contains(string(p), "debconf: delaying package configuration") {
		w.preconfigure = true
	}
	b, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, w.dir) && w.leaked == "" {
				w.leaked = l
			}
		}
	}
	return len(p), nil
}
