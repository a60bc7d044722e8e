// Package provision applies a provisioning config (internal/provconfig) to an OS tree: the
// first-boot configuration of users, files and units that Ignition's files stage performs,
// done in-process without chroot or useradd.
//
// Apply works in three phases and touches the tree only in the last one:
//
//  1. fetch: every remote resource (data: and http(s) URLs, gzip, httpHeaders) is fetched and
//     verified against its verification.hash, in memory and bounded in size;
//  2. check: every path is resolved beneath the root, every owner, group and user
//     modification is checked against the tree's passwd and group databases, existing nodes
//     are checked against the overwrite rules, and the free space is compared with what will
//     be written; any finding stops here, naming the config path;
//  3. apply: groups and users (passwd, group, shadow and gshadow each replaced atomically),
//     then directories, files and links in path order, then systemd units, dropins, presets
//     and enablement symlinks, then mount units for storage.filesystems, and last the result
//     file etc/.ignition-result.json.
//
// kernelArguments are not applied: they belong to the deployment, not to its tree, so they
// are returned in the Result for the caller (prepare-root, the image builder) to set.
//
// FirstBoot is the first-boot policy around Apply: it runs only while the physical root holds
// the first-boot mark, takes the config of the first Source that has one (FwCfg, Embedded, URL
// in prepare-root's order), and commits by writing the Record and then removing the mark; the
// config's kernelArguments are left pending (PendingKargs, KargsEdit) for the booted system to
// set on the deployment. ReadState tells strata status where a node stands.
// docs/provisioning.md lists where strata deliberately differs from Ignition.
//
// Layer L3 (services); it imports only lower layers.
package provision
