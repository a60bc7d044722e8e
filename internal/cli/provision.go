package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/prepareroot"
	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/provision"
)

func newProvisionCmd() *cobra.Command {
	var rootDir, config, filesDir string
	var asJSON, formatDisks bool
	cmd := &cobra.Command{
		Use:   "provision --root DIR --config FILE [--files-dir DIR] [--json]",
		Short: "Apply a provisioning config (Ignition JSON or Butane-style YAML) to a tree",
		Long: `Apply a provisioning config to the OS tree at --root: users and groups, files,
directories and links, systemd units, presets and enablement symlinks, and mount
units for storage.filesystems. Every remote resource is fetched and verified and
every entry is checked before the tree is touched: a config that cannot be
applied changes nothing. The report goes to etc/.ignition-result.json in the tree.

kernelArguments are printed (and in --json output) for the caller to set on the
deployment; a tree alone cannot carry them. storage.disks and storage.filesystems
touch this machine's block devices and need --format-disks; each filesystem with
a path gets a mount unit (swap: a swap unit) required by local-fs.target. Works on any directory: an image
builder's tree, a deployment, a test fixture. Needs root to set owners.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := readConfigArg(cmd, config)
			if err != nil {
				return fmt.Errorf("cannot read config: %w", err)
			}
			opts, done, err := filesOptions(filesDir)
			if err != nil {
				return err
			}
			defer done()
			cfg, rpt, err := provconfig.Parse(raw, opts)
			printReport(cmd.ErrOrStderr(), config, rpt)
			if err != nil {
				return fmt.Errorf("cannot use config %s: %w", config, err)
			}
			bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
			popts := provision.Options{BootID: strings.TrimSpace(string(bootID)), Digest: provconfig.Digest(raw)}
			if formatDisks {
				popts.Disks = provision.NewDiskFormatter(provision.ExecRun)
			}
			res, err := provision.Apply(context.Background(), rootDir, cfg, popts)
			if err != nil {
				return fmt.Errorf("cannot provision %s: %w", rootDir, err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "provisioned %s with %s: %d groups, %d users, %d directories, %d files, %d links, %d units\n",
				rootDir, res.Digest, res.Groups, res.Users, res.Directories, res.Files, res.Links, res.Units)
			if ka := res.KernelArguments; len(ka.ShouldExist)+len(ka.ShouldNotExist) > 0 {
				fmt.Fprintf(w, "kernel arguments for the deployment: add %q, remove %q\n", ka.ShouldExist, ka.ShouldNotExist)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&rootDir, "root", "", "the tree to provision")
	cmd.Flags().StringVar(&config, "config", "", `the config file ("-" for standard input)`)
	cmd.Flags().StringVar(&filesDir, "files-dir", "", "directory that local file references of a YAML config resolve beneath")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVar(&formatDisks, "format-disks", false, "partition and format this machine's devices named in storage.disks and storage.filesystems (without it such configs are refused)")
	cmd.MarkFlagRequired("root")
	cmd.MarkFlagRequired("config")
	return cmd
}

// firstBootProvisioner wires internal/provision's first-boot policy into prepare-root.
type firstBootProvisioner struct{}

var _ prepareroot.Provisioner = firstBootProvisioner{}

func (firstBootProvisioner) Provision(ctx context.Context, con io.Writer, physRoot, newRoot string) (bool, error) {
	var mods int
	var modTime time.Duration
	if _, err := os.Lstat(filepath.Join(physRoot, provconfig.FirstBootMark)); err == nil {
		// fw_cfg's sysfs files, needed on this boot only.
		start := time.Now()
		mods = prepareroot.LoadModules(con, prepareroot.FirstBootModulesList)
		modTime = time.Since(start)
	}
	bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	cmdline, _ := os.ReadFile("/proc/cmdline")
	var netHostname string // DHCP's or ip='s, for /etc/hostname
	network := func(ctx context.Context) error {
		prepareroot.LoadModules(con, prepareroot.NetworkModulesList)
		ip, err := prepareroot.BringUpNetwork(ctx)
		if err == nil {
			fmt.Fprintf(con, "strata prepare-root: network for %s=: %s\n", provconfig.ConfigURLArg, ip)
			netHostname = ip.Hostname
		}
		return err
	}
	sources := []provision.Source{
		provision.FwCfg{}, provision.Embedded{PhysRoot: physRoot},
		provision.URL{Cmdline: string(cmdline), Network: network},
	}
	// storage.disks and storage.filesystems are made with the deployment's own tools.
	disks := &timedDisks{DiskFormatter: provision.ChrootDisks{Root: newRoot}}
	popts := provision.Options{BootID: strings.TrimSpace(string(bootID)), Disks: disks,
		NetworkHostname: func() string { return netHostname }}
	ran, rec, res, err := provision.FirstBoot(ctx, physRoot, newRoot, sources, popts)
	if err != nil || !ran {
		return ran, err
	}
	if rec.Source == "" {
		fmt.Fprintf(con, "strata prepare-root: no provisioning config (fw_cfg, embedded, %s=): nothing to provision\n", provconfig.ConfigURLArg)
		return true, nil
	}
	fmt.Fprintf(con, "strata prepare-root: provisioned with the %s config %s: %d users, %d files, %d units, %d filesystems (%d first-boot modules %d ms, disks %d ms)\n",
		rec.Source, res.Digest, res.Users, res.Files, res.Units, res.Filesystems, mods, modTime.Milliseconds(), disks.took.Milliseconds())
	switch {
	case rec.Hostname != "":
		fmt.Fprintf(con, "strata prepare-root: the network's host name %q written to /etc/hostname\n", rec.Hostname)
	case netHostname != "":
		fmt.Fprintf(con, "strata prepare-root: the network's host name %q not used: the tree has /etc/hostname, or it is not a valid host name\n", netHostname)
	}
	if ka := res.KernelArguments; len(ka.ShouldExist)+len(ka.ShouldNotExist) > 0 {
		fmt.Fprintf(con, "strata prepare-root: kernel arguments of the config (should exist %q, should not exist %q): set by strata-provision-kargs.service, then one reboot\n", ka.ShouldExist, ka.ShouldNotExist)
	}
	return true, nil
}

// timedDisks measures how long a first boot spends partitioning and formatting, for the console.
type timedDisks struct {
	provision.DiskFormatter
	took time.Duration
}

func (d *timedDisks) Format(ctx context.Context, s types.Storage) error {
	start := time.Now()
	defer func() { d.took += time.Since(start) }()
	return d.DiskFormatter.Format(ctx, s)
}
