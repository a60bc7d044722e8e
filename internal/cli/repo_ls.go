package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

func newRepoLsCmd() *cobra.Command {
	var (
		path                                 string
		recursive, checksums, xattrs, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "ls --repo R REV [PATH] [-R] [-C] [-X] [--json]",
		Short: "List a path of a commit's tree",
		Long: `List PATH (default /) in the tree of REV like ostree ls: type and mode, uid,
gid, size, path and symlink target, the entry itself first, then a directory's
entries (all of them, depth first, with -R). -C adds checksums (dirtree and
dirmeta for directories), -X the xattrs in the GVariant text format.`,
		Args:              argNames("REV", "[PATH]"),
		ValidArgsFunction: completeFirstRev,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := "/"
			if len(args) == 2 {
				p = args[1]
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			ents, err := repo.Ls(cmd.Context(), r, args[0], p, recursive)
			if err != nil {
				return fmt.Errorf("cannot list: %w", err)
			}
			if asJSON {
				out := []lsEntryJSON{}
				for _, e := range ents {
					out = append(out, newLsEntryJSON(e))
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			return printLs(cmd.OutOrStdout(), ents, checksums, xattrs)
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "list everything below PATH")
	cmd.Flags().BoolVarP(&checksums, "checksum", "C", false, "print checksums")
	cmd.Flags().BoolVarP(&xattrs, "xattrs", "X", false, "print xattrs")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func lsType(mode uint32) (char byte, name string) {
	switch mode & ostree.ModeTypeMask {
	case ostree.ModeDir:
		return 'd', "dir"
	case ostree.ModeSymlink:
		return 'l', "symlink"
	case ostree.ModeReg:
		return '-', "file"
	}
	return '?', "unknown"
}

func newLsEntryJSON(e repo.LsEntry) lsEntryJSON {
	_, typ := lsType(e.Mode)
	j := lsEntryJSON{Path: e.Path, Type: typ, Mode: fmt.Sprintf("%04o", e.Mode&ostree.ModePermMask),
		UID: e.UID, GID: e.GID, Size: e.Size, SymlinkTarget: e.SymlinkTarget,
		Checksum: e.Checksum.String(), Xattrs: []xattrJSON{}}
	if e.Kind == repo.EntryDir {
		j.DirMeta = e.Meta.String()
	}
	for _, x := range e.Xattrs {
		j.Xattrs = append(j.Xattrs, xattrJSON{Name: x.Name, Value: x.Value})
	}
	return j
}

var xattrsType = gvariant.MustType("a(ayay)")

// printLs prints ostree ls lines: "%c0%04o %u %u %6d ", checksums,
// "{ xattrs } ", path, " -> target" (ot-builtin-ls.c).
func printLs(w io.Writer, ents []repo.LsEntry, checksums, xattrs bool) error {
	var b strings.Builder
	for _, e := range ents {
		c, _ := lsType(e.Mode)
		fmt.Fprintf(&b, "%c0%04o %d %d %6d ", c, e.Mode&ostree.ModePermMask, e.UID, e.GID, e.Size)
		if checksums {
			if e.Kind == repo.EntryDir {
				fmt.Fprintf(&b, "%s %s ", e.Checksum, e.Meta)
			} else {
				fmt.Fprintf(&b, "%s ", e.Checksum)
			}
		}
		if xattrs {
			xs := make([]any, len(e.Xattrs))
			for i, x := range e.Xattrs {
				xs[i] = gvariant.Tuple{append([]byte(x.Name), 0), x.Value}
			}
			fmt.Fprintf(&b, "{ %s } ", repo.FormatVariant(gvariant.Variant{Type: xattrsType, Value: xs}))
		}
		b.WriteString(e.Path)
		if e.SymlinkTarget != "" {
			b.WriteString(" -> " + e.SymlinkTarget)
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
