package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
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
	// --version is a flag of our own, not cobra's Version field: cobra prints a custom version
	// text through text/template, and a reachable template execution makes the linker keep every
	// exported method of every type (reflection could call any), which grows the binary by a
	// third and with it the pages every command, the agent too, touches at start.
	showVersion := root.Flags().BoolP("version", "v", false, "version for strata")
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		if *showVersion {
			fmt.Fprint(cmd.OutOrStdout(), buildInfo())
			return nil
		}
		return cmd.Help()
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
		newDeployCmd(), newRebaseCmd(), newStatusCmd(), newUpgradeCmd(), newRollbackCmd(), newCleanupCmd(),
		newPinCmd(), newUndeployCmd(), newKargsCmd(), newFinalizeCmd(),
		newInstallCmd(), newUninstallCmd(), newOverrideCmd(),
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
		// Extensions.
		newSysextCmd(),
		// About strata itself.
		newVersionCmd(), newManCmd(),
		newGroup("oci", "Move commits through OCI images: registries, layouts and archives",
			newOCIPushCmd(), newOCIPullCmd(),
		),
	)
	finishTree(root)
	return root
}

// newGroup returns a parent command such as "repo". A group alone prints
// its help; an unknown subcommand is a usage error (finishTree).
func newGroup(name, short string, subs ...*cobra.Command) *cobra.Command {
	gc := &cobra.Command{Use: name, Short: short}
	gc.AddCommand(subs...)
	return gc
}

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
	root.SetFlagErrorFunc(flagError)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	return reportError(stderr, err, wantsJSON(cmd, args))
}

// wantsJSON reports whether the command line asked for --json, also when
// it could not be parsed.
func wantsJSON(cmd *cobra.Command, args []string) bool {
	if cmd != nil {
		if f := cmd.Flags().Lookup("json"); f != nil && f.Changed {
			return true
		}
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--json" || a == "--json=true" {
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
