package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
)

// commitResultJSON is the --json output of repo commit.
type commitResultJSON struct {
	Commit         string `json:"commit"`
	Ref            string `json:"ref,omitempty"`
	Parent         string `json:"parent,omitempty"`
	RootTree       string `json:"root_tree"`
	RootMeta       string `json:"root_meta"`
	Dirs           int64  `json:"dirs"`
	Files          int64  `json:"files"`
	Symlinks       int64  `json:"symlinks"`
	Bytes          int64  `json:"bytes"`
	ContentWritten int64  `json:"content_objects_written"`
	ContentReused  int64  `json:"content_objects_reused"`
	MetaWritten    int64  `json:"metadata_objects_written"`
	MetaReused     int64  `json:"metadata_objects_reused"`
	BytesWritten   int64  `json:"bytes_written"`
	Signed         bool   `json:"signed"`
}

func newRepoCommitCmd() *cobra.Command {
	var (
		path, branch, tree, tarFile string
		subject, body, parent       string
		timestamp, signKey          string
		metadata                    []string
		noBindings, asJSON, update  bool
	)
	cmd := &cobra.Command{
		Use:   "commit --repo R --branch B (--tree DIR | --tar FILE) [--subject S] [--body T] [--timestamp UNIX] [--metadata K=V]... [--sign-key FILE] [--parent REV|none] [--no-bindings] [--update-summary] [--json]",
		Short: "Commit a directory or a tar stream",
		Long: `Commit the directory DIR, or the tar stream FILE ("-" for standard input; plain,
gzip or zstd), to branch B and print the new commit's checksum. The checksum is
the one ostree commit computes for the same tree and options: --metadata K=V
strings in order, then ostree.ref-binding = [B] unless --no-bindings.

The parent is the branch's current head unless --parent names a revision or
"none". The timestamp defaults to $SOURCE_DATE_EPOCH, else the current time.
--sign-key signs the commit with an ed25519 secret key file (as written by
strata repo keygen) in the same transaction.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (tree == "") == (tarFile == "") {
				return usagef("exactly one of --tree and --tar is required")
			}
			opts := repo.CommitOptions{Branch: branch, Subject: subject, Body: body, Parent: parent, NoBindings: noBindings}
			if err := ostree.ValidateRef(branch); err != nil {
				return usageError{fmt.Errorf("--branch: %w", err)}
			}
			for _, kv := range metadata {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("--metadata %q: want KEY=VALUE", kv)
				}
				opts.Metadata = append(opts.Metadata, gvariant.DictEntry{Key: k, Value: gvariant.NewVariant("s", v)})
			}
			if timestamp != "" {
				secs, err := strconv.ParseInt(strings.TrimPrefix(timestamp, "@"), 10, 64)
				if err != nil || secs < 0 {
					return usagef("--timestamp %q: want seconds since the epoch", timestamp)
				}
				opts.Timestamp = time.Unix(secs, 0)
			}
			if signKey != "" {
				key, err := sign.LoadSecretKey(signKey)
				if err != nil {
					return fmt.Errorf("cannot load signing key: %w", err)
				}
				signer := sign.NewEd25519Signer(key)
				opts.Sign = func(commit, detached []byte) ([]byte, error) {
					return sign.Append(detached, commit, signer)
				}
			}
			var src repo.TreeSource
			if tree != "" {
				src = repo.DirSource(tree)
			} else {
				var in io.Reader = cmd.InOrStdin()
				if tarFile != "-" {
					f, err := os.Open(tarFile)
					if err != nil {
						return fmt.Errorf("cannot open tar stream: %w", err)
					}
					defer f.Close()
					in = f
				}
				src = repo.TarSource(in)
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			if err := checkUpdateSummary(r, update, signKey); err != nil {
				return err
			}
			bar := newProgress(cmd, "commit", -1, false)
			opts.Progress = bar
			c, st, err := repo.CommitTree(cmd.Context(), r, src, opts)
			bar.Finish()
			if err != nil {
				return fmt.Errorf("cannot commit: %w", err)
			}
			if err := afterCommitSummary(cmd.ErrOrStderr(), r, branch, c, update, signKey); err != nil {
				return err
			}
			if !asJSON {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), c)
				return err
			}
			out := commitResultJSON{
				Commit: c.String(), Ref: branch, RootTree: st.RootTree.String(), RootMeta: st.RootMeta.String(),
				Dirs: st.Dirs, Files: st.Files, Symlinks: st.Symlinks, Bytes: st.Bytes,
				ContentWritten: st.ContentWritten, ContentReused: st.ContentReused,
				MetaWritten: st.MetaWritten, MetaReused: st.MetaReused, BytesWritten: st.BytesWritten,
				Signed: signKey != "",
			}
			if !st.Parent.IsZero() {
				out.Parent = st.Parent.String()
			}
			return writeJSON(cmd.OutOrStdout(), out)
		},
	}
	addRepoFlag(cmd, &path)
	f := cmd.Flags()
	f.StringVarP(&branch, "branch", "b", "", "branch (ref) to commit to")
	f.StringVar(&tree, "tree", "", "directory to commit")
	f.StringVar(&tarFile, "tar", "", `tar stream to commit ("-": standard input; plain, gzip or zstd)`)
	f.StringVarP(&subject, "subject", "s", "", "one-line subject")
	f.StringVarP(&body, "body", "m", "", "full description")
	f.StringVar(&timestamp, "timestamp", "", "commit time in seconds since the epoch (default: $SOURCE_DATE_EPOCH or now)")
	f.StringArrayVar(&metadata, "metadata", nil, "string metadata KEY=VALUE (repeatable, kept in order)")
	f.StringVar(&signKey, "sign-key", "", "sign with this ed25519 secret key file")
	f.StringVar(&parent, "parent", "", `parent revision, or "none" (default: the branch's current head)`)
	f.BoolVar(&noBindings, "no-bindings", false, "do not add ostree.ref-binding to the commit metadata")
	f.BoolVar(&update, "update-summary", false, "regenerate the summary after the commit (signed with --sign-key)")
	f.BoolVar(&asJSON, "json", false, "print the commit and what was written as JSON")
	cmd.MarkFlagRequired("branch")
	return cmd
}
