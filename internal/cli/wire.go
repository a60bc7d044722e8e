package cli

import (
	"github.com/strata-os/strata/internal/compose"
	"github.com/strata-os/strata/internal/image"
	"github.com/strata-os/strata/internal/initramfs"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/sysext"
)

// The --json outputs of every command, in one place: these types are the
// command line's wire format, which scripts read. Field names are
// snake_case; a commit checksum is "commit" wherever it is a commit, a
// path is absolute, and metadata values are JSON values.

// strata bootloader sync

// bootloaderSyncJSON is the --json output of bootloader sync.
type bootloaderSyncJSON struct {
	Entries []espEntryJSON `json:"entries"`
	Default string         `json:"default"`
}

type espEntryJSON struct {
	File       string `json:"file"`
	Deployment string `json:"deployment"`
	TriesLeft  *int   `json:"tries_left,omitempty"`
	TriesDone  *int   `json:"tries_done,omitempty"`
}

// strata compose

// composeJSON is the --json output of compose.
type composeJSON struct {
	Ref             string             `json:"ref"`
	Commit          string             `json:"commit"`
	Version         string             `json:"version"`
	Kernel          string             `json:"kernel"`
	Suite           string             `json:"suite"`
	SourceDateEpoch int64              `json:"source_date_epoch"`
	Packages        []compose.Package  `json:"packages"`
	ObjectsWritten  int64              `json:"objects_written"`
	ObjectsReused   int64              `json:"objects_reused"`
	BytesWritten    int64              `json:"bytes_written"`
	Bytes           int64              `json:"bytes"`
	Signed          bool               `json:"signed"`
	Seconds         float64            `json:"seconds"`
	StageSeconds    map[string]float64 `json:"stage_seconds"`
}

// strata image

// imageJSON is the --json output of image.
type imageJSON struct {
	Out        string            `json:"out"`
	Commit     string            `json:"commit"`
	OSName     string            `json:"osname"`
	Refspec    string            `json:"refspec"`
	Deployment string            `json:"deployment"`
	Kargs      []string          `json:"kargs"`
	Entry      string            `json:"entry"`
	Size       int64             `json:"size"`
	RootSize   int64             `json:"root_size"`
	Stages     []image.StageTime `json:"stages"`
	Seconds    float64           `json:"seconds"`
	// ProvisionDigest identifies the embedded first-boot config (as strata status shows it
	// once the node is provisioned); absent without --provision.
	ProvisionDigest string `json:"provision_digest,omitempty"`
}

// strata initramfs

// initramfsJSON is the --json output of initramfs.
type initramfsJSON struct {
	Out     string             `json:"out"`
	Kver    string             `json:"kver"`
	Init    string             `json:"init"`
	Modules []initramfs.Module `json:"modules"`
	Bytes   int64              `json:"bytes"`
	Seconds float64            `json:"seconds"`
}

// The node verbs: one deployment

// deploymentJSON is one deployment in --json outputs (snake_case like
// every strata JSON output).
type deploymentJSON struct {
	Index        int      `json:"index"`
	OSName       string   `json:"osname"`
	Checksum     string   `json:"commit"`
	Serial       int      `json:"serial"`
	BootChecksum string   `json:"boot_checksum,omitempty"`
	BootSerial   int      `json:"boot_serial"`
	Refspec      string   `json:"refspec,omitempty"`
	ImageDigest  string   `json:"image_digest,omitempty"` // the manifest digest of an image origin
	Version      string   `json:"version,omitempty"`
	Timestamp    int64    `json:"timestamp,omitempty"`
	Kargs        []string `json:"kargs"`
	Booted       bool     `json:"booted"`
	Staged       bool     `json:"staged"`
	Pending      bool     `json:"pending"`
	Rollback     bool     `json:"rollback"`
	Pinned       bool     `json:"pinned"`
	Path         string   `json:"path"`
	// Layering (docs/layering.md), rpm-ostree's names: set when the
	// deployment runs a commit derived from its base.
	BaseChecksum          string   `json:"base-checksum,omitempty"`
	RequestedPackages     []string `json:"requested-packages,omitempty"`
	RequestedLocal        []string `json:"requested-local-packages,omitempty"`
	RequestedBaseRemovals []string `json:"requested-base-removals,omitempty"`
	// LiveApplied, on the booted deployment, names the deployment
	// (CHECKSUM.SERIAL) whose additions to /usr install --apply-live
	// mounted over the running /usr (rpm-ostree's live commit).
	LiveApplied string `json:"live-applied,omitempty"`
}

