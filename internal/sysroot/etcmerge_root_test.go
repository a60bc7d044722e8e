//go:build root

package sysroot

import (
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestMergeEtcRoot runs the merge cases that need root: other owners,
// setuid bits, trusted.* xattrs, files root alone can read.
func TestMergeEtcRoot(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	for _, c := range etcMergeCases() {
		if !c.root {
			continue // TestMergeEtc, unprivileged tier
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			etcCheckMerge(t, c)
		})
	}
}
