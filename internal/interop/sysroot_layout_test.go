//go:build peer && root

package interop

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// layoutOp is one operation, as each tool spells it ("#LABEL" stands for a checksum).
type layoutOp struct {
	name           string
	strata, ostree []string
	ostreeSays     string // what ostree admin must print, if set (proof that the step does what it says)
}

// layoutSkip are the paths only one tool writes, on purpose (internal/sysroot/doc.go,
// "Differences from ostree admin").
var layoutSkip = map[string]bool{
	// ostree admin deploy relabels /var once and leaves this stamp; strata does no SELinux
	// labelling.
	"ostree/deploy/" + peerOS + "/var/.ostree-selabeled": true,
}

// TestSysrootLayoutMatchesOstree does the same operations with strata on one sysroot and with
// ostree admin on another, from the same commits, and compares the bytes after each: BLS entry
// names and contents, boot/loader and the ostree/boot.N symlinks and farms, the kernels under
// boot/ostree/OS-BOOTCSUM, deployment names and top levels, etc, .origin files, the immutable
// attribute, the stateroot's var and the deployment refs ostree/B/S/I. Each sysroot is
// initialized by its own tool, so init-fs and os-init are compared too. The operations cover
// a first deploy with kernel arguments, inherited arguments, a shared kernel (boot serials),
// pins, undeploy, a kernel argument edit, serials above 0, cleanup, a switch that only swaps
// the subboot version (docs/formats/sysroot.md) and a second os-release title.
func TestSysrootLayoutMatchesOstree(t *testing.T) {
	peer(t)
	t.Parallel()
	// both is an operation both tools spell the same way.
	both := func(name string, args ...string) layoutOp { return layoutOp{name: name, strata: args, ostree: args} }
	deploy := []string{"deploy", "--os", peerOS}
	ops := []layoutOp{
		both("deploy v1 with kargs", append(deploy, peerOS+"/v1", "--karg", "root=LABEL=root", "--karg", "rw")...),
		both("deploy v2", append(deploy, peerOS+"/v2")...),
		both("pin 1", "pin", "1"),
		both("deploy v3 sharing v2's kernel", append(deploy, peerOS+"/v3")...),
		both("undeploy 1", "undeploy", "1"),
		{name: "append a karg", strata: []string{"kargs", "--append", "quiet"}, ostree: []string{"instutil", "set-kargs", "--merge", "--append=quiet"}},
		both("deploy v3 again with a karg", append(deploy, "#v3", "--karg", "console=ttyS0")...),
		both("cleanup", "cleanup"),
		both("unpin 2", "pin", "--unpin", "2"),
		both("undeploy 2", "undeploy", "2"),
		both("deploy v3 a third time", append(deploy, "#v3")...),
		{name: "deploy v3 with the same boot config (subboot swap)", strata: append(deploy, "#v3"), ostree: append(deploy, "#v3"),
			ostreeSays: "bootconfig swap: no"},
		both("deploy v4 with another title", append(deploy, peerOS+"/v4")...),
	}
	ss := newPeerSysroot(t, "strata")
	so := newPeerSysroot(t, "ostree")
	sums := commitSeq(t, ss)
	if o := commitSeq(t, so); !cmp.Equal(sums, o) {
		t.Fatalf("the same commits differ between the sysroots: %v and %v", sums, o)
	}
	compare := func(step string) bool {
		t.Helper()
		if diff := cmp.Diff(layout(t, so, layoutSkip), layout(t, ss, layoutSkip)); diff != "" {
			t.Errorf("after %s: layout differs (-ostree +strata):\n%s", step, diff)
			return false
		}
		return true
	}
	if !compare("init") {
		return
	}
	for _, op := range ops {
		mustStrata(t, append(expandSums(op.strata, sums), "--sysroot", ss)...)
		if out := ostreeAdmin(t, so, expandSums(op.ostree, sums)...); !strings.Contains(out, op.ostreeSays) {
			t.Errorf("ostree admin %s printed %q, want %q", strings.Join(op.ostree, " "), out, op.ostreeSays)
		}
		if !compare(op.name) {
			return
		}
	}
	// The last state has two entries, and the subboot swap step did swap only ostree/boot.N.
	if l := layout(t, ss, layoutSkip); l["boot/loader.1/entries/ostree-2-fakeos.conf"] == "" || l["boot/loader.1/entries/ostree-1-fakeos.conf"] == "" {
		t.Errorf("layout after the last step lacks the two entries of boot/loader.1: %v", l)
	}
}
