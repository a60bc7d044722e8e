package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
)

// summaryState says whether a repository publishes a summary, and a
// signed one.
func summaryState(r *repo.Repo) (has, signed bool) {
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(r.Path(), name))
		return err == nil || !errors.Is(err, fs.ErrNotExist)
	}
	return exists(repo.SummaryFile), exists(repo.SummarySigFile)
}

// checkUpdateSummary refuses, before anything is committed, an
// --update-summary that would replace a signed summary by an unsigned one.
func checkUpdateSummary(r *repo.Repo, update bool, signKey string) error {
	if _, signed := summaryState(r); update && signed && signKey == "" {
		return usagef("the summary of %s is signed: --update-summary needs --sign-key to sign the new one (or run strata repo summary --sign-key KEY after the commit)", r.Path())
	}
	return nil
}

// afterCommitSummary regenerates the summary after a commit with
// --update-summary (signed with signKey when given). Without it, a
// repository that publishes a summary gets a warning on w: clients resolve
// refs through the summary, so they do not see the new commit until it is
// regenerated.
func afterCommitSummary(w io.Writer, r *repo.Repo, branch string, c ostree.Checksum, update bool, signKey string) error {
	if !update {
		if has, _ := summaryState(r); has {
			fmt.Fprintf(w, "warning: %s has a summary: clients will not see %s at %s until strata repo summary --repo %s runs (or commit with --update-summary)\n",
				r.Path(), branch, c, r.Path())
		}
		return nil
	}
	opts := repo.SummaryOptions{}
	if signKey != "" {
		key, err := sign.LoadSecretKey(signKey)
		if err != nil {
			return fmt.Errorf("cannot sign the summary: %w", err)
		}
		opts.Sign = func(data []byte) ([]byte, error) {
			return sign.Append(nil, data, sign.NewEd25519Signer(key))
		}
	}
	if _, err := r.RegenerateSummary(opts); err != nil {
		return fmt.Errorf("committed %s, but cannot update the summary: %w", c, err)
	}
	return nil
}
