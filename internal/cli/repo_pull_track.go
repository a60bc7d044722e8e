package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/repo"
)

// trackPulledURL records where refs pulled by --url came from: the remote
// of that URL (added if none has it, with the pull's verification) gets a
// remote ref beside each local ref, so that `deploy REF` records
// REMOTE:REF and upgrade keeps fetching (docs/upgrade.md). It returns the
// remote's name.
func trackPulledURL(w io.Writer, r *repo.Repo, url string, keyFiles []string, noVerify bool, res *pull.Result) (string, error) {
	tmpl := repo.Remote{SignVerify: !noVerify}
	if len(keyFiles) == 1 {
		abs, err := filepath.Abs(keyFiles[0])
		if err != nil {
			return "", fmt.Errorf("cannot record the remote of %s: %w", url, err)
		}
		tmpl.Ed25519File = abs
	}
	name, added, err := r.TrackURL(url, tmpl)
	if err != nil {
		return "", fmt.Errorf("cannot record the remote of %s: %w", url, err)
	}
	for _, ref := range res.Refs {
		branch, _, _ := strings.Cut(ref.Ref, "@")
		if err := r.SetRef(name, branch, ref.Commit); err != nil {
			return "", fmt.Errorf("cannot record %s:%s: %w", name, branch, err)
		}
	}
	if added && w != nil {
		fmt.Fprintf(w, "Added remote %s for %s; its refs are also %s:REF, which deploy and upgrade follow.\n", name, url, name)
		if len(keyFiles) > 1 {
			fmt.Fprintf(w, "Remote %s records no trusted key (several were given): pass --trusted-key to upgrade.\n", name)
		}
	}
	return name, nil
}
