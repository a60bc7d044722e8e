package sysroot

import "testing"

func TestKindOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		refspec string
		want    OriginKind
	}{
		{"origin:os/stable", OriginRemote},
		{"os/stable", OriginLocalRef},
		{"54ee1d18df28d764df8263fb93892fc7fd8d409beb6ada6c36cdef56b4b6d2c2", OriginCommit},
		{"", OriginCommit},
	} {
		if got := KindOf(tc.refspec); got != tc.want {
			t.Errorf("KindOf(%q) = %q, want %q", tc.refspec, got, tc.want)
		}
	}
}
