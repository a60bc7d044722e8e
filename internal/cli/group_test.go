package cli

import (
	"strings"
	"testing"
)

// A command group alone prints its help; an unknown subcommand is a usage
// error (exit 2), not a help page that exits 0.
func TestGroupUnknownSubcommand(t *testing.T) {
	t.Parallel()
	if code, out, _ := publishRun(t, "repo"); code != exitOK || !strings.Contains(out, "Available Commands") {
		t.Errorf("strata repo = exit %d (%q), want 0 and the group's help", code, out)
	}
	code, _, errs := publishRun(t, "repo", "bogus")
	if code != exitUsage || !strings.Contains(errs, "unknown command bogus for strata repo") {
		t.Errorf("strata repo bogus = exit %d (%q), want %d, unknown command", code, errs, exitUsage)
	}
}
