package boot

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/strata-os/strata/internal/bootloader"
	"github.com/strata-os/strata/internal/distro"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sysroot"
)

// BootCompleteOptions tune BootComplete.
type BootCompleteOptions struct {
	ESP string // the mounted ESP; "" means DefaultESP
	// Root is the node's root, under which the health-check directories
	// (distro.HealthDirs) are read; "" means "/".
	Root         string
	CheckTimeout time.Duration // per check; 0 means bootloader.DefaultCheckTimeout
}

// BootCompleteResult says what BootComplete found and did.
type BootCompleteResult struct {
	Checks []bootloader.CheckResult `json:"checks"`
	Booted string                   `json:"booted"`          // its sysroot.Deployment.Key
	Entry  string                   `json:"entry,omitempty"` // the booted deployment's ESP entry, after blessing
	// OnTrial: the booted deployment's entry had a boot counter (firmware
	// was still trying it). When a check fails, a reboot then moves
	// towards the fallback; without a counter a reboot would only repeat
	// the failure.
	OnTrial    bool   `json:"on_trial"`
	Blessed    bool   `json:"blessed"`     // a counter was removed
	RolledBack bool   `json:"rolled_back"` // firmware had fallen back; the sysroot now agrees
	BadDefault string `json:"bad_default,omitempty"`
}

// BootComplete marks the running boot good, the way docs/boot.md
// "Automatic rollback" describes:
//
//  1. the health checks run (bootloader.RunChecks over distro.HealthDirs); if one
//     fails, BootComplete returns its error and changes nothing, so the
//     booted entry stays counted and firmware falls back once its tries
//     are used up (the result's OnTrial says whether it is counted);
//  2. the booted deployment's ESP entry is blessed (its counter removed);
//  3. if firmware fell back (the booted deployment is not the default and
//     the default's entry has no tries left), the sysroot is rolled back so
//     that the booted deployment is the default again and status shows
//     what runs; the bad deployment stays as the rollback, still marked
//     bad. s should be opened with WithBootloader(&ESP{...}) so that the
//     rollback reaches the ESP.
//
// Nothing booted (s is not the running system) is
// errdefs.ErrFailedPrecondition.
func BootComplete(ctx context.Context, s *sysroot.Sysroot, opts BootCompleteOptions) (*BootCompleteResult, error) {
	if opts.ESP == "" {
		opts.ESP = DefaultESP
	}
	if opts.Root == "" {
		opts.Root = "/"
	}
	res := &BootCompleteResult{}
	booted, ok := s.Booted()
	if !ok {
		return res, fmt.Errorf("completing the boot: no deployment of %s is booted: %w", s.Path(), errdefs.ErrFailedPrecondition)
	}
	res.Booted = booted.Key()
	dirs := make([]string, 0, len(distro.HealthDirs))
	for _, d := range distro.HealthDirs {
		dirs = append(dirs, filepath.Join(opts.Root, d))
	}
	checks, cerr := bootloader.RunChecks(ctx, dirs, opts.CheckTimeout)
	res.Checks = checks
	ents, err := bootloader.Entries(opts.ESP)
	if err != nil {
		return res, errors.Join(cerr, err)
	}
	e, found := bootloader.FindDeployment(ents, res.Booted)
	if found {
		res.Entry, res.OnTrial = e.File, e.Counted
	}
	if cerr != nil {
		return res, cerr
	}
	if found {
		name, err := bootloader.Bless(opts.ESP, e.File)
		if err != nil {
			return res, err
		}
		res.Entry, res.Blessed = name, e.Counted
	}
	bootable := s.Bootable()
	if len(bootable) == 0 || bootable[0].Booted {
		return res, nil
	}
	def := bootable[0]
	e, ok = bootloader.FindDeployment(ents, def.Key())
	if !ok || !e.Bad() {
		return res, nil // an update waiting for its first boot, not a fallback
	}
	res.BadDefault = def.Key()
	if _, err := s.Rollback(ctx); err != nil {
		return res, fmt.Errorf("rolling back from %s, which failed to boot: %w", def.Path(), err)
	}
	res.RolledBack = true
	if ents, err := bootloader.Entries(opts.ESP); err == nil {
		if e, ok := bootloader.FindDeployment(ents, res.Booted); ok {
			res.Entry = e.File
		}
	}
	return res, nil
}
