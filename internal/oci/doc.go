// Package oci moves commits through OCI images and registries, the way bootc and
// ostree-ext define "container encapsulation" (docs/oci.md).
//
// Push encapsulates a commit as an image: plain tar layers a container runtime can run
// (/usr/etc appears as /etc), split by the dpkg package database into at most 64 layers
// whose descriptors name their packages (annotation ostree.components), and a last layer
// that carries the commit object and its detached metadata under sysroot/ostree/repo, so
// that a pull writes the very same commit checksum. The same commit always gives the same
// manifest digest.
//
// Pull imports an image as a commit. Every blob is checked against its digest and every
// layer against the config's diff ID; file content goes into a repository transaction,
// and refs move only when the whole image was verified and, for strata's own images, the
// tree rebuilt from the layers has the carried commit's root checksums. Layers after the
// label ostree.final-diffid are derived (a Containerfile's FROM): whiteouts and opaque
// directories are applied to the base commit's tree, /etc goes to /usr/etc and /var
// content becomes tmpfiles.d lines, and the result is committed on top of the base
// commit. A base commit already in the repository is not downloaded again.
//
// Signatures are sigstore simple signing (sigstore.go). Not done here: following a registry
// from a deployment's origin.
//
// Layer: L2 (a transport beside package pull; it stores into package repo).
package oci
