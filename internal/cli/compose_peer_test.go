//go:build root && peer

package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/compose"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
	"github.com/strata-os/strata/internal/testutil"
)

// The compose peer tests run real mmdebstrap composes against the host's
// Debian mirror. They share one package cache under the repository's
// .cache/ (removed by make clean), so only the first run downloads.
//
// The good-path manifest is smaller than examples/minimal.yaml to keep the
// tier within minutes: systemd and the kernel with its modules excluded,
// and the initramfs-tools hook excluded. The initramfs is then provided by
// an InitramfsFunc, the seam a strata-built initramfs will use.

func composeCache(t *testing.T) string {
	t.Helper()
	d := filepath.Join(testutil.RepoRoot(t), ".cache", "compose-apt")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// smallManifest writes a test manifest (and its overlay) into dir.
func smallManifest(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	writeTestFile(t, filepath.Join(dir, "overlay/etc/motd"), "strata compose test\n")
	// A unit that only the overlay brings, enabled by units.enable.
	writeTestFile(t, filepath.Join(dir, "overlay/usr/lib/systemd/system/strata-test.service"),
		"[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
	pkgs := append([]string{"systemd", "linux-image-amd64"}, extra...)
	m := fmt.Sprintf(`name: strata-test
version: "7.1"
ref: test/x86_64/small
packages: [%s]
path-exclude:
  - /usr/share/man/*
  - /usr/share/doc/*
  - /usr/share/locale/*
  - /lib/modules/*/kernel/*
  - /etc/kernel/postinst.d/initramfs-tools
path-include: [/usr/share/doc/*/copyright]
overlays:
  - source: overlay
units:
  enable: [systemd-networkd.service, strata-test.service]
  mask: [apt-daily.timer]
kernel-args: [console=ttyS0, quiet]
metadata:
  purpose: test
`, strings.Join(pkgs, ", "))
	p := filepath.Join(dir, fmt.Sprintf("small-%d.yaml", len(extra)))
	writeTestFile(t, p, m)
	return p
}

func writeTestFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testInitramfs(_ context.Context, root, kver string) error {
	return os.WriteFile(filepath.Join(root, "usr/lib/modules", kver, "initramfs.img"), []byte("test initramfs\n"), 0o644)
}

func initRepo(t *testing.T, mode string) (string, *repo.Repo) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "repo-"+mode)
	if _, errOut, code := cmtRun(t, nil, "repo", "init", "--repo", p, "--mode", mode); code != 0 {
		t.Fatalf("repo init: %s", errOut)
	}
	r, err := repo.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return p, r
}

