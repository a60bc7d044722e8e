package provision

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/coreos/ignition/v2/config/util"
	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/provconfig"
)

// DiskFormatter partitions the disks and makes the filesystems of a config's storage section.
// It is an interface because only a node with its block devices (or a root-tier test with loop
// devices) can provide it.
type DiskFormatter interface {
	Format(ctx context.Context, storage types.Storage) error
}

// RunFunc runs a program and returns its standard output.
type RunFunc func(ctx context.Context, name string, args ...string) ([]byte, error)

// ExecRun runs programs with os/exec, their standard error in the error.
func ExecRun(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// NewDiskFormatter returns the DiskFormatter of a node: sgdisk for partitions (as Ignition),
// blkid to find existing filesystems, and mkfs.ext4, mkfs.xfs, mkfs.vfat or mkswap.
func NewDiskFormatter(run RunFunc) DiskFormatter { return diskFormatter{run: run} }

type diskFormatter struct {
	run  RunFunc
	wait time.Duration // how long to wait for a device to appear; 0 means not at all
}

var _ DiskFormatter = diskFormatter{}

// Format partitions every disk, then makes every filesystem, following Ignition's rules: an
// existing filesystem is kept when its type (and label and UUID, when given) match, replaced
// when wipeFilesystem is set, and is an error otherwise. Partitions are created when absent;
// changing existing ones is not supported.
func (d diskFormatter) Format(ctx context.Context, s types.Storage) error {
	for i, disk := range s.Disks {
		if err := d.waitDevice(ctx, disk.Device); err != nil {
			return fmt.Errorf("disks.%d: %w", i, err)
		}
		if err := d.partition(ctx, disk); err != nil {
			return fmt.Errorf("disks.%d (%s): %w", i, disk.Device, err)
		}
	}
	for i, fs := range s.Filesystems {
		if err := d.waitDevice(ctx, fs.Device); err != nil {
			return fmt.Errorf("filesystems.%d: %w", i, err)
		}
		if err := d.filesystem(ctx, fs); err != nil {
			return fmt.Errorf("filesystems.%d (%s): %w", i, fs.Device, err)
		}
	}
	return nil
}

func (d diskFormatter) waitDevice(ctx context.Context, dev string) error {
	if d.wait == 0 {
		return nil
	}
	return waitDevice(ctx, dev, d.wait)
}

func (d diskFormatter) partition(ctx context.Context, disk types.Disk) error {
	if util.IsTrue(disk.WipeTable) {
		if _, err := d.run(ctx, "sgdisk", "--zap-all", disk.Device); err != nil {
			return err
		}
	}
	if len(disk.Partitions) == 0 {
		return nil
	}
	args := []string{}
	for _, p := range disk.Partitions {
		if util.IsFalse(p.ShouldExist) || util.IsTrue(p.Resize) || util.IsTrue(p.WipePartitionEntry) {
			return fmt.Errorf("partition %d: shouldExist false, resize and wipePartitionEntry: %w", p.Number, errdefs.ErrUnsupported)
		}
		n := fmt.Sprint(p.Number)
		start, size := "0", "0"
		if p.StartMiB != nil && *p.StartMiB > 0 {
			start = fmt.Sprintf("%dM", *p.StartMiB)
		}
		if p.SizeMiB != nil && *p.SizeMiB > 0 {
			size = fmt.Sprintf("+%dM", *p.SizeMiB)
		}
		args = append(args, "--new="+n+":"+start+":"+size)
		if util.NotEmpty(p.Label) {
			args = append(args, "--change-name="+n+":"+*p.Label)
		}
		if util.NotEmpty(p.TypeGUID) {
			args = append(args, "--typecode="+n+":"+*p.TypeGUID)
		}
		if util.NotEmpty(p.GUID) {
			args = append(args, "--partition-guid="+n+":"+*p.GUID)
		}
	}
	if _, err := d.run(ctx, "sgdisk", append(args, disk.Device)...); err != nil {
		return err
	}
	// Let the kernel and udev see the new partitions before filesystems are made on them.
	d.run(ctx, "partx", "-u", disk.Device)
	d.run(ctx, "udevadm", "settle")
	return nil
}

// probe returns blkid's TYPE, LABEL and UUID of a device; empty when it holds no filesystem.
func (d diskFormatter) probe(ctx context.Context, dev string) (map[string]string, error) {
	out, err := d.run(ctx, "blkid", "-p", "-o", "export", dev)
	m := map[string]string{}
	if err != nil {
		// blkid exits 2 when it finds nothing.
		if ee, ok := errorsAsExit(err); ok && ee == 2 {
			return m, nil
		}
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

func (d diskFormatter) filesystem(ctx context.Context, fs types.Filesystem) error {
	format := ""
	if fs.Format != nil {
		format = *fs.Format
	}
	existing, err := d.probe(ctx, fs.Device)
	if err != nil {
		return err
	}
	if format == "" || format == "none" {
		if format == "none" && existing["TYPE"] != "" {
			return fmt.Errorf("format none, but the device holds %s: %w", existing["TYPE"], errdefs.ErrFailedPrecondition)
		}
		return nil
	}
	if t := existing["TYPE"]; t != "" && !util.IsTrue(fs.WipeFilesystem) {
		if t == format && (fs.Label == nil || *fs.Label == existing["LABEL"]) && (fs.UUID == nil || strings.EqualFold(*fs.UUID, existing["UUID"])) {
			return nil // reuse
		}
		return fmt.Errorf("the device holds %s (label %q, uuid %s), not the %s asked for, and wipeFilesystem is false: %w",
			t, existing["LABEL"], existing["UUID"], format, errdefs.ErrFailedPrecondition)
	}
	var name string
	var args []string
	switch format {
	case "ext4":
		name, args = "mkfs.ext4", []string{"-F", "-q"}
		if fs.Label != nil {
			args = append(args, "-L", *fs.Label)
		}
		if fs.UUID != nil {
			args = append(args, "-U", *fs.UUID)
		}
	case "xfs":
		name, args = "mkfs.xfs", []string{"-f"}
		if fs.Label != nil {
			args = append(args, "-L", *fs.Label)
		}
		if fs.UUID != nil {
			args = append(args, "-m", "uuid="+*fs.UUID)
		}
	case "vfat":
		name = "mkfs.vfat"
		if fs.Label != nil {
			args = append(args, "-n", *fs.Label)
		}
		if fs.UUID != nil {
			args = append(args, "-i", strings.ReplaceAll(*fs.UUID, "-", ""))
		}
	case "swap":
		name, args = "mkswap", []string{"-f"}
		if fs.Label != nil {
			args = append(args, "-L", *fs.Label)
		}
		if fs.UUID != nil {
			args = append(args, "-U", *fs.UUID)
		}
	default:
		return fmt.Errorf("format %q: strata makes ext4, xfs, vfat and swap: %w", format, errdefs.ErrUnsupported)
	}
	args = append(args, strs(fs.Options)...)
	_, err = d.run(ctx, name, append(args, fs.Device)...)
	return err
}

func errorsAsExit(err error) (int, bool) {
	for e := err; e != nil; {
		if ee, ok := e.(*exec.ExitError); ok {
			return ee.ExitCode(), true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return 0, false
		}
		e = u.Unwrap()
	}
	return 0, false
}

// planFilesystems returns the mount (or swap) units of the filesystems that have a path, so
// that they are mounted on every boot.
func planFilesystems(cfg provconfig.Config) []unitPlan {
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
	return plans
}
