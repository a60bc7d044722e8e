package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/provconfig"
)

// FirstBoot provisions a deployment on its node's first boot: when the physical root holds
// the first-boot mark (provconfig.FirstBootMark), the config next to it is applied to the
// deployment's tree at deployRoot (assembled, /var mounted, not yet the root). Only after
// Apply succeeded and the tree is synced is the mark removed, so a boot cut short provisions
// again rather than passing a half-applied tree as provisioned. On failure the mark stays and
// provconfig.FailureReport records the error for the next boot and the operator. ran is false
// when there was no mark.
func FirstBoot(ctx context.Context, physRoot, deployRoot string, opts Options) (ran bool, res Result, err error) {
	mark := filepath.Join(physRoot, provconfig.FirstBootMark)
	if _, err := os.Lstat(mark); errors.Is(err, os.ErrNotExist) {
		return false, res, nil
	} else if err != nil {
		return true, res, fmt.Errorf("checking the first-boot mark: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	res, err = firstBoot(ctx, physRoot, deployRoot, opts)
	if err != nil {
		rep, _ := json.Marshal(map[string]string{"date": opts.Now().UTC().Format(time.RFC3339), "error": err.Error()})
		if werr := fsutil.WriteFileAtomic(filepath.Join(physRoot, provconfig.FailureReport), append(rep, '\n'), 0o600); werr != nil {
			err = errors.Join(err, fmt.Errorf("writing the failure report: %w", werr))
		}
		return true, res, err
	}
	if err := os.Remove(mark); err != nil {
		return true, res, fmt.Errorf("removing the first-boot mark: %w", err)
	}
	os.Remove(filepath.Join(physRoot, provconfig.FailureReport))
	if err := fsutil.FsyncDir(filepath.Dir(mark)); err != nil {
		return true, res, fmt.Errorf("syncing the first-boot mark's removal: %w", err)
	}
	return true, res, nil
}

func firstBoot(ctx context.Context, physRoot, deployRoot string, opts Options) (Result, error) {
	raw, err := os.ReadFile(filepath.Join(physRoot, provconfig.FirstBootConfig))
	if err != nil {
		return Result{}, fmt.Errorf("reading the first-boot config: %w", err)
	}
	cfg, rpt, err := provconfig.Parse(raw, provconfig.Options{})
	if err != nil {
		return Result{}, fmt.Errorf("first-boot config: %w\n%s", err, rpt)
	}
	if opts.Digest == "" {
		opts.Digest = provconfig.Digest(raw)
	}
	return Apply(ctx, deployRoot, cfg, opts)
}
