//go:build root && peer

package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/compose"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// The layering tests need a composed Debian tree (dpkg, apt, the dpkg
// database in /usr/lib/sysimage/dpkg, /etc in /usr/etc). Composing one
// takes minutes, so it is made once and kept in a bare repository under
// .cache/layer-base/ (make clean removes it), keyed by the manifest.

const layerManifest = `name: layer-test
version: "0"
ref: test/layer/base
packages: [linux-image-amd64]
path-exclude:
  - /usr/share/man/*
  - /usr/share/doc/*
  - /usr/share/locale/*
  - /lib/modules/*/kernel/*
  - /etc/kernel/postinst.d/initramfs-tools
`

var layerBase struct {
	once   sync.Once
	repo   string
	commit ostree.Checksum
	err    error
}

// composedBase returns the bare repository holding the composed test base
// and its commit.
func composedBase(t *testing.T) (string, ostree.Checksum) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "mmdebstrap", "mmdebstrap")
	testutil.RequireTool(t, "dpkg-deb", "dpkg")
	layerBase.once.Do(func() {
		sum := sha256.Sum256([]byte(layerManifest))
		dir := filepath.Join(testutil.RepoRoot(t), ".cache", "layer-base", hex.EncodeToString(sum[:8]))
		p := filepath.Join(dir, "repo")
		layerBase.repo = p
		if r, err := repo.Open(p); err == nil {
			c, err := r.ResolveRev("test/layer/base")
			r.Close()
			if err == nil {
				layerBase.commit = c
				return
			}
		}
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			layerBase.err = err
			return
		}
		r, err := repo.Init(p, repo.ModeBare)
		if err != nil {
			layerBase.err = err
			return
		}
		defer r.Close()
		m, err := compose.ParseManifest("layer-test.yaml", []byte(layerManifest))
		if err != nil {
			layerBase.err = err
			return
		}
		start := time.Now()
		res, err := compose.Compose(context.Background(), r, m, compose.Options{CacheDir: filepath.Join(testutil.RepoRoot(t), ".cache", "compose-apt"),
			SourceDateEpoch: time.Unix(1700000000, 0), Initramfs: testInitramfs})
		if err != nil {
			layerBase.err = err
			return
		}
		t.Logf("composed the layering test base %s in %.0fs", res.Commit, time.Since(start).Seconds())
		layerBase.commit = res.Commit
	})
	if layerBase.err != nil {
		t.Fatalf("composing the layering test base: %v", layerBase.err)
	}
	return layerBase.repo, layerBase.commit
}

// testDeb describes a package buildDeb makes.
type testDeb struct {
	name, version string
	control       string            // extra control fields ("Depends: x\n")
	files         map[string]string // path (no leading /) → content
	postinst      string            // script body, "" for none
}

// buildDeb builds d with dpkg-deb --build into dir and returns its path.
func buildDeb(t *testing.T, dir string, d testDeb) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "pkg")
	ctl := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: strata tests <tests@strata.invalid>\n%sDescription: %s, a layering test package\n",
		d.name, d.version, d.control, d.name)
	writeTestFile(t, filepath.Join(root, "DEBIAN/control"), ctl)
	if d.postinst != "" {
		writeTestFile(t, filepath.Join(root, "DEBIAN/postinst"), "#!/bin/sh\nset -e\n"+d.postinst+"\n")
		if err := os.Chmod(filepath.Join(root, "DEBIAN/postinst"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range d.files {
		writeTestFile(t, filepath.Join(root, p), c)
	}
	out := filepath.Join(dir, d.name+"_"+d.version+"_all.deb")
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", root, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build %s: %v: %s", d.name, err, b)
	}
	return out
}

