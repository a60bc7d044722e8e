package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/provconfig"
	"golang.org/x/sys/unix"
)

// Options are Apply's dependencies; zero values take the defaults.
type Options struct {
	// Client fetches http(s) resources; nil uses a client with a 30 s timeout per request.
	Client *http.Client
	// Now is the clock of the result file and of the shadow entries' last change.
	Now func() time.Time
	// BootID is recorded in the result file (Ignition's provisioningBootID).
	BootID string
	// Digest identifies the config in the result file (provconfig.Digest of its bytes).
	Digest string
	// Disks formats storage.disks and storage.filesystems; nil refuses configs that have them.
	Disks DiskFormatter
	// NetworkHostname, used by FirstBoot only, returns the host name the network gave while
	// the sources were asked (DHCP's option 12, or ip='s HOSTNAME field; "" for none). It is
	// asked after the config is applied and written to the tree's /etc/hostname when the
	// tree has none then: the config's (or the image's) /etc/hostname wins.
	NetworkHostname func() string
}

// KernelArguments are the config's kernelArguments, for the caller to set on the deployment
// (the tree alone cannot carry them).
type KernelArguments struct {
	ShouldExist    []string `json:"shouldExist,omitempty"`
	ShouldNotExist []string `json:"shouldNotExist,omitempty"`
}

// Result says what Apply did.
type Result struct {
	Digest          string          `json:"digest,omitempty"`
	Groups          int             `json:"groups"`
	Users           int             `json:"users"`
	Directories     int             `json:"directories"`
	Files           int             `json:"files"`
	Links           int             `json:"links"`
	Units           int             `json:"units"`
	Filesystems     int             `json:"filesystems"`
	KernelArguments KernelArguments `json:"kernelArguments"`
	// ResultFile is the report written into the tree, relative to the root.
	ResultFile string `json:"resultFile"`
}

// ResultFile is where the report of a provisioning goes inside the tree, Ignition's name.
const ResultFile = "etc/.ignition-result.json"

// report is the content of ResultFile: Ignition's fields plus the config's digest.
type report struct {
	ProvisioningBootID string          `json:"provisioningBootID,omitempty"`
	ProvisioningDate   string          `json:"provisioningDate"`
	UserConfigProvided bool            `json:"userConfigProvided"`
	ConfigDigest       string          `json:"configDigest,omitempty"`
	PreviousReport     json.RawMessage `json:"previousReport,omitempty"`
}

