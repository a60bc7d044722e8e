//go:build peer && root

package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
)

// seqCommits are the commits of the sequence and layout tests, each on a branch of its own
// (fakeos/vN) so that the repository prune of either tool, which keeps only what refs reach,
// never drops one before it is deployed. v3 has v2's kernel: their deployments share a boot
// checksum and get boot serials 0 and 1.
var seqCommits = []struct {
	label string
	os    sysroottest.FakeOS
}{
	{"v1", sysroottest.FakeOS{Version: "1", Kernel: "fake kernel 1\n", Etc: map[string]string{"hostname": "v1\n"}}},
	{"v2", sysroottest.FakeOS{Version: "2", Kernel: "fake kernel 2\n", Etc: map[string]string{"hostname": "v2\n"}}},
	{"v3", sysroottest.FakeOS{Version: "3", Kernel: "fake kernel 2\n", Etc: map[string]string{"hostname": "v3\n"}}},
	{"v4", sysroottest.FakeOS{Version: "4", Kernel: "fake kernel 4\n", Pretty: "Fake OS Four"}},
}

// commitSeq commits seqCommits into the sysroot s and returns label → checksum.
func commitSeq(t *testing.T, s string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for i, c := range seqCommits {
		sums[c.label] = peerCommit(t, s, peerOS+"/"+c.label, c.os, 1672531200+int64(i)*86400)
	}
	return sums
}

// seqStep is one operation of the sequence and what both tools must list after it.
type seqStep struct {
	name string
	run  func(t *testing.T, s string, sums map[string]string)
	// want lists the deployments in order, each "LABEL.SERIAL", then "@" if it was deployed
	// by checksum (refspec = the checksum, else fakeos/LABEL), then "p" if pinned.
	want []string
	// kargs are the kernel arguments of the default deployment after the step (nil: not checked).
	kargs []string
	// deployed says the step made a new default: its etc must hold every local change of its
	// merge deployment (the default before the step), and the test adds one of its own.
	deployed bool
}

func strataStep(args ...string) func(*testing.T, string, map[string]string) {
	return func(t *testing.T, s string, sums map[string]string) {
		mustStrata(t, append(expandSums(args, sums), "--sysroot", s)...)
	}
}

func ostreeStep(args ...string) func(*testing.T, string, map[string]string) {
	return func(t *testing.T, s string, sums map[string]string) {
		ostreeAdmin(t, s, expandSums(args, sums)...)
	}
}

// expandSums replaces "#LABEL" arguments with the checksum of that commit.
func expandSums(args []string, sums map[string]string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if l, ok := strings.CutPrefix(a, "#"); ok {
			out[i] = sums[l]
		}
	}
	return out
}

