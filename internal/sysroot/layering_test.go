package sysroot

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/keyfile"
)

func TestLayeredOrigin(t *testing.T) {
	base, err := keyfile.Parse([]byte("[origin]\nrefspec=fleet:os/stable\n[libostree-transient]\npinned=true\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := Layering{Requested: []string{"strace", "tcpdump", "strace"}, RequestedLocal: []string{"ab12:hello_1.0_all"}, Removed: []string{"nano"}}
	o, err := LayeredOrigin(UpgradeOrigin(Deployment{Origin: base}), l)
	if err != nil {
		t.Fatal(err)
	}
	want := "[origin]\nbaserefspec=fleet:os/stable\n\n[packages]\nrequested=strace;tcpdump;\nrequested-local=ab12:hello_1.0_all;\n\n[overrides]\nremove=nano;\n"
	if diff := cmp.Diff(want, string(o.Bytes())); diff != "" {
		t.Errorf("LayeredOrigin (-want +got):\n%s", diff)
	}
	if got := originRefspec(o); got != "fleet:os/stable" {
		t.Errorf("originRefspec(layered) = %q, want fleet:os/stable", got)
	}
	back := LayeringOf(o)
	if diff := cmp.Diff(Layering{Requested: []string{"strace", "tcpdump"}, RequestedLocal: l.RequestedLocal, Removed: l.Removed}, back); diff != "" {
		t.Errorf("LayeringOf(LayeredOrigin(l)) (-want +got):\n%s", diff)
	}
	// Nothing layered: a plain refspec again, no empty groups' keys.
	plain, err := LayeredOrigin(o, Layering{})
	if err != nil {
		t.Fatal(err)
	}
	if got := LayeringOf(plain); !got.Empty() {
		t.Errorf("LayeringOf(reset) = %+v, want empty", got)
	}
	if v, ok := plain.Get("origin", "refspec"); !ok || v != "fleet:os/stable" {
		t.Errorf("reset origin:\n%s\nwant refspec=fleet:os/stable", plain.Bytes())
	}
	if _, err := LayeredOrigin(o, Layering{Requested: []string{"a;b"}}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("LayeredOrigin(a;b) = %v, want ErrInvalid", err)
	}
}