// Apply provisions the tree at rootDir with cfg: it fetches and verifies every resource and
// checks every entry first, and only then changes the tree (see the package doc). An error
// names the config path of the entry at fault.
func Apply(ctx context.Context, rootDir string, cfg provconfig.Config, opts Options) (Result, error) {
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	res := Result{Digest: opts.Digest, KernelArguments: KernelArguments{
		ShouldExist: strs(cfg.KernelArguments.ShouldExist), ShouldNotExist: strs(cfg.KernelArguments.ShouldNotExist)}}
	if err := unsupported(cfg, opts); err != nil {
		return res, err
	}
	r, err := openRoot(rootDir)
	if err != nil {
		return res, err
	}
	defer r.Close()

	// Phase 1: fetch and verify.
	f := &fetcher{client: opts.Client}
	if t := cfg.Ignition.Timeouts.HTTPTotal; t != nil && *t > 0 {
		f.timeout = time.Duration(*t) * time.Second
	}
	contents, err := fetchAll(ctx, f, cfg)
	if err != nil {
		return res, err
	}

	// Phase 2: check, against the tree as it is, with the account changes made in memory.
	acct, err := loadAccounts(r, opts.Now())
	if err != nil {
		return res, err
	}
	var users []userPlan
	for i, g := range cfg.Passwd.Groups {
		if err := acct.planGroup(fmt.Sprintf("$.passwd.groups.%d", i), g); err != nil {
			return res, err
		}
	}
	for i, u := range cfg.Passwd.Users {
		up, err := acct.planUser(fmt.Sprintf("$.passwd.users.%d", i), u)
		if err != nil {
			return res, err
		}
		users = append(users, up)
	}
	entries, err := planEntries(r, acct, cfg, contents)
	if err != nil {
		return res, err
	}
	units, err := planUnits(r, cfg)
	if err != nil {
		return res, err
	}
	touched, err := checkSpace(r, acct, entries, units)
	if err != nil {
		return res, err
	}
	mounts := planFilesystems(cfg)

	// Phase 3: apply.
	if len(cfg.Storage.Disks) > 0 || len(cfg.Storage.Filesystems) > 0 {
		if err := opts.Disks.Format(ctx, cfg.Storage); err != nil {
			return res, fmt.Errorf("$.storage: %w", err)
		}
		res.Filesystems = len(cfg.Storage.Filesystems)
	}
	if err := acct.write(r); err != nil {
		return res, err
	}
	for _, up := range users {
		if err := up.apply(r, acct); err != nil {
			return res, err
		}
	}
	res.Groups, res.Users = len(cfg.Passwd.Groups), len(cfg.Passwd.Users)
	for _, e := range entries {
		if err := e.apply(r); err != nil {
			return res, err
		}
	}
	res.Directories, res.Files, res.Links = len(cfg.Storage.Directories), len(cfg.Storage.Files), len(cfg.Storage.Links)
	units = append(units, mounts...)
	if err := applyUnits(r, units); err != nil {
		return res, err
	}
	res.Units = len(cfg.Systemd.Units)
	if err := writeReport(r, opts); err != nil {
		return res, err
	}
	res.ResultFile = ResultFile
	// Durable before it is reported done: syncfs on each filesystem written to (a
	// deployment's /var is not its /etc's), the result file's included.
	for _, d := range touched {
		fd, err := r.open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			fd, err = r.open(".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		}
		if err != nil {
			return res, fmt.Errorf("syncing the tree: %w", err)
		}
		err = unix.Syncfs(fd)
		unix.Close(fd)
		if err != nil {
			return res, fmt.Errorf("syncing the tree: %w", err)
		}
	}
	return res, nil
}

func strs[T ~string](l []T) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = string(v)
	}
	return out
}

// unsupported refuses the parts of a config strata does not apply, rather than skipping them.
func unsupported(cfg provconfig.Config, opts Options) error {
	type part struct {
		path string
		set  bool
	}
	for _, p := range []part{
		{"$.ignition.config.merge", len(cfg.Ignition.Config.Merge) > 0},
		{"$.ignition.config.replace", cfg.Ignition.Config.Replace.Source != nil},
		{"$.ignition.security.tls.certificateAuthorities", len(cfg.Ignition.Security.TLS.CertificateAuthorities) > 0},
		{"$.ignition.proxy", cfg.Ignition.Proxy.HTTPProxy != nil || cfg.Ignition.Proxy.HTTPSProxy != nil},
		{"$.storage.raid", len(cfg.Storage.Raid) > 0},
		{"$.storage.luks", len(cfg.Storage.Luks) > 0},
		{"$.storage.disks (without a disk formatter, --format-disks)", len(cfg.Storage.Disks) > 0 && opts.Disks == nil},
		{"$.storage.filesystems (without a disk formatter, --format-disks)", len(cfg.Storage.Filesystems) > 0 && opts.Disks == nil},
	} {
		if p.set {
			return fmt.Errorf("%s: not supported by strata provision (docs/provisioning.md): %w", p.path, errdefs.ErrUnsupported)
		}
	}
	return nil
}

