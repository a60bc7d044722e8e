package provision

import (
	"context"
	"fmt"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/strata-os/strata/internal/provconfig"
)

// DiskFormatter partitions the disks and makes the filesystems of a config's storage section.
// It is an interface because only a node with its block devices (or a root-tier test with loop
// devices) can provide it.
type DiskFormatter interface {
	Format(ctx context.Context, storage types.Storage) error
}

// planFilesystems returns the mount (or swap) units of the filesystems that have a path, so
// that they are mounted on every boot.
func planFilesystems(_ context.Context, _ DiskFormatter, cfg provconfig.Config) ([]unitPlan, error) {
	var plans []unitPlan
	for i, fs := range cfg.Storage.Filesystems {
		format := ""
		if fs.Format != nil {
			format = *fs.Format
		}
		if fs.Path == nil && format != "swap" {
			continue
		}
		p := ""
		if fs.Path != nil {
			p = *fs.Path
		}
		name, contents := provconfig.MountUnit(fs.Device, format, p, strs(fs.MountOptions))
		target := "local-fs.target.requires"
		if format == "swap" {
			target = "swap.target.requires"
		}
		on := true
		plans = append(plans, unitPlan{path: fmt.Sprintf("$.storage.filesystems.%d", i), name: name,
			contents: &contents, enabled: &on, dropins: map[string]string{},
			links: map[string]string{unitDir + "/" + target + "/" + name: "/" + unitDir + "/" + name}})
	}
	return plans, nil
}
