package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
)

// Exit codes (docs/conventions.md).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// NewRootCommand builds the strata command tree. Every command is listed here, in the order
// `strata --help` shows them; there is no registration through init().
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "strata",
		Short:         "An image-based, immutable Linux system in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newGroup("repo", "Manage OSTree-compatible repositories: commit, checkout, inspect, verify, publish, pull",
			newRepoInitCmd(), newRepoCommitCmd(), newRepoCheckoutCmd(),
			newRepoLogCmd(), newRepoShowCmd(), newRepoRefsCmd(), newRepoLsCmd(), newRepoCatCmd(), newRepoDiffCmd(),
			newRepoFsckCmd(), newRepoPruneCmd(), newRepoSummaryCmd(), newRepoStaticDeltaCmd(),
			newRepoKeygenCmd(), newRepoSignCmd(), newRepoVerifyCmd(),
			newRepoServeCmd(), newRepoPullCmd(), newRepoRemoteCmd(),
		),
		newGroup("sysroot", "Create and inspect sysroots: the physical root that holds deployments",
			newSysrootInitCmd(),
		),
		// The node verbs.
		newDeployCmd(), newStatusCmd(), newUpgradeCmd(), newRollbackCmd(), newCleanupCmd(),
		newPinCmd(), newUndeployCmd(), newKargsCmd(), newFinalizeCmd(),
		// Building and booting.
		newComposeCmd(), newImageCmd(), newInitramfsCmd(), newVMCmd(),
		newGroup("bootloader", "Manage the EFI system partition's boot entries (systemd-boot)",
			newBootloaderSyncCmd(),
		),
		newBootCompleteCmd(), newPrepareRootCmd(),
		// Updates.
		newGraphCmd(), newFleetlockCmd(), newAgentCmd(), newUpdateCmd(),
		// Provisioning.
		newConfigCmd(), newProvisionCmd(),
	)
	return root
}

// newGroup returns a parent command such as "repo". A group alone prints its help; an unknown
// subcommand is a usage error, not a help page with exit code 0.
func newGroup(name, short string, subs ...*cobra.Command) *cobra.Command {
	gc := &cobra.Command{Use: name, Short: short, Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		}}
	gc.AddCommand(subs...)
	return gc
}

// exitUnchanged is the exit code of a check that found nothing new
// (rpm-ostree's --unchanged-exit-77).
const exitUnchanged = 77

// exitCodeError ends a command that has said all it had to say with a
// specific exit code.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError marks an error as a usage mistake (exit code 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Main runs the command line and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// As the initramfs /init (or PID 1 without a command), run prepare-root.
	if filepath.Base(os.Args[0]) == "init" || (os.Getpid() == 1 && len(args) == 0) {
		return runInit(stderr)
	}
	root := NewRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ec exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	fmt.Fprintf(stderr, "strata: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return exitUsage
	}
	return exitFailure
}

func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// addRepoFlag adds the --repo flag every repo subcommand takes.
func addRepoFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "repo", "", "path of the repository (default: $OSTREE_REPO, else the sysroot's ostree/repo on a booted node)")
}

// openRepo opens the repository named by --repo, else the default one
// (repo_default.go).
func openRepo(path string) (*repo.Repo, error) {
	path, err := repoPath(path)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(path)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("cannot open repository %s: not a repository (run strata repo init)", path)
	}
	return r, err
}