// fetchAll fetches every file's contents and appends, keyed by their JSON paths.
func fetchAll(ctx context.Context, f *fetcher, cfg provconfig.Config) (map[string][]byte, error) {
	out := map[string][]byte{}
	for i, file := range cfg.Storage.Files {
		p := fmt.Sprintf("$.storage.files.%d.contents", i)
		data, err := f.fetch(ctx, p, file.Contents)
		if err != nil {
			return nil, err
		}
		out[p] = data
		for j, a := range file.Append {
			p := fmt.Sprintf("$.storage.files.%d.append.%d", i, j)
			data, err := f.fetch(ctx, p, a)
			if err != nil {
				return nil, err
			}
			out[p] = data
		}
	}
	return out, nil
}

func loadAccounts(r *root, now time.Time) (*accounts, error) {
	a := &accounts{today: now.Unix() / 86400}
	for _, spec := range []struct {
		dst     **dbFile
		rel     string
		nfields int
	}{{&a.passwd, "etc/passwd", 7}, {&a.group, "etc/group", 4}, {&a.shadow, "etc/shadow", 9},
		{&a.gshadow, "etc/gshadow", 4}, {&a.subuid, "etc/subuid", 3}, {&a.subgid, "etc/subgid", 3}} {
		data, ok, err := r.readFile(spec.rel)
		if err != nil {
			return nil, fmt.Errorf("reading account database: %w", err)
		}
		f := parseDB(spec.rel, spec.nfields, data)
		f.exists, f.mode = ok, 0o644
		if spec.rel == "etc/shadow" || spec.rel == "etc/gshadow" {
			f.mode = 0o640
		}
		if ok {
			st, _, err := r.lstat(spec.rel)
			if err != nil {
				return nil, err
			}
			f.mode, f.uid, f.gid = st.Mode&0o7777, int(st.Uid), int(st.Gid)
		}
		*spec.dst = f
	}
	defs, _, err := r.readFile("etc/login.defs")
	if err != nil {
		return nil, err
	}
	a.defs = parseSettings(defs, " ")
	ua, _, err := r.readFile("etc/default/useradd")
	if err != nil {
		return nil, err
	}
	a.useradd = parseSettings(ua, "=")
	if a.useradd["SHELL"] == "" {
		a.useradd["SHELL"] = "/bin/sh"
	}
	if st, ok, _ := r.lstat("home"); ok && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		if t, err := readlinkRoot(r, "home"); err == nil && (path.Clean(t) == "var/home" || path.Clean(t) == "/var/home") {
			a.homeIsVar = true
		}
	}
	return a, nil
}

func readlinkRoot(r *root, rel string) (string, error) {
	pfd, name, err := r.parent(rel, false)
	if err != nil {
		return "", err
	}
	defer unix.Close(pfd)
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(pfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// write replaces each changed database atomically, groups before users so that no user ever
// names a group that is not there yet.
func (a *accounts) write(r *root) error {
	for _, f := range a.files() {
		if !f.changed || (!f.exists && len(f.lines) == 0) {
			continue
		}
		if !f.exists && (f.rel == "etc/subuid" || f.rel == "etc/subgid") {
			continue
		}
		if err := r.writeFile(f.rel, f.bytes(), f.mode, f.uid, f.gid); err != nil {
			return fmt.Errorf("$.passwd: writing %s: %w", f.rel, err)
		}
	}
	return nil
}

// writeReport writes ResultFile, nesting a previous report as Ignition does.
func writeReport(r *root, opts Options) error {
	rep := report{ProvisioningBootID: opts.BootID, ProvisioningDate: opts.Now().UTC().Format(time.RFC3339),
		UserConfigProvided: true, ConfigDigest: opts.Digest}
	if prev, ok, err := r.readFile(ResultFile); err == nil && ok && json.Valid(prev) {
		rep.PreviousReport = prev
	}
	data, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("internal error: encoding the result: %w", err)
	}
	if err := r.writeFile(ResultFile, append(data, '\n'), 0o600, 0, 0); err != nil {
		return fmt.Errorf("writing the result file: %w", err)
	}
	return nil
}
