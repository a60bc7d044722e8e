//go:build peer && root

package interop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/sysroot/sysroottest"
	"golang.org/x/sys/unix"
)

// The sysroot differential tests (sysroot_seq_test.go, sysroot_layout_test.go) drive `strata`
// and `ostree admin` on sysroots whose /boot is a tmpfs of its own: ostree admin freezes the
// filesystem holding /boot while it syncs, which must never be the machine's root filesystem.

const peerOS = "fakeos"

// newPeerSysroot makes a sysroot with the stateroot fakeos, initialized by tool ("ostree":
// admin init-fs + os-init; "strata": sysroot init), with its boot directory on a tmpfs that
// t.Cleanup unmounts. The deployments' immutable attribute is cleared before t.TempDir
// removes them.
func newPeerSysroot(t *testing.T, tool string) string {
	t.Helper()
	s := filepath.Join(t.TempDir(), "sysroot")
	switch tool {
	case "ostree":
		if err := os.Mkdir(s, 0o755); err != nil {
			t.Fatal(err)
		}
		mustOstree(t, "admin", "init-fs", s)
		mustOstree(t, "admin", "os-init", peerOS, "--sysroot", s)
	case "strata":
		mustStrata(t, "sysroot", "init", "--sysroot", s, "--os", peerOS)
	default:
		t.Fatalf("internal error: no tool %q", tool)
	}
	boot := filepath.Join(s, "boot")
	if err := unix.Mount("tmpfs", boot, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v", boot, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(boot, 0); err != nil {
			t.Errorf("unmounting %s: %v", boot, err)
		}
		sysroottest.ClearImmutable(s)
	})
	// The tests compare layouts, not durability.
	mustOstree(t, "--repo="+filepath.Join(s, "ostree/repo"), "config", "set", "core.fsync", "false")
	return s
}

// ostreeAdmin runs `ostree admin ARGS --sysroot S` with OSTREE_SYSROOT_OPTS=skip-sync and
// fails the test unless it succeeds.
func ostreeAdmin(t *testing.T, s string, args ...string) string {
	t.Helper()
	args = append(append([]string{"admin"}, args...), "--sysroot", s)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("ostree", args...)
	cmd.Env = append(os.Environ(), "OSTREE_SYSROOT_OPTS=skip-sync")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s%s", commandLine("ostree", args), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// peerCommit writes the fake OS tree f and commits it with strata to the branch of the
// sysroot's repository at a fixed time, so that the same calls give the same checksum in
// every sysroot.
func peerCommit(t *testing.T, s, branch string, f sysroottest.FakeOS, timestamp int64) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree")
	f.WriteTree(t, tree)
	args := []string{"repo", "commit", "--repo", filepath.Join(s, "ostree/repo"), "--branch", branch,
		"--tree", tree, "--subject", "fake OS " + f.Version, "--timestamp", strconv.FormatInt(timestamp, 10)}
	if f.Version != "" {
		args = append(args, "--metadata", "version="+f.Version)
	}
	sum, err := checksumOut(mustStrata(t, args...))
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// peerDeployment is one deployment as a tool lists it.
type peerDeployment struct {
	OSName   string
	Checksum string
	Serial   int
	Version  string
	Refspec  string
	Pinned   bool
	Mark     string // ostree's (pending), (rollback), (staged) mark; "" if none
	Booted   bool
}

func (d peerDeployment) String() string {
	s := fmt.Sprintf("%s %s.%d version=%q refspec=%q", d.OSName, d.Checksum, d.Serial, d.Version, d.Refspec)
	if d.Pinned {
		s += " pinned"
	}
	if d.Mark != "" {
		s += " (" + d.Mark + ")"
	}
	if d.Booted {
		s += " booted"
	}
	return s
}

var statusHeadRE = regexp.MustCompile(`^([* ]) (\S+) ([0-9a-f]{64})\.([0-9]+)(?: \((\w+)\))?$`)

// parseOstreeStatus reads the text of `ostree admin status` (2022.7, ot-admin-builtin-status.c):
// a head line "* OS CSUM.SERIAL (mark)" per deployment, then indented "Version:", "origin
// refspec:", "Pinned: yes" lines. Lines it does not know are returned in unknown.
func parseOstreeStatus(out string) (ds []peerDeployment, unknown []string, err error) {
	for _, line := range strings.Split(out, "\n") {
		if line == "" || line == "No deployments." {
			continue
		}
		if m := statusHeadRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[4])
			ds = append(ds, peerDeployment{OSName: m[2], Checksum: m[3], Serial: n, Mark: m[5], Booted: m[1] == "*"})
			continue
		}
		if len(ds) == 0 || !strings.HasPrefix(line, "    ") {
			return nil, nil, fmt.Errorf("ostree admin status: unexpected line %q in\n%s", line, out)
		}
		d := &ds[len(ds)-1]
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		switch k {
		case "Version":
			d.Version = v
		case "origin refspec":
			d.Refspec = v
		case "Pinned":
			d.Pinned = v == "yes"
		default:
			unknown = append(unknown, line)
		}
	}
	return ds, unknown, nil
}