// treeFiles maps every path of a commit to its object checksum.
func treeFiles(t *testing.T, r *repo.Repo, c ostree.Checksum) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := repo.WalkCommit(context.Background(), r, c, func(e *repo.WalkEntry, err error) error {
		if err != nil {
			return err
		}
		out[e.Path] = e.Checksum.String() + "/" + e.Meta.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// reportTreeDiff prints the paths whose objects differ between two commits
// of two repositories, to debug a reproducibility failure.
func reportTreeDiff(t *testing.T, ra *repo.Repo, a ostree.Checksum, rb *repo.Repo, b ostree.Checksum) {
	t.Helper()
	fa, fb := treeFiles(t, ra, a), treeFiles(t, rb, b)
	var diffs []string
	for p, ca := range fa {
		if cb, ok := fb[p]; !ok {
			diffs = append(diffs, "D "+p)
		} else if ca != cb && !strings.HasSuffix(p, "/") {
			diffs = append(diffs, "M "+p)
		}
	}
	for p := range fb {
		if _, ok := fa[p]; !ok {
			diffs = append(diffs, "A "+p)
		}
	}
	slices.Sort(diffs)
	t.Errorf("%d paths differ:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), 100)], "\n"))
}

func catString(t *testing.T, r *repo.Repo, c ostree.Checksum, p string) string {
	t.Helper()
	var b bytes.Buffer
	if err := repo.Cat(context.Background(), r, c.String(), p, &b); err != nil {
		t.Errorf("cat %s: %v", p, err)
	}
	return b.String()
}

func TestComposePeer(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "mmdebstrap", "mmdebstrap")
	cache := composeCache(t)
	dir := t.TempDir()
	small := smallManifest(t, dir)
	epoch := time.Unix(1700000000, 0)
	key, pub, err := sign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := sign.NewEd25519Signer(key)
	ctx := context.Background()

	run := func(r *repo.Repo, manifest string, signed bool) *compose.Result {
		t.Helper()
		m, err := compose.LoadManifest(manifest)
		if err != nil {
			t.Fatal(err)
		}
		opts := compose.Options{CacheDir: cache, SourceDateEpoch: epoch, Initramfs: testInitramfs}
		if signed {
			opts.Sign = func(commit, detached []byte) ([]byte, error) { return sign.Append(detached, commit, signer) }
		}
		start := time.Now()
		res, err := compose.Compose(ctx, r, m, opts)
		if err != nil {
			t.Fatalf("Compose(%s) = %v", manifest, err)
		}
		st := res.Stats
		t.Logf("compose %s into %s: %s in %.1fs (%v); %d objects written (%d content, %d bytes), %d reused",
			filepath.Base(manifest), r.Mode(), res.Commit, time.Since(start).Seconds(), res.Durations,
			st.ContentWritten+st.MetaWritten, st.ContentWritten, st.BytesWritten, st.ContentReused+st.MetaReused)
		return res
	}

	pathA, ra := initRepo(t, "archive")
	_, rb := initRepo(t, "bare-user")
	resA := run(ra, small, true)
	resB := run(rb, small, false)

	t.Run("reproducible", func(t *testing.T) {
		if resA.Commit != resB.Commit {
			t.Errorf("Compose twice with SOURCE_DATE_EPOCH=%d: commits %s (archive) and %s (bare-user), want equal",
				epoch.Unix(), resA.Commit, resB.Commit)
			reportTreeDiff(t, ra, resA.Commit, rb, resB.Commit)
		}
	})

	t.Run("layout", func(t *testing.T) {
		c := resA.Commit
		kver := resA.Kernel
		if kver == "" {
			t.Fatal("no kernel version")
		}
		for _, p := range []string{"/usr/lib/modules/" + kver + "/vmlinuz", "/usr/lib/modules/" + kver + "/initramfs.img",
			"/usr/etc/passwd", "/usr/lib/sysimage/dpkg/status", "/usr/lib/tmpfiles.d/strata-var.conf",
			"/usr/etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
			"/usr/etc/systemd/system/multi-user.target.wants/strata-test.service",
			"/usr/etc/systemd/system/apt-daily.timer"} {
			if _, err := repo.Lookup(ra, c, p); err != nil {
				t.Errorf("Lookup(%s) = %v", p, err)
			}
		}
		for _, p := range []string{"/etc", "/vmlinuz", "/usr/etc/hostname", "/usr/etc/resolv.conf"} {
			if _, err := repo.Lookup(ra, c, p); err == nil {
				t.Errorf("Lookup(%s) found it, want it absent", p)
			}
		}
		links := map[string]string{
			"/home": "var/home", "/root": "var/roothome", "/opt": "var/opt", "/srv": "var/srv", "/mnt": "var/mnt",
			"/usr/local": "../var/usrlocal", "/ostree": "sysroot/ostree", "/usr/etc/systemd/system/apt-daily.timer": "/dev/null",
		}
		for p, want := range links {
			e, err := repo.Lookup(ra, c, p)
			if err != nil {
				t.Errorf("Lookup(%s) = %v", p, err)
				continue
			}
			if fi, _, err := e.FileInfo(); err != nil || !fi.IsSymlink() || fi.SymlinkTarget != want {
				t.Errorf("%s = %+v (%v), want a symlink to %s", p, fi, err, want)
			}
		}
		for _, d := range []string{"/var", "/boot", "/sysroot"} {
			e, err := repo.Lookup(ra, c, d)
			if err != nil {
				t.Errorf("Lookup(%s) = %v", d, err)
				continue
			}
			dt, err := e.DirTree()
			if err != nil || len(dt.Files)+len(dt.Dirs) != 0 {
				t.Errorf("%s has %d files and %d dirs (%v), want an empty directory", d, len(dt.Files), len(dt.Dirs), err)
			}
		}
		if got := catString(t, ra, c, "/usr/etc/machine-id"); got != "" {
			t.Errorf("/usr/etc/machine-id = %q, want empty", got)
		}
		if got := catString(t, ra, c, "/usr/etc/motd"); got != "strata compose test\n" {
			t.Errorf("/usr/etc/motd = %q, want the overlay's", got)
		}
		osr := catString(t, ra, c, "/usr/lib/os-release")
		for _, want := range []string{`VERSION_ID="7.1"`, `PRETTY_NAME="strata-test 7.1"`, `IMAGE_ID="strata-test"`, "ID=debian"} {
			if !strings.Contains(osr, want) {
				t.Errorf("os-release = %q, want %s in it", osr, want)
			}
		}
		conf := catString(t, ra, c, "/usr/lib/tmpfiles.d/strata-var.conf")
		for _, want := range []string{"L /var/lib/dpkg - - - - /usr/lib/sysimage/dpkg", "d /var/roothome 0700 root root -", "d /var/usrlocal 0755 root root -"} {
			if !strings.Contains(conf, want) {
				t.Errorf("strata-var.conf lacks %q:\n%s", want, conf)
			}
		}
		if got := catString(t, ra, c, "/usr/lib/kernel/cmdline"); got != "console=ttyS0 quiet\n" {
			t.Errorf("/usr/lib/kernel/cmdline = %q", got)
		}
		// Ownership is kept: chage is root:shadow (gid 42) 02755 in Debian.
		e, err := repo.Lookup(ra, c, "/usr/bin/chage")
		if err != nil {
			t.Fatalf("Lookup(/usr/bin/chage) = %v", err)
		}
		if fi, _, err := e.FileInfo(); err != nil || fi.GID != 42 || fi.Mode&0o7777 != 0o2755 {
			t.Errorf("/usr/bin/chage gid %d mode %o (%v), want gid 42 (shadow), mode 2755", fi.GID, fi.Mode&0o7777, err)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		cm, err := ra.ReadCommit(resA.Commit)
		if err != nil {
			t.Fatal(err)
		}
		md := cm.Metadata
		if v := md.String("version"); v != "7.1" {
			t.Errorf("version = %q", v)
		}
		if v, ok := md.Get("ostree.bootable"); !ok || v.Value != true {
			t.Errorf("ostree.bootable = %v, want true", v)
		}
		if v := md.String("ostree.linux"); v != resA.Kernel {
			t.Errorf("ostree.linux = %q, want %q", v, resA.Kernel)
		}
		if v := md.String(compose.MetaName); v != "strata-test" {
			t.Errorf("%s = %q", compose.MetaName, v)
		}
		if v := md.String("purpose"); v != "test" {
			t.Errorf("purpose = %q", v)
		}
		if v := md.Strings(compose.MetaKernelArgs); !slices.Equal(v, []string{"console=ttyS0", "quiet"}) {
			t.Errorf("%s = %q", compose.MetaKernelArgs, v)
		}
		pkgs, ok, err := compose.CommitPackages(md)
		if err != nil || !ok || !slices.ContainsFunc(pkgs, func(p compose.Package) bool { return p.Name == "systemd" }) {
			t.Errorf("strata.packages = %v (%v, %v), want systemd in it", pkgs, ok, err)
		}
		if cm.Timestamp != uint64(epoch.Unix()) {
			t.Errorf("commit timestamp = %v, want %v", cm.Timestamp, epoch)
		}
		data, err := ra.ReadMetadata(ostree.ObjectCommit, resA.Commit)
		if err != nil {
			t.Fatal(err)
		}
		detached, err := ra.ReadCommitMeta(resA.Commit)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sign.Verify(data, detached, sign.NewEd25519Verifier([]sign.PublicKey{pub}, nil)); err != nil {
			t.Errorf("signature of the composed commit: %v", err)
		}
	})

	t.Run("one more package", func(t *testing.T) {
		first := resA.Stats.ContentWritten + resA.Stats.MetaWritten
		res := run(ra, smallManifest(t, dir, "less"), false)
		written := res.Stats.ContentWritten + res.Stats.MetaWritten
		if written*10 > first {
			t.Errorf("compose with less wrote %d objects, want far fewer than the first compose's %d", written, first)
		}
		if res.Stats.Parent != resA.Commit {
			t.Errorf("parent = %s, want %s", res.Stats.Parent, resA.Commit)
		}
		out, errOut, code := cmtRun(t, nil, "repo", "diff", "--repo", pathA, resA.Commit.String(), res.Commit.String())
		if code != 0 || !regexp.MustCompile(`(?m)^Added:\n  less \S+$`).MatchString(out) || !strings.Contains(out, "A    /usr/bin/less\n") {
			t.Errorf("repo diff = exit %d, stderr %q, stdout:\n%s\nwant /usr/bin/less added and an Added: section with less", code, errOut, out)
		}
	})
}

// TestComposePeerBadInput composes bad inputs with the CLI: each fails with
// a clear error before anything is committed, and leaves no ref and no
// temporary directory.
func TestComposePeerBadInput(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "mmdebstrap", "mmdebstrap")
	cache := composeCache(t)
	dir := t.TempDir()
	base := "name: bad\nversion: \"1\"\nref: test/bad\n"
	for _, tc := range []struct {
		name, manifest, want string
		code                 int // the exit code of the error's class
	}{
		{"unknown package", base + "packages: [systemd, strata-no-such-package]\n", "Unable to locate package strata-no-such-package", exitFailure},
		{"unreachable mirror", base + "packages: [systemd]\nmirror: http://127.0.0.1:9/debian\nsuite: bookworm\n", "checking the mirror: fetching http://127.0.0.1:9/debian/dists/bookworm/InRelease", exitUnavailable},
		{"missing overlay", base + "packages: [systemd]\noverlays:\n  - source: no-such-overlay\n", "overlays[0].source", exitInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repoPath, _ := initRepo(t, "archive")
			mf := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			writeTestFile(t, mf, tc.manifest)
			tmpBefore, _ := filepath.Glob(filepath.Join(os.TempDir(), "mmdebstrap.*"))
			_, errOut, code := cmtRun(t, nil, "compose", mf, "--repo", repoPath, "--cache-dir", cache)
			if code != tc.code || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "cannot compose") {
				t.Errorf("compose = exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.want)
			}
			if refs, err := os.ReadDir(filepath.Join(repoPath, "refs/heads")); err != nil || len(refs) != 0 {
				t.Errorf("after the failed compose refs/heads has %d entries (%v), want none", len(refs), err)
			}
			if left, _ := filepath.Glob(filepath.Join(repoPath, "tmp", "strata-compose-*")); len(left) != 0 {
				t.Errorf("after the failed compose, %v is left", left)
			}
			tmpAfter, _ := filepath.Glob(filepath.Join(os.TempDir(), "mmdebstrap.*"))
			if len(tmpAfter) > len(tmpBefore) {
				t.Errorf("after the failed compose, mmdebstrap temporary files %v are left", tmpAfter)
			}
		})
	}
}
