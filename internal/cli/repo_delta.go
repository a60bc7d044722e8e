package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/delta"
	"github.com/strata-os/strata/internal/ostree"
)

func newRepoStaticDeltaCmd() *cobra.Command {
	return newGroup("static-delta", "Generate, list, show and delete static deltas (update bundles between two commits)",
		newRepoDeltaGenerateCmd(), newRepoDeltaListCmd(), newRepoDeltaShowCmd(), newRepoDeltaDeleteCmd(),
		newRepoDeltaApplyOfflineCmd())
}

func newRepoDeltaGenerateCmd() *cobra.Command {
	var (
		path, from, to string
		empty, inline  bool
		minFallbackKB  int64
		maxChunkMB     int64
		maxBsdiffMB    int64
	)
	cmd := &cobra.Command{
		Use:   "generate --repo R [--from REV | --empty] --to REV [--inline] [--max-bsdiff-size MB] [--min-fallback-size KB]",
		Short: "Write the static delta from one commit (or from empty) to another",
		Long: `Write the static delta that brings a client holding --from (by default the parent
of --to; with --empty nothing) to --to, in OSTree's layout (deltas/), as
ostree static-delta generate does. A changed file up to --max-bsdiff-size
megabytes whose bytes mostly stayed in place travels as a bsdiff patch against
the file at the same path in --from. Other content objects of at least
--min-fallback-size kilobytes are left out of the parts: clients fetch them as
loose objects. Run strata repo summary afterwards to publish the delta.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if empty && from != "" {
				return usagef("--from and --empty cannot be combined")
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			toC, err := r.ResolveRev(to)
			if err != nil {
				return fmt.Errorf("cannot generate the delta: %w", err)
			}
			var fromC ostree.Checksum
			switch {
			case from != "":
				if fromC, err = r.ResolveRev(from); err != nil {
					return fmt.Errorf("cannot generate the delta: %w", err)
				}
			case !empty:
				cm, err := r.ReadCommit(toC)
				if err != nil {
					return fmt.Errorf("cannot generate the delta: %w", err)
				}
				if cm.Parent.IsZero() {
					return usagef("commit %s has no parent: give --from or --empty", toC)
				}
				fromC = cm.Parent
			}
			if maxBsdiffMB == 0 {
				maxBsdiffMB = -1
			}
			start := time.Now()
			sb, err := delta.Generate(cmd.Context(), r, fromC, toC, delta.Options{
				Inline: inline, MinFallbackSize: minFallbackKB * 1000, MaxChunkSize: maxChunkMB * 1000 * 1000,
				MaxBsdiffSize: maxBsdiffMB * 1000 * 1000})
			if err != nil {
				return fmt.Errorf("cannot generate the delta: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Generated static delta %s: %d parts, %d fallbacks, %d bytes to download (%s)\n",
				sb.Name, len(sb.Parts), len(sb.Fallbacks), sb.DownloadSize(), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().StringVar(&from, "from", "", "the commit clients have (default: the parent of --to)")
	cmd.Flags().BoolVar(&empty, "empty", false, "generate a delta from nothing (for a first pull)")
	cmd.Flags().StringVar(&to, "to", "", "the commit the delta brings clients to")
	cmd.Flags().BoolVar(&inline, "inline", false, "put the parts into the superblock")
	cmd.Flags().Int64Var(&minFallbackKB, "min-fallback-size", delta.DefaultMinFallbackSize/1000, "fetch content objects of at least this many kilobytes loose")
	cmd.Flags().Int64Var(&maxChunkMB, "max-chunk-size", delta.DefaultMaxChunkSize/1000/1000, "split parts at this many megabytes")
	cmd.Flags().Int64Var(&maxBsdiffMB, "max-bsdiff-size", delta.DefaultMaxBsdiffSize/1000/1000, "send changed files up to this many megabytes as patches against the old file (0: never)")
	cmd.MarkFlagRequired("to")
	return cmd
}

func newRepoDeltaListCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "list --repo R",
		Short: "List the static deltas of a repository",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			names, err := delta.List(r)
			if err != nil {
				return fmt.Errorf("cannot list deltas: %w", err)
			}
			if len(names) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "(No static deltas)")
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	return cmd
}

func newRepoDeltaShowCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "show --repo R DELTA",
		Short: "Describe a static delta: its parts, objects, fallbacks and download size",
		Args:  argNames("DELTA"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := delta.ParseName(args[0])
			if err != nil {
				return usageError{err}
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			sb, err := delta.Read(r, n)
			if err != nil {
				return fmt.Errorf("cannot show the delta: %w", err)
			}
			printSuperblock(cmd.OutOrStdout(), sb)
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	return cmd
}

// printSuperblock prints a delta as `ostree static-delta show` does.
func printSuperblock(w io.Writer, sb *delta.Superblock) {
	fmt.Fprintf(w, "Delta: %s\n", sb.Name)
	fmt.Fprintf(w, "Timestamp: %s\n", sb.Timestamp.Format(time.RFC3339))
	fmt.Fprintln(w, "Endianness: little")
	fmt.Fprintf(w, "Number of parts: %d\n", len(sb.Parts))
	fmt.Fprintf(w, "Number of fallback entries: %d\n", len(sb.Fallbacks))
	var size, usize uint64
	for i, p := range sb.Parts {
		fmt.Fprintf(w, "PartMeta%d: nobjects=%d size=%d usize=%d\n", i, len(p.Objects), p.Size, p.UncompressedSize)
		size += p.Size
		usize += p.UncompressedSize
	}
	var fsize, fusize uint64
	for _, f := range sb.Fallbacks {
		fsize += f.Size
		fusize += f.UncompressedSize
	}
	fmt.Fprintf(w, "Total Part Size: %d\nTotal Part Uncompressed Size: %d\n", size, usize)
	fmt.Fprintf(w, "Total Fallback Size: %d\nTotal Fallback Uncompressed Size: %d\n", fsize, fusize)
	fmt.Fprintf(w, "Download Size: %d\n", sb.DownloadSize())
}

func newRepoDeltaDeleteCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "delete --repo R DELTA",
		Short: "Delete a static delta (run strata repo summary afterwards to unpublish it)",
		Args:  argNames("DELTA"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := delta.ParseName(args[0])
			if err != nil {
				return usageError{err}
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			if err := delta.Delete(r, n); err != nil {
				return fmt.Errorf("cannot delete the delta: %w", err)
			}
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	return cmd
}

func newRepoDeltaApplyOfflineCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "apply-offline --repo R DIR",
		Short: "Store the objects and commit of a delta read from a directory (its superblock and parts)",
		Long: `Apply the static delta in DIR (a superblock and its part files, as in a
repository's deltas/ directory) to the repository, as ostree static-delta
apply-offline does: every object is verified before it is stored, refs are
not changed. The delta's fallback objects must be in the repository already.`,
		Args: argNames("DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			sb, err := delta.ApplyOffline(cmd.Context(), r, args[0])
			if err != nil {
				return fmt.Errorf("cannot apply the delta: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Applied static delta %s\n", sb.Name)
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	return cmd
}