// statusOfOstree runs `ostree admin status` on s and parses it.
func statusOfOstree(t *testing.T, s string) ([]peerDeployment, string) {
	t.Helper()
	out := ostreeAdmin(t, s, "status")
	ds, unknown, err := parseOstreeStatus(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(unknown) > 0 {
		t.Errorf("ostree admin status printed lines the test does not compare: %q", unknown)
	}
	return ds, out
}

// strataStatus is the part of `strata status --json` the tests read.
type strataStatus struct {
	BootVersion    int `json:"bootversion"`
	SubBootVersion int `json:"subbootversion"`
	Deployments    []struct {
		Index        int      `json:"index"`
		OSName       string   `json:"osname"`
		Checksum     string   `json:"commit"`
		Serial       int      `json:"serial"`
		BootChecksum string   `json:"boot_checksum"`
		BootSerial   int      `json:"boot_serial"`
		Refspec      string   `json:"refspec"`
		Version      string   `json:"version"`
		Kargs        []string `json:"kargs"`
		Booted       bool     `json:"booted"`
		Staged       bool     `json:"staged"`
		Pending      bool     `json:"pending"`
		Rollback     bool     `json:"rollback"`
		Pinned       bool     `json:"pinned"`
	} `json:"deployments"`
}

// statusOfStrata runs `strata status --json` on s.
func statusOfStrata(t *testing.T, s string) strataStatus {
	t.Helper()
	out := mustStrata(t, "status", "--sysroot", s, "--json")
	var st strataStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("strata status --json: %v\n%s", err, out)
	}
	return st
}

// peerList is strata's status in the terms ostree admin status prints: ostree marks
// (pending)/(rollback) only relative to a booted deployment, so strata's marks are compared
// only when something is booted.
func (st strataStatus) peerList() []peerDeployment {
	var out []peerDeployment
	anyBooted := false
	for _, d := range st.Deployments {
		anyBooted = anyBooted || d.Booted
	}
	for _, d := range st.Deployments {
		pd := peerDeployment{OSName: d.OSName, Checksum: d.Checksum, Serial: d.Serial, Version: d.Version,
			Refspec: d.Refspec, Pinned: d.Pinned, Booted: d.Booted}
		switch {
		case d.Staged:
			pd.Mark = "staged"
		case anyBooted && d.Pending:
			pd.Mark = "pending"
		case anyBooted && d.Rollback:
			pd.Mark = "rollback"
		}
		out = append(out, pd)
	}
	return out
}

// layout describes what a sysroot holds outside the repository objects and the deployments'
// contents: every path under boot/ (mode, and content or link target), the symlinks and farms
// ostree/boot.*, the deployment directories (name, mode, immutable attribute, top-level
// entries, etc with contents) and their .origin files, the stateroot's var, the deployment refs
// ostree/B/S/I, and the sysroot's top-level directories. Paths in skip are left out.
func layout(t *testing.T, s string, skip map[string]bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	walk := func(rel string, depth int) {
		root := filepath.Join(s, rel)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == root {
					return nil
				}
				return err
			}
			r, _ := filepath.Rel(s, p)
			if skip[r] {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			out[r] = describe(t, p)
			if d.IsDir() && depth >= 0 && strings.Count(r, "/")-strings.Count(rel, "/") >= depth {
				return fs.SkipDir
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walking %s: %v", root, err)
		}
	}
	top, err := os.ReadDir(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range top {
		if !skip[e.Name()] {
			out[e.Name()] = describe(t, filepath.Join(s, e.Name()))
		}
	}
	walk("boot", -1)
	boots, _ := filepath.Glob(filepath.Join(s, "ostree/boot.*"))
	for _, b := range boots {
		r, _ := filepath.Rel(s, b)
		walk(r, -1)
	}
	walk("ostree/deploy/"+peerOS+"/var", -1)
	walk("ostree/repo/refs/heads/ostree", -1)
	deploys, _ := filepath.Glob(filepath.Join(s, "ostree/deploy/*/deploy/*"))
	for _, d := range deploys {
		r, _ := filepath.Rel(s, d)
		if strings.HasSuffix(d, ".origin") {
			out[r] = describe(t, d)
			continue
		}
		walk(r, 1)
		walk(r+"/etc", -1)
		if sysroottest.IsImmutable(d) {
			out[r] += " immutable"
		}
	}
	return out
}

// describe is one line about the file at p: type, permissions, and content (small files) or
// link target.
func describe(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	mode := fmt.Sprintf("%04o", fi.Mode().Perm())
	if fi.Mode()&fs.ModeSticky != 0 {
		mode = "sticky " + mode
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		l, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
		}
		return "symlink -> " + l
	case fi.IsDir():
		return "dir " + mode
	case fi.Mode().IsRegular():
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("file %s %q", mode, b)
	}
	return "other " + fi.Mode().String()
}
