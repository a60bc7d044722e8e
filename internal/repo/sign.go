package repo

import (
	"errors"
	"fmt"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/sign"
)

// SignResult says what SignCommit did.
type SignResult struct {
	Commit ostree.Checksum
	Engine string // the signer's engine (sign.EngineEd25519)
	Key    string // the signing key's public key, as the engine spells it
	// Added is false when a signature by Key was there already and
	// nothing changed.
	Added bool
}

// SignCommit signs the commit rev (a ref or checksum) with an ed25519
// secret key and appends the signature to the commit's detached metadata
// (.commitmeta, under ostree.sign.ed25519), keeping every signature and
// entry already there, as `ostree sign` does. When the metadata holds a
// valid signature by key already, nothing is written. The signed bytes
// are the commit object as stored, checked against its checksum first.
func (r *Repo) SignCommit(rev string, key sign.SecretKey) (SignResult, error) {
	c, data, err := r.readSignedCommit(rev)
	if err != nil {
		return SignResult{}, err
	}
	res := SignResult{Commit: c, Engine: sign.EngineEd25519, Key: key.Public().String()}
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
		return res, fmt.Errorf("signing commit %s: %w", c, err)
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

// VerifyCommit checks that the commit rev carries, in its detached
// metadata, a signature that one of verifiers accepts (sign.Verify). It
// returns the commit's checksum with the result; the error wraps
// sign.ErrNoSignature or sign.ErrUntrusted when no signature is good.
func (r *Repo) VerifyCommit(rev string, verifiers ...sign.Verifier) (ostree.Checksum, sign.Result, error) {
	c, data, err := r.readSignedCommit(rev)
	if err != nil {
		return c, sign.Result{}, err
	}
	meta, err := r.ReadCommitMeta(c)
	if err != nil {
		return c, sign.Result{}, err
	}
	res, err := sign.Verify(data, meta, verifiers...)
	if err != nil {
		return c, res, fmt.Errorf("verifying commit %s: %w", c, err)
	}
	return c, res, nil
}

// readSignedCommit resolves rev and returns the commit's checksum and
// its bytes, checked against the checksum: signatures cover these bytes.
func (r *Repo) readSignedCommit(rev string) (ostree.Checksum, []byte, error) {
	c, err := r.ResolveRev(rev)
	if err != nil {
		return c, nil, err
	}
	data, err := r.readMetaChecked(ostree.ObjectCommit, c)
	return c, data, err
}
