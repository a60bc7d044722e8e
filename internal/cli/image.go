package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/image"
	"github.com/strata-os/strata/internal/provconfig"
)

func newImageCmd() *cobra.Command {
	var (
		o                          image.Options
		size, espSize, trustedFile string
		provisionFile, filesDir    string
		asJSON                     bool
	)
	cmd := &cobra.Command{
		Use:   "image --repo R --ref REF --out DISK.img [--size S] [--karg K=V]...",
		Short: "Build a bootable GPT disk image (UEFI, systemd-boot) of a commit",
		Long: `Build a raw disk image of the commit REF of repository R: a GPT with an EFI
system partition (systemd-boot, one boot entry, the kernel and initramfs) and
an ext4 root filesystem labelled strata-root holding a sysroot with the commit
deployed (docs/boot.md). No loop devices or mounts; needs root and sfdisk,
mkfs.ext4, mkfs.vfat and mtools. Kernel arguments: root=LABEL=strata-root rw
console=ttyS0 quiet, the commit's strata.kargs, then --karg. With
--remote-url the node follows origin:REF there (strata upgrade), verified with
--trusted-key if given.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Size, err = parseSize(size); err != nil {
				return usagef("--size: %v", err)
			}
			if o.ESPSize, err = parseSize(espSize); err != nil {
				return usagef("--esp-size: %v", err)
			}
			if trustedFile != "" {
				if o.RemoteURL == "" {
					return usagef("--trusted-key needs --remote-url")
				}
				if o.TrustedKey, err = readOneKey(trustedFile); err != nil {
					return err
				}
			}
			if isTerminal(cmd.ErrOrStderr()) {
				o.Stage = func(name string) { fmt.Fprintf(cmd.ErrOrStderr(), "image: %s\n", name) }
			}
			if provisionFile != "" {
				js, err := firstBootConfig(cmd, provisionFile, filesDir)
				if err != nil {
					return err
				}
				o.Provision = js
			}
			start := time.Now()
			res, err := image.Build(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("cannot build image: %w", err)
			}
			out := imageJSON{Out: absPath(o.Out), Commit: res.Commit.String(), OSName: res.OSName, Refspec: res.Refspec,
				Deployment: res.Deployment, Kargs: res.Kargs, Entry: res.Entry, Size: res.Size, RootSize: res.RootSize,
				Stages: res.Stages, Seconds: time.Since(start).Seconds()}
			if o.Provision != nil {
				out.ProvisionDigest = provconfig.Digest(o.Provision)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Wrote %s (%s, root %s): %s:%s\n", o.Out, humanBytes(res.Size), humanBytes(res.RootSize), res.OSName, res.Refspec)
			fmt.Fprintf(w, "  commit     %s\n  deployment %s\n  entry      %s\n  kargs      %s\n",
				res.Commit, res.Deployment, res.Entry, strings.Join(res.Kargs, " "))
			var st []string
			for _, s := range res.Stages {
				st = append(st, fmt.Sprintf("%s %.1fs", s.Name, s.Duration.Seconds()))
			}
			if out.ProvisionDigest != "" {
				fmt.Fprintf(w, "  provision  %s\n", out.ProvisionDigest)
			}
			fmt.Fprintf(w, "  time       %.1fs (%s)\n", out.Seconds, strings.Join(st, ", "))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Repo, "repo", "", "repository holding the commit")
	f.StringVar(&o.Ref, "ref", "", "ref or checksum of the commit")
	f.StringVar(&o.Out, "out", "", "disk image to write")
	f.StringVar(&size, "size", "", "disk size (e.g. 4G, 3000M; default: fit the content with room for upgrades)")
	f.StringVar(&espSize, "esp-size", "", "ESP size (default 256M)")
	f.StringVar(&o.OSName, "os", "", "stateroot (default: the commit's strata.compose.name, else strata)")
	f.StringArrayVar(&o.Kargs, "karg", nil, "extra kernel argument (repeatable)")
	f.StringVar(&o.RemoteURL, "remote-url", "", "URL of the repository the node upgrades from (remote origin)")
	f.StringVar(&trustedFile, "trusted-key", "", "ed25519 public key file the remote's commits must be signed with")
	f.StringVar(&o.SystemdBoot, "systemd-boot", image.DefaultSystemdBoot, "systemd-boot EFI binary")
	f.IntVar(&o.Timeout, "timeout", 0, "boot menu timeout in seconds (loader.conf)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.StringVar(&provisionFile, "provision", "", "provisioning config (Ignition JSON or Butane-style YAML) the node applies on its first boot")
	f.StringVar(&filesDir, "files-dir", "", "directory that local file references of a YAML --provision config resolve beneath")
	for _, n := range []string{"repo", "ref", "out"} {
		cmd.MarkFlagRequired(n)
	}
	return cmd
}

// firstBootConfig validates a --provision config and returns it as Ignition
// JSON (a YAML config is translated, its local files inlined).
func firstBootConfig(cmd *cobra.Command, name, filesDir string) ([]byte, error) {
	raw, err := readConfigArg(cmd, name)
	if err != nil {
		return nil, fmt.Errorf("cannot read provisioning config: %w", err)
	}
	opts, done, err := filesOptions(filesDir)
	if err != nil {
		return nil, err
	}
	defer done()
	js := raw
	var rpt provconfig.Report
	if !provconfig.IsJSON(raw) {
		js, rpt, err = provconfig.Translate(raw, opts)
		printReport(cmd.ErrOrStderr(), name, rpt)
		if err != nil {
			return nil, fmt.Errorf("cannot translate %s: %w", name, err)
		}
	}
	_, rpt, err = provconfig.ParseJSON(js)
	printReport(cmd.ErrOrStderr(), name, rpt)
	if err != nil {
		return nil, fmt.Errorf("%s is not a valid config: %w", name, err)
	}
	return js, nil
}

// parseSize reads a byte count with an optional K, M, G or T suffix
// (powers of 1024); "" is 0.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	case "T":
		mult = 1 << 40
	}
	num := s
	if mult != 1 {
		num = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size (like 4G or 3000M)", s)
	}
	return n * mult, nil
}

// readOneKey reads the single base64 key of a public key file.
func readOneKey(p string) (string, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("cannot read trusted key: %w", err)
	}
	var keys []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, l)
		}
	}
	if len(keys) != 1 {
		return "", usagef("--trusted-key %s holds %d keys, want 1", p, len(keys))
	}
	return keys[0], nil
}
