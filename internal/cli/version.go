package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version and commit are set at link time by `make build`:
//
//	-ldflags "-X github.com/strata-os/strata/internal/cli.version=V -X github.com/strata-os/strata/internal/cli.commit=C"
//
// A plain `go build` leaves version "devel" and takes the commit from the
// build's VCS stamp when there is one.
var (
	version = "devel"
	commit  = ""
)

// features are what this build supports, in the spirit of the Features
// list of `ostree --version`.
var features = []string{
	"sign-ed25519", // ed25519 commit and summary signatures: sign, verify, pull
	"repo-archive", "repo-bare", "repo-bare-user", "repo-bare-user-only",
	"pull-http",               // pulls over http, https and file URLs
	"bootloader-systemd-boot", // BLS entries on the ESP, with boot counting
}

// buildInfo describes this binary.
func buildInfo() versionJSON {
	v := versionJSON{Version: version, Commit: commit, Go: runtime.Version(), Features: features}
	if v.Commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					v.Commit = s.Value
				}
			}
		}
	}
	return v
}

func (v versionJSON) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "strata:\n Version: %s\n", v.Version)
	if v.Commit != "" {
		fmt.Fprintf(&b, " Git: %s\n", v.Commit)
	}
	fmt.Fprintf(&b, " Go: %s\n Features:\n", v.Go)
	for _, f := range v.Features {
		fmt.Fprintf(&b, "  - %s\n", f)
	}
	return b.String()
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print strata's version, commit, Go version and features",
		Long: `Print the version and source commit of this strata binary, the Go version it
was built with and the features it has (as ostree --version lists them).
strata --version prints the same.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), buildInfo())
			}
			fmt.Fprint(cmd.OutOrStdout(), buildInfo())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as JSON")
	return cmd
}
