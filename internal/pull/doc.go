// Package pull publishes archive repositories over HTTP and pulls commits
// from them into a local repository of any mode, speaking libostree's
// wire protocol (docs/formats/summary.md): the summary and summary.sig,
// refs/heads/REF when there is no summary, and loose objects under
// objects/XX/REST.{commitmeta,commit,dirtree,dirmeta,filez}.
//
// Serving: NewHandler answers GET and HEAD for the files of an archive
// repository exactly as a static web server or CDN would serve the same
// directory (ranges, ETag, conditional requests), and Serve runs it until
// its context ends.
//
// Pulling: Pull resolves refs, fetches and verifies each commit (checksum,
// ed25519 signature, ref binding) before any of its content, then brings
// in the missing objects of its tree with bounded parallelism, verifying
// each one on arrival, and moves the refs in the transaction's single
// commit point. An interrupted pull leaves its verified objects staged and
// the next pull of the same boot resumes from them.
//
// It does not apply static deltas yet (the fetch plan has a producer
// interface for them), speak GPG, or manage remotes (package repo does).
// Layer L2.
package pull
