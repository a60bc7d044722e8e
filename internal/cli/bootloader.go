package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/boot"
	"github.com/strata-os/strata/internal/bootloader"
	"github.com/strata-os/strata/internal/distro"
	"github.com/strata-os/strata/internal/sysroot"
)

// nodeESP returns the sysroot options of the node verbs: on the running
// system ("/") with its ESP mounted at /boot/efi (a booted strata image),
// every switch is projected onto the ESP, new defaults counted.
func nodeESP(path string) []sysroot.Option {
	if filepath.Clean(path) != "/" {
		return nil
	}
	if fi, err := os.Stat(filepath.Join(boot.DefaultESP, "loader/entries")); err != nil || !fi.IsDir() {
		return nil
	}
	if boot.CheckESPMount(boot.DefaultESP) != nil {
		return nil
	}
	return []sysroot.Option{sysroot.WithBootloader(espSync(boot.DefaultESP, bootloader.DefaultTries))}
}

// checkNodeESP verifies, on the running system (sysroot "/"), that esp is
// the mounted ESP; a sysroot elsewhere (an image being built, a test) may
// use any directory.
func checkNodeESP(sysrootPath, esp string) error {
	if filepath.Clean(sysrootPath) != "/" {
		return nil
	}
	return boot.CheckESPMount(esp)
}

func espSync(dir string, tries int) *boot.ESP {
	return &boot.ESP{Dir: dir, Options: bootloader.Options{Tries: tries}}
}

// bootloaderSyncJSON is the --json output of bootloader sync.
type bootloaderSyncJSON struct {
	Entries []espEntryJSON `json:"entries"`
	Default string         `json:"default"`
}

type espEntryJSON struct {
	File       string `json:"file"`
	Deployment string `json:"deployment"`
	TriesLeft  *int   `json:"tries_left,omitempty"`
	TriesDone  *int   `json:"tries_done,omitempty"`
}

func newBootloaderSyncCmd() *cobra.Command {
	var (
		path, esp string
		tries     int
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "sync [--sysroot /] [--esp " + distro.ESPMountPoint + "]",
		Short: "Make the ESP's boot entries match the sysroot's deployments",
		Long: `Project the sysroot's committed deployment list onto the EFI system partition
(docs/boot.md): copy missing kernels, write or rename one entry per deployment
so that the default sorts first, delete stale entries and kernels. A new
default that has not booted gets a boot counter of --tries. Idempotent; the
boot-time unit strata-esp-sync.service runs it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkNodeESP(path, esp); err != nil {
				return fmt.Errorf("cannot sync the ESP: %w", err)
			}
			s, err := openSysroot(path)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := espSync(esp, tries).Sync(cmd.Context(), s.Path(), s.Bootable()); err != nil {
				return fmt.Errorf("cannot sync the ESP: %w", err)
			}
			return printESP(cmd, esp, asJSON)
		},
	}
	addSysrootFlag(cmd, &path)
	cmd.Flags().StringVar(&esp, "esp", boot.DefaultESP, "the mounted EFI system partition")
	cmd.Flags().IntVar(&tries, "tries", bootloader.DefaultTries, "boot counter of a new default that has not booted (0: none)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the ESP's entries as JSON")
	return cmd
}

// printESP prints the ESP's strata entries and firmware's choice.
func printESP(cmd *cobra.Command, esp string, asJSON bool) error {
	ents, err := bootloader.Entries(esp)
	if err != nil {
		return fmt.Errorf("cannot read the ESP: %w", err)
	}
	choice, _ := bootloader.FirmwareChoice(esp)
	out := bootloaderSyncJSON{Entries: []espEntryJSON{}, Default: choice}
	for _, e := range ents {
		j := espEntryJSON{File: e.File, Deployment: e.Deployment}
		if e.Counted {
			j.TriesLeft, j.TriesDone = new(e.Left), new(e.Done)
		}
		out.Entries = append(out.Entries, j)
	}
	if asJSON {
		return writeJSON(cmd.OutOrStdout(), out)
	}
	w := cmd.OutOrStdout()
	for _, e := range ents {
		mark := " "
		if e.File == choice {
			mark = "*"
		}
		state := "good"
		switch {
		case e.Bad():
			state = "bad"
		case e.Counted:
			state = fmt.Sprintf("%d tries left", e.Left)
		}
		fmt.Fprintf(w, "%s %s  %s (%s)\n", mark, e.File, e.Deployment, state)
	}
	return nil
}
