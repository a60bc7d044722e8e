package compose

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/strata-os/strata/internal/distro"
)

// ApplyUnits enables and masks the manifest's units in the tree at root with
// the tree's own systemctl (run in a chroot; enabling and masking only make
// symlinks, so nothing needs /proc). It runs after the overlays, so a unit
// that an overlay adds can be enabled.
func ApplyUnits(ctx context.Context, root string, m *Manifest) error {
	for _, op := range []struct {
		verb  string
		units []string
	}{{"enable", m.EnableUnits}, {"mask", m.MaskUnits}} {
		if len(op.units) == 0 {
			continue
		}
		cmd := exec.CommandContext(ctx, distro.ChrootCmd, append([]string{root, "systemctl", op.verb}, op.units...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("systemctl %s %s in the tree: %w: %s", op.verb, strings.Join(op.units, " "), err, strings.TrimSpace(out.String()))
		}
	}
	return nil
}
