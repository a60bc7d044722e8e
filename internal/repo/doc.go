// Package repo is strata's on-disk OSTree repository: the four storage
// modes (archive, bare, bare-user, bare-user-only) with an ostree-compatible
// config, transactions with one commit point, content and metadata object
// I/O, refs and revision parsing; and on top of those commit from a tree or
// tar stream, checkout, fsck, prune, diff and history. Repositories written
// here are read by libostree 2022.7 and the other way round
// (docs/formats/repository.md).
//
// Vocabulary: an object is named by its checksum and type; a ref names a
// commit; a transaction (Txn) stages objects and ref moves and applies them
// in Commit. Typical write:
//
//	txn, _ := r.Begin()
//	defer txn.Abort()
//	c, _ := txn.WriteContent(fi, f, size, nil)
//	...
//	txn.SetRef("", "os/stable", commit)
//	err := txn.Commit()
//
// It does not speak HTTP (package pull) or manage deployments (package
// sysroot). Layer L2.
package repo