// TestSysrootSequenceAgreesWithOstree alternates strata and ostree admin on one sysroot
// (made by either tool): deploys with /etc merges, pins, undeploy, rollback, kernel arguments
// and cleanups. After every step `ostree admin status` and `strata status --json` list the
// expected deployments in the same order with the same checksums, serials, versions,
// refspecs and pins; both fsck the repository clean; the boot loader's view starts the
// default; and local /etc changes went through every deploy of either tool.
func TestSysrootSequenceAgreesWithOstree(t *testing.T) {
	peer(t)
	t.Parallel()
	steps := []seqStep{
		{name: "strata deploy v1 with kargs", run: strataStep("deploy", "--os", peerOS, peerOS+"/v1", "--karg", "root=LABEL=root", "--karg", "rw"),
			want: []string{"v1.0"}, kargs: []string{"root=LABEL=root", "rw"}, deployed: true},
		{name: "ostree pin 0", run: ostreeStep("pin", "0"), want: []string{"v1.0p"}},
		{name: "ostree deploy v2", run: ostreeStep("deploy", "--os", peerOS, peerOS+"/v2"),
			want: []string{"v2.0", "v1.0p"}, kargs: []string{"root=LABEL=root", "rw"}, deployed: true},
		{name: "strata deploy v3", run: strataStep("deploy", "--os", peerOS, peerOS+"/v3"),
			want: []string{"v3.0", "v2.0", "v1.0p"}, kargs: []string{"root=LABEL=root", "rw"}, deployed: true},
		{name: "ostree undeploy 1", run: ostreeStep("undeploy", "1"), want: []string{"v3.0", "v1.0p"}},
		{name: "strata rollback", run: strataStep("rollback"), want: []string{"v1.0p", "v3.0"}},
		{name: "strata unpin 0 and pin 1", run: func(t *testing.T, s string, sums map[string]string) {
			strataStep("pin", "--unpin", "0")(t, s, sums)
			strataStep("pin", "1")(t, s, sums)
		}, want: []string{"v1.0", "v3.0p"}},
		{name: "strata kargs append", run: strataStep("kargs", "--append", "quiet"),
			want: []string{"v1.0", "v3.0p"}, kargs: []string{"root=LABEL=root", "rw", "quiet"}},
		{name: "ostree deploy v3 by checksum with karg", run: ostreeStep("deploy", "--os", peerOS, "--karg", "console=ttyS0", "#v3"),
			want: []string{"v3.1@", "v1.0", "v3.0p"}, kargs: []string{"root=LABEL=root", "rw", "quiet", "console=ttyS0"}, deployed: true},
		{name: "ostree instutil set-kargs", run: ostreeStep("instutil", "set-kargs", "--merge", "--append=loglevel=3"),
			want: []string{"v3.1@", "v1.0", "v3.0p"}, kargs: []string{"root=LABEL=root", "rw", "quiet", "console=ttyS0", "loglevel=3"}},
		{name: "ostree cleanup", run: ostreeStep("cleanup"), want: []string{"v3.1@", "v1.0", "v3.0p"}},
		{name: "strata deploy v4 by checksum with karg", run: strataStep("deploy", "--os", peerOS, "#v4", "--karg", "console=tty0"),
			want: []string{"v4.0@", "v3.1@", "v3.0p"}, kargs: []string{"root=LABEL=root", "rw", "quiet", "console=tty0", "loglevel=3"}, deployed: true},
		{name: "ostree unpin 2", run: ostreeStep("pin", "--unpin", "2"), want: []string{"v4.0@", "v3.1@", "v3.0"}},
		// ostree admin cleanup never shortens the list; strata cleanup keeps the default, the
		// rollback and the pinned ones (internal/sysroot/doc.go, "Differences").
		{name: "ostree cleanup keeps an unpinned third", run: ostreeStep("cleanup"), want: []string{"v4.0@", "v3.1@", "v3.0"}},
		{name: "strata cleanup", run: strataStep("cleanup"), want: []string{"v4.0@", "v3.1@"}},
		{name: "ostree deploy v2 again", run: ostreeStep("deploy", "--os", peerOS, peerOS+"/v2"),
			want: []string{"v2.0", "v4.0@"}, deployed: true},
		{name: "strata undeploy 1", run: strataStep("undeploy", "1"), want: []string{"v2.0"}},
		{name: "ostree cleanup at the end", run: ostreeStep("cleanup"), want: []string{"v2.0"}},
	}
	for _, init := range []string{"ostree", "strata"} {
		t.Run(init+" init", func(t *testing.T) {
			t.Parallel()
			s := newPeerSysroot(t, init)
			sums := commitSeq(t, s)
			checkAgree(t, s, sums, nil)
			// local[name] are the local /etc changes in deployment name (CHECKSUM.SERIAL).
			local := map[string][]string{}
			for i, st := range steps {
				before := statusOfStrata(t, s)
				st.run(t, s, sums)
				ok := t.Run(st.name, func(t *testing.T) {
					got := checkAgree(t, s, sums, st.want)
					if st.kargs != nil && !cmp.Equal(got.Deployments[0].Kargs, st.kargs) {
						t.Errorf("after %s: kargs of the default = %q, want %q", st.name, got.Deployments[0].Kargs, st.kargs)
					}
					if !st.deployed {
						return
					}
					// The merge deployment is the first one of the stateroot before the deploy
					// (nothing is booted).
					d := got.Deployments[0]
					var inherited []string
					if len(before.Deployments) > 0 {
						m := before.Deployments[0]
						inherited = local[m.Checksum+"."+strconv.Itoa(m.Serial)]
					}
					etc := filepath.Join(s, "ostree/deploy", d.OSName, "deploy", d.Checksum+"."+strconv.Itoa(d.Serial), "etc")
					for _, f := range inherited {
						if b, err := os.ReadFile(filepath.Join(etc, f)); err != nil || string(b) != f+"\n" {
							t.Errorf("after %s: etc/%s = %q, %v; want the local change %q kept", st.name, f, b, err, f+"\n")
						}
					}
					name := fmt.Sprintf("local-%d.conf", i)
					if err := os.WriteFile(filepath.Join(etc, name), []byte(name+"\n"), 0o644); err != nil {
						t.Fatal(err)
					}
					local[d.Checksum+"."+strconv.Itoa(d.Serial)] = append(slices.Clone(inherited), name)
				})
				if !ok {
					t.Fatalf("stopping after %s", st.name)
				}
			}
		})
	}
}

// checkAgree compares ostree admin status, strata status and want (nil: no deployments),
// fscks the repository with both tools and checks the boot loader's view of the default.
func checkAgree(t *testing.T, s string, sums map[string]string, want []string) strataStatus {
	t.Helper()
	label := map[string]string{}
	for l, c := range sums {
		label[c] = l
	}
	var wantList []peerDeployment
	for _, w := range want {
		pinned := strings.HasSuffix(w, "p")
		w = strings.TrimSuffix(w, "p")
		byChecksum := strings.HasSuffix(w, "@")
		w = strings.TrimSuffix(w, "@")
		l, serial, _ := strings.Cut(w, ".")
		n, _ := strconv.Atoi(serial)
		d := peerDeployment{OSName: peerOS, Checksum: sums[l], Serial: n, Version: strings.TrimPrefix(l, "v"),
			Refspec: peerOS + "/" + l, Pinned: pinned}
		if byChecksum {
			d.Refspec = sums[l]
		}
		wantList = append(wantList, d)
	}
	ostreeList, out := statusOfOstree(t, s)
	st := statusOfStrata(t, s)
	strataList := st.peerList()
	if diff := cmp.Diff(wantList, ostreeList); diff != "" {
		t.Errorf("ostree admin status (-want +ostree):\n%s\n%s", diff, out)
	}
	if diff := cmp.Diff(ostreeList, strataList); diff != "" {
		t.Errorf("strata status --json differs from ostree admin status (-ostree +strata):\n%s\n%s", diff, out)
	}
	repo := filepath.Join(s, "ostree/repo")
	mustOstree(t, "fsck", "--repo="+repo)
	mustStrata(t, "repo", "fsck", "--repo", repo)
	if len(want) == 0 {
		return st
	}
	v, err := sysroottest.BootedView(s)
	if err != nil {
		t.Fatalf("BootedView: %v", err)
	}
	if v.Checksum != wantList[0].Checksum || v.Serial != wantList[0].Serial {
		t.Errorf("BootedView = %s (%s.%d), want the default %s", v.Entry, label[v.Checksum], v.Serial, want[0])
	}
	return st
}