// aptArchive serves the .deb files as a flat apt archive (Packages and
// Release files written here, as apt-ftparchive would) on loopback and
// returns its sources.list line.
func aptArchive(t *testing.T, debs ...string) string {
	t.Helper()
	dir := t.TempDir()
	var pkgs strings.Builder
	for _, d := range debs {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(d)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		ctl, err := exec.Command("dpkg-deb", "--field", d).Output()
		if err != nil {
			t.Fatalf("dpkg-deb --field %s: %v", d, err)
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(&pkgs, "%sFilename: ./%s\nSize: %d\nSHA256: %s\n\n", ctl, filepath.Base(d), len(b), hex.EncodeToString(sum[:]))
	}
	idx := []byte(pkgs.String())
	if err := os.WriteFile(filepath.Join(dir, "Packages"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(idx)
	rel := fmt.Sprintf("Origin: strata-test\nLabel: strata-test\nDate: %s\nSHA256:\n %s %d Packages\n",
		time.Now().UTC().Format(time.RFC1123), hex.EncodeToString(sum[:]), len(idx))
	if err := os.WriteFile(filepath.Join(dir, "Release"), []byte(rel), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return "deb [trusted=yes] " + srv.URL + "/ ./"
}

// rebase makes a base commit from a derived one, as a compose of the
// base's manifest plus the packages would: the derived tree, no parent,
// no layer metadata, version v, on ref.
func rebase(t *testing.T, r *repo.Repo, derived ostree.Checksum, v, ref string) ostree.Checksum {
	t.Helper()
	c, err := r.ReadCommit(derived)
	if err != nil {
		t.Fatal(err)
	}
	var m ostree.Metadata
	for _, e := range c.Metadata {
		if k, _ := e.Key.(string); strings.HasPrefix(k, "strata.layer.") {
			continue
		}
		m = append(m, e)
	}
	m.Set(ostree.MetaVersion, gvariant.NewVariant("s", v))
	nc := ostree.Commit{Metadata: m, Subject: "base " + v, Timestamp: c.Timestamp + 1, RootTree: c.RootTree, RootMeta: c.RootMeta}
	b, err := nc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := txn.WriteMetadata(ostree.ObjectCommit, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.SetRef("", ref, sum); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// countObjects counts the objects of a repository by type.
func countObjects(t *testing.T, r *repo.Repo) map[ostree.ObjectType]int {
	t.Helper()
	n := map[ostree.ObjectType]int{}
	if err := r.ListObjects(func(o ostree.ObjectName) error { n[o.Type]++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// changedPaths lists the paths whose object differs between two commits
// (added, changed or removed), directories left out.
func changedPaths(t *testing.T, r *repo.Repo, a, b ostree.Checksum) []string {
	t.Helper()
	ta, tb := treeFiles(t, r, a), treeFiles(t, r, b)
	file := func(v string) bool { return strings.HasSuffix(v, "/"+(ostree.Checksum{}).String()) }
	var out []string
	for p, v := range tb {
		if ta[p] != v && file(v) {
			out = append(out, p)
		}
	}
	for p, v := range ta {
		if _, ok := tb[p]; !ok && file(v) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// dpkgList runs dpkg-query on a deployment's database and returns the
// status and version of pkg ("" if dpkg does not know it).
func dpkgList(t *testing.T, deployment, pkg string) string {
	t.Helper()
	out, _ := exec.Command("dpkg-query", "--admindir="+filepath.Join(deployment, compose.DpkgDatabase),
		"-W", "-f=${db:Status-Abbrev}${Version}", pkg).Output()
	return strings.TrimSpace(string(out))
}

// noLeftovers fails unless the repository's tmp/ holds no layering work
// directory and nothing is mounted below it.
func noLeftovers(t *testing.T, repoPath string) {
	t.Helper()
	if m, _ := filepath.Glob(filepath.Join(repoPath, "tmp", "strata-layer-*")); len(m) > 0 {
		t.Errorf("layering left %v behind", m)
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), filepath.Join(repoPath, "tmp")) {
		t.Errorf("mounts remain below %s", filepath.Join(repoPath, "tmp"))
	}
}

// checkDeployedTree fails unless the deployment at dir holds exactly the
// tree of commit, as a checkout of it would (its /etc, made by the
// deployment, left out): every file a hardlink of its object, every
// symlink its target, every directory with its dirmeta's owner and mode,
// and nothing else. A deployment made with a donor checkout
// (repo.CheckoutDonor) must pass as a whole checkout does.
func checkDeployedTree(t *testing.T, r *repo.Repo, commit ostree.Checksum, dir string) {
	t.Helper()
	seen := map[string]bool{}
	var bad []string
	err := repo.WalkCommit(context.Background(), r, commit, func(e *repo.WalkEntry, err error) error {
		if err != nil {
			return err
		}
		p := filepath.Join(dir, e.Path)
		seen[e.Path] = true
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			bad = append(bad, e.Path+": "+err.Error())
			return nil
		}
		switch e.Kind {
		case repo.EntryDir:
			dm, err := e.DirMeta()
			if err != nil {
				return err
			}
			if st.Mode != dm.Mode || st.Uid != dm.UID || st.Gid != dm.GID {
				bad = append(bad, fmt.Sprintf("%s: directory %o %d:%d, want %o %d:%d", e.Path, st.Mode, st.Uid, st.Gid, dm.Mode, dm.UID, dm.GID))
			}
		default:
			fi, _, err := e.FileInfo()
			if err != nil {
				return err
			}
			if fi.IsSymlink() {
				if target, err := os.Readlink(p); err != nil || target != fi.SymlinkTarget {
					bad = append(bad, fmt.Sprintf("%s: symlink to %q (%v), want %q", e.Path, target, err, fi.SymlinkTarget))
				}
				return nil
			}
			var obj unix.Stat_t
			if err := unix.Stat(r.ObjectPath(e.Object()), &obj); err != nil || obj.Ino != st.Ino {
				bad = append(bad, fmt.Sprintf("%s: inode %d, want its object's %d (%v)", e.Path, st.Ino, obj.Ino, err))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		if rel == "/etc" {
			return fs.SkipDir
		}
		if !seen[rel] {
			bad = append(bad, rel+": not in the commit")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Errorf("deployment %s differs from commit %s in %d paths: %v", dir, commit, len(bad), bad[:min(len(bad), 10)])
	}
}

func mustChecksum(t *testing.T, s string) ostree.Checksum {
	t.Helper()
	c, err := ostree.ParseChecksum(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