// strata cleanup

// cleanupJSON is the --json output of cleanup.
type cleanupJSON struct {
	Undeployed    []string `json:"undeployed"`
	Deployments   []string `json:"deployments_deleted"`
	BootDirs      []string `json:"boot_dirs_deleted"`
	ObjectsPruned int      `json:"objects_pruned"`
	BytesFreed    int64    `json:"bytes_freed"`
}

// strata prepare-root --dry-run

// prepareRootJSON is the --json output of prepare-root --dry-run.
type prepareRootJSON struct {
	Root       string   `json:"root"`
	RootFSType string   `json:"rootfstype"`
	Stateroot  string   `json:"stateroot,omitempty"`
	Deployment string   `json:"deployment,omitempty"`
	Init       string   `json:"init"`
	Steps      []string `json:"steps"`
}

// strata repo checkout

// checkoutJSON is the --json output of repo checkout (snake_case, like
// every strata JSON output).
type checkoutJSON struct {
	Commit     string `json:"commit"`
	Dest       string `json:"dest"`
	Dirs       int64  `json:"dirs"`
	Files      int64  `json:"files"`
	Hardlinked int64  `json:"hardlinked"`
	Copied     int64  `json:"copied"`
	Verified   int64  `json:"verified_objects"`
}

// strata repo commit

// commitResultJSON is the --json output of repo commit.
type commitResultJSON struct {
	Commit         string `json:"commit"`
	Ref            string `json:"ref,omitempty"`
	Parent         string `json:"parent,omitempty"`
	RootTree       string `json:"root_tree"`
	RootMeta       string `json:"root_meta"`
	Dirs           int64  `json:"dirs"`
	Files          int64  `json:"files"`
	Symlinks       int64  `json:"symlinks"`
	Bytes          int64  `json:"bytes"`
	ContentWritten int64  `json:"content_objects_written"`
	ContentReused  int64  `json:"content_objects_reused"`
	MetaWritten    int64  `json:"metadata_objects_written"`
	MetaReused     int64  `json:"metadata_objects_reused"`
	BytesWritten   int64  `json:"bytes_written"`
	Signed         bool   `json:"signed"`
}

// strata repo diff

type diffJSON struct {
	Modified []string `json:"modified"`
	Removed  []string `json:"removed"`
	Added    []string `json:"added"`
	// Packages is set when both commits carry strata.packages (compose).
	Packages *compose.PackageDiff `json:"packages,omitempty"`
}

// strata repo fsck

// fsckJSON is the --json output of repo fsck.
type fsckJSON struct {
	OK             bool              `json:"ok"`
	Objects        int64             `json:"objects"`
	ObjectsByType  map[string]int64  `json:"objects_by_type"`
	Bytes          int64             `json:"bytes"`
	Refs           int               `json:"refs"`
	Commits        int               `json:"commits"`
	PartialCommits int               `json:"partial_commits"`
	Verified       int               `json:"verified_commits"`
	Problems       []fsckProblemJSON `json:"problems"`
}

