package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/sign"
)

func newRepoPullCmd() *cobra.Command {
	var (
		path, url                        string
		keyFiles                         []string
		noVerify, allowDowngrade, asJSON bool
		noDeltas, needDeltas             bool
		depth                            int
		maxContentSize                   int64
	)
	cmd := &cobra.Command{
		Use:   "pull --repo R (--url URL REF... | REMOTE [REF...] | REMOTE:REF) [--trusted-key FILE... | --no-verify] [--depth N] [--json]",
		Short: "Fetch refs from a served repository, verifying signatures",
		Long: `Pull each REF (or REF@CHECKSUM for a given commit, or a bare CHECKSUM, which
moves no ref) from an archive repository
served over HTTP (strata repo serve, any static web server, or ostree's
trivial-httpd) into the local repository, whatever its mode.

From --url, refs are written as local refs (refs/heads/REF), as a mirror
does, and as refs of the remote of that URL (refs/remotes/REMOTE/REF; the
remote is added, named after the URL's host and port, if none has that URL),
so that deploying REF keeps following the server. From a configured REMOTE,
refs are written as refs/remotes/REMOTE/REF. As with ostree pull, REMOTE:REF
names one ref of a remote, and a REMOTE without refs pulls every ref its
summary lists.

Every commit must carry an ed25519 signature by a trusted key before any of
its content is fetched: keys come from --trusted-key files, or else from the
remote's verification-ed25519-key/-file. Without a key the pull is refused;
--no-verify pulls unverified. A signed summary (summary.sig) is checked too;
the remote's sign-verify-summary=true makes it mandatory. strata does not
check GPG signatures (gpg-verify). A commit bound to other refs
(ostree.ref-binding) is refused, and so is moving a ref to an older commit
unless --allow-downgrade or REF@CHECKSUM.

A content object may declare at most --max-content-size bytes (the remote's
max-content-size; default 64 GiB), and exactly the size its commit lists when
the commit carries ostree.sizes; one the commit does not list may inflate at
most 400:1 beyond its first MiB (the remote's max-inflate-ratio, -1 for no
bound). Redirects keep the remote's scheme and host; the remote's
allow-cross-host-redirects=true lets them go to other hosts.

When the remote offers a static delta to the commit from the ref's current
commit (or, for a first pull, from empty), the pull downloads it instead of
the objects, says how many bytes before it starts, verifies every object it
produces, and falls back to objects if the delta is bad;
--require-static-deltas makes that an error, --disable-static-deltas skips
deltas.

--depth N also pulls N parent commits with their trees (-1: all history).
An interrupted pull resumes from what it had fetched. The ref moves only
when everything is in.`,
		Args: atLeast("REMOTE or REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if noVerify && len(keyFiles) > 0 {
				return usagef("--no-verify and --trusted-key contradict each other")
			}
			keys, err := sign.LoadTrustedKeyFiles(keyFiles...)
			if err != nil {
				return fmt.Errorf("cannot pull: %w", err)
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			if noDeltas && needDeltas {
				return usagef("--disable-static-deltas and --require-static-deltas contradict each other")
			}
			opts := pull.Options{URL: url, Refs: args, AllowDowngrade: allowDowngrade, Depth: depth,
				DisableStaticDeltas: noDeltas, RequireStaticDeltas: needDeltas}
			opts.DeltaStarted = func(name string, n uint64) {
				fmt.Fprintf(cmd.ErrOrStderr(), "Using static delta %s: %s to download\n", name, humanBytes(int64(n)))
			}
			if url == "" {
				if remote, ref, ok := strings.Cut(args[0], ":"); ok && len(args) == 1 {
					// ostree pull REMOTE:REF
					args = []string{remote, ref}
				}
				opts.Remote, opts.Refs = args[0], args[1:]
			}
			policy, err := pull.PolicyFromRemote(r, opts.Remote, keys, noVerify)
			if err != nil {
				return trustHint(err, opts.Remote)
			}
			policy.Apply(&opts)
			if len(opts.Refs) == 0 {
				// ostree pull REMOTE: every ref of the remote's summary.
				if opts.Refs, err = pull.RemoteRefs(cmd.Context(), r, opts); err != nil {
					return fmt.Errorf("cannot pull: %w", err)
				}
			}
			if maxContentSize > 0 {
				opts.MaxContentSize = maxContentSize
			}
			bar := &pullProgress{p: newProgress(cmd, "pull", -1, false)}
			opts.Progress = bar
			res, err := pull.Pull(cmd.Context(), r, opts)
			bar.p.Finish()
			if errors.Is(err, pull.ErrDowngrade) {
				return fmt.Errorf("cannot pull: %w; pass --allow-downgrade to move the ref back, or pull REF@CHECKSUM", err)
			}
			if err != nil {
				return fmt.Errorf("cannot pull: %w", err)
			}
			out := pullResultJSON(res)
			if url != "" {
				if out.Remote, err = trackPulledURL(cmd.ErrOrStderr(), r, url, keyFiles, noVerify, res); err != nil {
					return err
				}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			printPull(cmd.OutOrStdout(), opts.Remote, res)
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().StringVar(&url, "url", "", "base URL of the remote repository (instead of a configured REMOTE)")
	cmd.Flags().StringArrayVar(&keyFiles, "trusted-key", nil, "file of trusted ed25519 public keys (repeatable)")
	cmd.Flags().BoolVar(&noVerify, "no-verify", false, "do not verify signatures")
	cmd.Flags().BoolVar(&allowDowngrade, "allow-downgrade", false, "let a ref move to an older commit")
	cmd.Flags().BoolVar(&noDeltas, "disable-static-deltas", false, "fetch objects only, never a static delta")
	cmd.Flags().BoolVar(&needDeltas, "require-static-deltas", false, "fail instead of fetching objects when no good static delta is offered")
	cmd.Flags().IntVar(&depth, "depth", 0, "also pull this many parent commits (-1: all)")
	cmd.Flags().Int64Var(&maxContentSize, "max-content-size", 0, "largest file, in bytes, a content object may declare (default: the remote's max-content-size, or 64 GiB)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was pulled as JSON")
	return cmd
}

// trustHint adds to a pull refused for want of a trusted key what the
// user can give instead.
func trustHint(err error, remote string) error {
	if !errors.Is(err, pull.ErrNoTrustedKey) {
		return fmt.Errorf("cannot pull: %w", err)
	}
	where := "--trusted-key FILE"
	if remote != "" {
		where += fmt.Sprintf(" (or add remote %s with --trusted-key)", remote)
	}
	return usageError{fmt.Errorf("cannot pull: %w: give %s, or --no-verify to pull unverified", err, where)}
}

// pullProgress shows objects done of objects found, and bytes received.
type pullProgress struct {
	p     *progress
	bytes atomic.Int64
	last  atomic.Int64 // unix nanoseconds of the last description update
}

var _ pull.ByteProgress = (*pullProgress)(nil)

func (b *pullProgress) SetTotal(n int64) { b.p.SetTotal(n) }
func (b *pullProgress) Add(n int64)      { b.p.Add(n) }

func (b *pullProgress) SetBytes(n int64) {
	b.bytes.Store(n)
	now := time.Now().UnixNano()
	if b.p.bar == nil || now-b.last.Load() < int64(200*time.Millisecond) {
		return
	}
	b.last.Store(now)
	b.p.bar.Describe("pull " + humanBytes(n))
}

func pullResultJSON(res *pull.Result) pullJSON {
	out := pullJSON{Refs: []pullRefJSON{}, Commits: res.Commits, ObjectsFetched: res.Fetched,
		ObjectsSkipped: res.Skipped, Bytes: res.Bytes, Duration: res.Duration.Seconds(), StaticDeltas: res.Deltas}
	for _, r := range res.Refs {
		e := pullRefJSON{Ref: r.Ref, Commit: r.Commit.String(), SignedBy: r.SignedBy}
		if !r.Previous.IsZero() {
			e.Previous = r.Previous.String()
		}
		out.Refs = append(out.Refs, e)
	}
	return out
}

func printPull(w io.Writer, remote string, res *pull.Result) {
	for _, r := range res.Refs {
		name := r.Ref
		if remote != "" {
			name = remote + ":" + r.Ref
		}
		switch r.Previous {
		case ostree.Checksum{}:
			fmt.Fprintf(w, "%s: %s (new)\n", name, r.Commit)
		case r.Commit:
			fmt.Fprintf(w, "%s: %s (unchanged)\n", name, r.Commit)
		default:
			fmt.Fprintf(w, "%s: %s -> %s\n", name, r.Previous, r.Commit)
		}
		if r.SignedBy != "" {
			fmt.Fprintf(w, "  signed by %s\n", strings.TrimPrefix(r.SignedBy, sign.EngineEd25519+":"))
		}
	}
	for _, d := range res.Deltas {
		if d.Fallback != "" {
			fmt.Fprintf(w, "static delta %s not used (%s); objects fetched instead\n", d.Name, d.Fallback)
		} else {
			fmt.Fprintf(w, "static delta %s applied (%s)\n", d.Name, humanBytes(int64(d.Bytes)))
		}
	}
	fmt.Fprintf(w, "%d objects fetched, %d already present; %s in %s\n",
		res.Fetched, res.Skipped, humanBytes(res.Bytes), res.Duration.Round(time.Millisecond))
}
