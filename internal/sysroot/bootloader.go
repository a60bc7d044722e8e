package sysroot

import (
	"context"
	"fmt"
)

// Bootloader is told the committed deployment list after every switch,
// so that a boot loader that cannot read the sysroot's /boot (systemd-boot
// reads the ESP) can mirror it (docs/boot.md, "Why two places for boot
// entries"). list holds the deployments of the boot configuration in
// order (no staged one), with Booted set. Sync must be idempotent: it is
// called again after any later switch, and at boot.
type Bootloader interface {
	Sync(ctx context.Context, sysrootPath string, list []Deployment) error
}

// WithBootloader makes every WriteDeployments (and so Deploy, Finalize,
// Rollback, Undeploy, SetKargs and Cleanup's undeploys) call b.Sync after
// its commit point, also when the list did not change (which repairs a
// boot loader an earlier crash left behind). An error of b is returned,
// but the switch stays committed: the next sync repairs the boot loader.
func WithBootloader(b Bootloader) Option {
	return func(o *options) { o.bootloader = b }
}

// syncBootloader calls the boot loader with the committed list.
func (s *Sysroot) syncBootloader(ctx context.Context) error {
	if s.opts.bootloader == nil {
		return nil
	}
	if err := s.opts.bootloader.Sync(ctx, s.path, s.nonStaged()); err != nil {
		return fmt.Errorf("syncing the boot loader with the committed deployments (the switch stands; the next sync repairs it): %w", err)
	}
	return nil
}
