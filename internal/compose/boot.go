package compose

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-os/strata/internal/boot"
	"github.com/strata-os/strata/internal/distro"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/initramfs"
)

// StrataBoot returns the InitramfsFunc that makes a tree boot the strata
// way (docs/boot.md): it installs binary (a static strata) as
// distro.StrataBinary, enables strata's boot units (ESP sync, boot-complete
// with the health checks, finalize at shutdown), and writes strata's
// initramfs, with that binary as /init and the modules the root disk
// needs, as usr/lib/modules/KVER/initramfs.img. Debian's own initramfs,
// if initramfs-tools built one, goes with the rest of /boot.
func StrataBoot(binary string) InitramfsFunc {
	return func(_ context.Context, root, kver string) error {
		data, err := os.ReadFile(binary)
		if err != nil {
			return fmt.Errorf("installing strata into the tree: %w", err)
		}
		dst := filepath.Join(root, distro.StrataBinary)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("installing strata into the tree: %w", err)
		}
		if err := fsutil.WriteFileAtomic(dst, data, 0o755); err != nil {
			return fmt.Errorf("installing strata into the tree: %w", err)
		}
		if err := boot.InstallUnits(root); err != nil {
			return err
		}
		var img bytes.Buffer
		if err := initramfs.BuildForTree(&img, root, kver, dst, nil); err != nil {
			return fmt.Errorf("building strata's initramfs for kernel %s: %w", kver, err)
		}
		out := filepath.Join(root, "usr/lib/modules", kver, "initramfs.img")
		if err := fsutil.WriteFileAtomic(out, img.Bytes(), 0o644); err != nil {
			return fmt.Errorf("writing strata's initramfs for kernel %s: %w", kver, err)
		}
		return nil
	}
}