type fsckProblemJSON struct {
	Kind    string `json:"kind"`
	Error   bool   `json:"error"`
	Object  string `json:"object,omitempty"`
	Type    string `json:"type,omitempty"`
	Ref     string `json:"ref,omitempty"`
	Commit  string `json:"commit,omitempty"`
	Path    string `json:"path,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

// strata repo keygen

type keygenJSON struct {
	SecretKeyFile string `json:"secret_key_file"`
	PublicKeyFile string `json:"public_key_file"`
	PublicKey     string `json:"public_key"`
}

// strata repo log

// commitJSON is one commit in log and show output.
type commitJSON struct {
	Checksum        string `json:"commit"`
	Parent          string `json:"parent,omitempty"`
	ContentChecksum string `json:"content_checksum"`
	Timestamp       uint64 `json:"timestamp"`
	Date            string `json:"date"`
	Version         string `json:"version,omitempty"`
	Subject         string `json:"subject"`
	Body            string `json:"body"`
}

type logJSON struct {
	Commits []commitJSON `json:"commits"`
	// Truncated: the oldest commit's parent is not in the repository.
	Truncated bool `json:"truncated"`
}

// strata repo ls

type lsEntryJSON struct {
	Path          string      `json:"path"`
	Type          string      `json:"type"` // "dir", "file" or "symlink"
	Mode          string      `json:"mode"` // permission bits in octal, e.g. "0755"
	UID           uint32      `json:"uid"`
	GID           uint32      `json:"gid"`
	Size          int64       `json:"size"`
	SymlinkTarget string      `json:"symlink_target,omitempty"`
	Checksum      string      `json:"checksum"`          // content object, or dirtree
	DirMeta       string      `json:"dirmeta,omitempty"` // directories
	Xattrs        []xattrJSON `json:"xattrs"`
}

type xattrJSON struct {
	Name  string `json:"name"`
	Value []byte `json:"value"` // base64, as encoding/json writes []byte
}

// strata repo prune

// pruneJSON is the --json output of repo prune.
type pruneJSON struct {
	DryRun         bool               `json:"dry_run"`
	Objects        int64              `json:"objects"`
	Reachable      int64              `json:"reachable"`
	Deleted        int                `json:"deleted"`
	DeletedCommits int                `json:"deleted_commits"`
	Bytes          int64              `json:"bytes_freed"`
	DeletedObjects []prunedObjectJSON `json:"deleted_objects"`
	Markers        []string           `json:"removed_commitpartial"`
	Tmp            []string           `json:"removed_tmp"`
}

type prunedObjectJSON struct {
	Object string `json:"object"`
	Type   string `json:"type"`
}

// strata repo pull

type pullJSON struct {
	Refs           []pullRefJSON      `json:"refs"`
	Remote         string             `json:"remote,omitempty"` // the remote a pull by --url recorded
	Commits        int                `json:"commits"`
	ObjectsFetched int64              `json:"objects_fetched"`
	ObjectsSkipped int64              `json:"objects_skipped"`
	Bytes          int64              `json:"bytes"`
	StaticDeltas   []pull.DeltaResult `json:"static_deltas,omitempty"`
	Duration       float64            `json:"duration_seconds"`
}

type pullRefJSON struct {
	Ref      string `json:"ref"`
	Commit   string `json:"commit"`
	Previous string `json:"previous,omitempty"`
	SignedBy string `json:"signed_by,omitempty"`
}

// strata repo refs

type refJSON struct {
	Name     string `json:"name"`
	Remote   string `json:"remote,omitempty"`
	Refspec  string `json:"refspec"`
	Checksum string `json:"commit"`
}

// strata repo remote

type remoteJSON struct {
	Name        string   `json:"name"`
	URL         string   `json:"url"`
	GPGVerify   bool     `json:"gpg_verify"`
	SignVerify  bool     `json:"sign_verify"`
	Ed25519Key  string   `json:"verification_ed25519_key,omitempty"`
	Ed25519File string   `json:"verification_ed25519_file,omitempty"`
	Branches    []string `json:"branches,omitempty"`
}

// strata repo show

// showJSON is the --json output of repo show: the log fields plus the
// root objects and every metadata entry, in stored order.
type showJSON struct {
	commitJSON
	RootDirTree  string          `json:"root_dirtree"`
	RootDirMeta  string          `json:"root_dirmeta"`
	ParentStored bool            `json:"parent_stored"`
	Metadata     []metaEntryJSON `json:"metadata"`
	Detached     []metaEntryJSON `json:"detached_metadata"`
}

// metaEntryJSON is one a{sv} entry: its key, GVariant type string, its
// value as a JSON value (strings, numbers, booleans; byte arrays such as
// signatures in base64; a{sv} as objects) and in the GVariant text format.
type metaEntryJSON struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
	Text  string `json:"text"`
}

// strata repo sign

type signJSON struct {
	Commit string `json:"commit"`
	Engine string `json:"engine"`
	Key    string `json:"key"`
	Added  bool   `json:"added"` // false: the key had signed it already
}

// strata repo summary

// summaryJSON is the --json form of a summary.
type summaryJSON struct {
	Refs             []summaryRefJSON `json:"refs"`
	Mode             string           `json:"mode,omitempty"`
	LastModified     string           `json:"last_modified,omitempty"`
	TombstoneCommits bool             `json:"tombstone_commits"`
	IndexedDeltas    bool             `json:"indexed_deltas"`
	Signed           bool             `json:"signed"`
}

type summaryRefJSON struct {
	Name       string `json:"name"`
	Commit     string `json:"commit"`
	CommitSize uint64 `json:"commit_size"`
	Version    string `json:"version,omitempty"`
	Timestamp  string `json:"timestamp,omitempty"`
}

// strata repo verify

type verifyJSON struct {
	Commit string `json:"commit"`
	Valid  bool   `json:"valid"`
	Engine string `json:"engine,omitempty"`
	Key    string `json:"key,omitempty"`
	Error  string `json:"error,omitempty"`
}

// strata status

// statusJSON is the --json output of status.
type statusJSON struct {
	Sysroot        string           `json:"sysroot"`
	BootVersion    int              `json:"bootversion"`
	SubBootVersion int              `json:"subbootversion"`
	Deployments    []deploymentJSON `json:"deployments"`
	// Provisioning is the node's first-boot provisioning state; absent when the node was not
	// built to be provisioned.
	Provisioning *provisioningJSON `json:"provisioning,omitempty"`
	// Extensions are the node's system extensions as the booted (else
	// default) deployment sees them (strata sysext list).
	Extensions []sysext.Status `json:"extensions,omitempty"`
	// UpdatesBlocked lists, per stateroot, the last upgrade refused
	// because the layered packages could not be installed on it.
	UpdatesBlocked map[string]*layerBlock `json:"updates_blocked,omitempty"`
}

// provisioningJSON is the provisioning part of status --json.
type provisioningJSON struct {
	Status       string `json:"status"`                  // pending, failed, provisioned
	Date         string `json:"date,omitempty"`          // when it was provisioned (RFC 3339)
	ConfigDigest string `json:"config_digest,omitempty"` // sha256-HEX of the config applied
	Source       string `json:"source,omitempty"`        // fw_cfg, embedded, url; "" if none had a config
	Error        string `json:"error,omitempty"`         // the last failed attempt's error
	FailedDate   string `json:"failed_date,omitempty"`
}

// strata upgrade

// upgradeJSON is the --json output of upgrade.
type upgradeJSON struct {
	Refspec   string          `json:"refspec"`
	Origin    string          `json:"origin"` // remote, local-ref or commit
	Fetched   bool            `json:"fetched"`
	Base      string          `json:"base"`
	Commit    string          `json:"commit"`
	Version   string          `json:"version,omitempty"`
	Available bool            `json:"update_available"`
	Deployed  *deploymentJSON `json:"deployed,omitempty"`
	Bytes     int64           `json:"bytes_fetched"`
	// Digest is the manifest digest an image origin's tag names now; layers count what an
	// image upgrade downloaded and what it found in the repository.
	Digest        string `json:"image_digest,omitempty"`
	LayersFetched int    `json:"layers_fetched,omitempty"`
	LayersSkipped int    `json:"layers_skipped,omitempty"`
}

// strata vm

// vmJSON is the --json output of strata vm (durations in seconds).
type vmJSON struct {
	Reason     string            `json:"reason"`
	OK         bool              `json:"ok"`
	Matched    string            `json:"matched,omitempty"`
	Failure    string            `json:"failure,omitempty"`
	Exited     bool              `json:"exited"`
	ExitCode   int               `json:"exit_code"`
	Seconds    float64           `json:"seconds"`
	Milestones []vmMilestoneJSON `json:"milestones"`
	Markers    []vmMarkerJSON    `json:"markers"`
}

type vmMilestoneJSON struct {
	Pattern string  `json:"pattern"`
	Seconds float64 `json:"seconds"`
}

type vmMarkerJSON struct {
	Name    string  `json:"name"`
	Value   string  `json:"value,omitempty"`
	Seconds float64 `json:"seconds"`
}

// kargsJSON is the --json output of kargs.
type kargsJSON struct {
	Index int      `json:"index"`
	Kargs []string `json:"kargs"`
}

// versionJSON is the --json output of version.
type versionJSON struct {
	Version  string   `json:"version"`
	Commit   string   `json:"commit,omitempty"`
	Go       string   `json:"go"`
	Features []string `json:"features"`
}

// errorJSON is how an error is printed on standard error with --json.
type errorJSON struct {
	Error struct {
		Class    string `json:"class"`
		Message  string `json:"message"`
		ExitCode int    `json:"exit_code"`
	} `json:"error"`
}
