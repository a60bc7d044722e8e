// Package sign signs and verifies OSTree commits and summaries the way libostree's signature
// engines do (docs/formats/signatures.md): signatures live in detached metadata, an a{sv}
// stored as objects/XX/REST.commitmeta for a commit and as summary.sig for a summary, where each
// engine appends to an aay under its own key. The signed bytes are the commit object or the
// summary file, exactly as stored.
//
// What it provides:
//   - Ed25519 keys in ostree's text forms: secret key = base64 of libsodium's 64 bytes
//     (seed || public key), public key = base64 of 32 bytes, trusted/revoked key files with one
//     public key per line (ParsePublicKey, ParseSecretKey, ParseTrustedKeys, LoadTrustedKeys,
//     LoadSecretKey, GenerateKey, WriteKeyPair for `strata repo keygen`).
//   - Detached metadata editing that keeps other entries and their order (Metadata,
//     ParseMetadata, AddSignature, Append).
//   - Signer and Verifier for the ed25519 engine (ostree.sign.ed25519) and the gpg engine
//     (ostree.gpgsigs, binary OpenPGP detached signatures, via github.com/ProtonMail/go-crypto).
//   - Verify: accepts when any signature verifies with any trusted, unrevoked key, and tells
//     apart no signature (ErrNoSignature), no valid signature by a trusted key (ErrUntrusted)
//     and malformed metadata (errdefs.ErrInvalid).
//
// Compatibility evidence, from the ostree 2022.7 vectors (testdata/ostree-vectors.tar.gz):
//   - ed25519: the key pair of seed 00..1f in signing/ed25519.{secret,public} and the signature
//     of commit C1 in signing/C1.commitmeta.ed25519 are reproduced byte for byte, and that
//     commitmeta verifies. The ostree build that made the vectors has no libsodium, so this
//     file was crafted to the engine's documented format and only its container was checked by
//     ostree (docs/formats/signatures.md); the signature itself is RFC 8032 Ed25519, which libsodium
//     implements.
//   - Appending: AddSignature from empty reproduces ostree's own writes exactly: the two dummy
//     signatures of C1's .commitmeta (a second signature appended after the first),
//     repo-archive/summary.sig, and the gpg-sign commitmeta below.
//   - gpg: signing/C1.commitmeta.gpg is a real `ostree gpg-sign` of C1. Its public key is not in
//     the vectors, so the signature cannot be verified here. What is proven: the container
//     decodes and re-encodes identically; its one element is a v4 binary-document (type 0x00)
//     signature packet, EdDSA over SHA-256, issuer fingerprint
//     AE71B6258FA043FB25BF1C9606733AA7A70CCEF2 (key ID 06733AA7A70CCEF2); and Verify against a
//     keyring without that key fails with ErrUntrusted naming it. Signing and verifying with the
//     same engine is tested with an Ed25519 OpenPGP key generated in the test (armored and
//     binary keyrings, tampered data, clock before the key, several signatures).
//
// What it does not do: find key files (the caller passes the remote's
// verification-ed25519-key/-file and the /etc/ostree and /usr/share/ostree trusted.ed25519(.d)
// and revoked.ed25519 files it chose), read or write objects in a repository, limit the size of
// detached metadata it is given, decrypt passphrase-protected OpenPGP keys, or implement the
// dummy and spki engines (their entries are kept untouched). With several keys in one
// dictionary, entries keep their order and a new key goes last, where ostree's GVariantDict
// writes a hash order: the same dictionary, other bytes.
//
// Layer L1: imports the standard library, internal/errdefs, internal/gvariant and
// github.com/ProtonMail/go-crypto; never repo or ostree.
package sign
