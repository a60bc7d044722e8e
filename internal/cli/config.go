package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/provconfig"
)

func newConfigCmd() *cobra.Command {
	return newGroup("config", "Translate and validate provisioning configs (Ignition JSON, Butane-style YAML)",
		newConfigTranslateCmd(), newConfigValidateCmd())
}

// filesOptions opens --files-dir as the root that local references resolve beneath.
func filesOptions(dir string) (provconfig.Options, func(), error) {
	if dir == "" {
		return provconfig.Options{}, func() {}, nil
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return provconfig.Options{}, nil, fmt.Errorf("cannot open files directory: %w", err)
	}
	return provconfig.Options{Files: r.FS()}, func() { r.Close() }, nil
}

// readConfigArg reads a config file, or standard input for "-".
func readConfigArg(cmd *cobra.Command, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<20))
	}
	return os.ReadFile(name)
}

// printReport writes a report's findings, one per line, to standard error.
func printReport(w io.Writer, name string, rpt provconfig.Report) {
	for _, f := range rpt.Findings {
		fmt.Fprintf(w, "%s: %s\n", name, f)
	}
}

func newConfigTranslateCmd() *cobra.Command {
	var out, filesDir string
	cmd := &cobra.Command{
		Use:   "translate CONFIG.yaml [-o OUT.ign] [--files-dir DIR]",
		Short: "Translate a Butane-style YAML config (variant fcos) into an Ignition JSON config",
		Long: `Translate the YAML form of a provisioning config into Ignition JSON: the spec
version follows the YAML's fcos version (1.0.0 to 1.6.0 give Ignition 3.0.0 to
3.5.0). Keys are Ignition's in snake_case plus Butane's sugar (contents.inline,
contents.local, contents_local, ssh_authorized_keys_local, storage.trees,
with_mount_unit); local paths resolve beneath --files-dir. Every finding is
printed with its path and line; unknown keys are errors. CONFIG may be "-" for
standard input; the JSON goes to standard output unless -o is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := readConfigArg(cmd, args[0])
			if err != nil {
				return fmt.Errorf("cannot read config: %w", err)
			}
			opts, done, err := filesOptions(filesDir)
			if err != nil {
				return err
			}
			defer done()
			js, rpt, err := provconfig.Translate(raw, opts)
			printReport(cmd.ErrOrStderr(), args[0], rpt)
			if err != nil {
				return fmt.Errorf("cannot translate %s: %w", args[0], err)
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(js)
				return err
			}
			if err := fsutil.WriteFileAtomic(out, js, 0o600); err != nil {
				return fmt.Errorf("cannot write %s: %w", out, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the Ignition config to this file (mode 0600: configs carry secrets)")
	cmd.Flags().StringVar(&filesDir, "files-dir", "", "directory that local file references resolve beneath")
	return cmd
}

func newConfigValidateCmd() *cobra.Command {
	var filesDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate FILE [--files-dir DIR] [--json]",
		Short: "Validate a provisioning config in either form, printing its errors and warnings",
		Long: `Validate an Ignition JSON config (spec 3.0.0 to 3.5.0) or the Butane-style YAML
form. Each finding names the JSON path of the value and its line and column.
Exit status 0 when the config can be applied (warnings allowed), 1 when not.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := readConfigArg(cmd, args[0])
			if err != nil {
				return fmt.Errorf("cannot read config: %w", err)
			}
			opts, done, err := filesOptions(filesDir)
			if err != nil {
				return err
			}
			defer done()
			_, rpt, err := provconfig.Parse(raw, opts)
			if asJSON {
				if rpt.Findings == nil {
					rpt.Findings = []provconfig.Finding{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if e := enc.Encode(struct {
					Valid  bool   `json:"valid"`
					Digest string `json:"digest"`
					provconfig.Report
				}{err == nil, provconfig.Digest(raw), rpt}); e != nil {
					return e
				}
			} else {
				printReport(cmd.ErrOrStderr(), args[0], rpt)
			}
			if err != nil {
				if asJSON {
					return exitCodeError{exitFailure}
				}
				return fmt.Errorf("%s is not a valid config: %w", args[0], err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&filesDir, "files-dir", "", "directory that local file references resolve beneath")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the findings as JSON")
	return cmd
}
