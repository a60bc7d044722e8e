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
// Registry pulls download layer blobs several at a time into the repository's tmp/, resumable
// with Range requests (fetch.go). Follow reads the image a deployment's origin names
// (ostree-unverified-registry:…, ostree-image-signed:…) and imports it when its digest is new;
// signed references are checked against the containers policy first (follow.go). Signatures
// are sigstore simple signing (sigstore.go). Deploying is package sysroot's: it asks for an
// ImagePuller, which the command line builds from Follow.
//
// Layer: L2 (a transport beside package pull; it stores into package repo).
package oci
