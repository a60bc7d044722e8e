package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
)

type signJSON struct {
	Commit string `json:"commit"`
	Engine string `json:"engine"`
	Key    string `json:"key"`
	Added  bool   `json:"added"` // false: the key had signed it already
}

func newRepoSignCmd() *cobra.Command {
	var (
		path, keyFile string
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "sign --repo R REV --key FILE [--json]",
		Short: "Add an ed25519 signature to a commit's detached metadata",
		Long: `Sign the commit REV (a ref or checksum) with the ed25519 secret key in FILE
(strata repo keygen) and append the signature to the commit's detached
metadata (.commitmeta, key ostree.sign.ed25519), keeping every signature and
key already there, as ostree sign does. Signing again with the same key
changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return usagef("--key FILE is required")
			}
			key, err := sign.LoadSecretKey(keyFile)
			if err != nil {
				return fmt.Errorf("cannot sign: %w", err)
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			res, err := signCommit(r, args[0], key)
			if err != nil {
				return fmt.Errorf("cannot sign %s: %w", args[0], err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			verb := "signed"
			if !res.Added {
				verb = "already signed"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s with ed25519 key %s\n", verb, res.Commit, res.Key)
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().StringVar(&keyFile, "key", "", "ed25519 secret key file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// signCommit appends key's signature over commit rev to its detached
// metadata, unless a signature by key is there already.
func signCommit(r *repo.Repo, rev string, key sign.SecretKey) (signJSON, error) {
	c, data, err := readCommitBytes(r, rev)
	if err != nil {
		return signJSON{}, err
	}
	res := signJSON{Commit: c.String(), Key: key.Public().String(), Engine: sign.EngineEd25519}
	old, err := r.ReadCommitMeta(c)
	if err != nil {
		return res, err
	}
	verifier := sign.NewEd25519Verifier([]sign.PublicKey{key.Public()}, nil)
	if _, err := sign.Verify(data, old, verifier); err == nil {
		return res, nil
	} else if !errors.Is(err, sign.ErrNoSignature) && !errors.Is(err, sign.ErrUntrusted) {
		return res, fmt.Errorf("reading the detached metadata of %s: %w", c, err)
	}
	meta, err := sign.Append(old, data, sign.NewEd25519Signer(key))
	if err != nil {
		return res, err
	}
	txn, err := r.Begin()
	if err != nil {
		return res, err
	}
	defer txn.Abort()
	if err := txn.WriteCommitMeta(c, meta); err != nil {
		return res, err
	}
	if err := txn.Commit(); err != nil {
		return res, err
	}
	res.Added = true
	return res, nil
}

// readCommitBytes resolves rev and returns the commit's checksum and its
// bytes, checked against the checksum: signatures cover these bytes.
func readCommitBytes(r *repo.Repo, rev string) (ostree.Checksum, []byte, error) {
	c, err := r.ResolveRev(rev)
	if err != nil {
		return c, nil, err
	}
	data, err := r.ReadMetadata(ostree.ObjectCommit, c)
	if err != nil {
		return c, nil, err
	}
	if got := ostree.MetadataChecksum(data); got != c {
		return c, nil, fmt.Errorf("commit %s is corrupt: its bytes hash to %s (run strata repo fsck)", c, got)
	}
	return c, data, nil
}
