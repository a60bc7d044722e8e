package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/provconfig"
)

// maxConfig bounds a first-boot config read from any source.
const maxConfig = 64 << 20

// Source is one place a first-boot config may come from. FirstBoot asks its sources in order
// and applies the config of the first that has one.
type Source interface {
	// Name says where a config came from, for the console and the record (fw_cfg, embedded,
	// url).
	Name() string
	// Config returns the config's bytes; found is false when the source has none.
	Config(ctx context.Context) (raw []byte, found bool, err error)
}

// FwCfg is QEMU's fw_cfg entry opt/com.coreos/config (provconfig.FwCfgConfig) under the sysfs
// mount Sysfs ("" means /sys). The entry is absent on machines other than QEMU and when the
// initramfs lacks the qemu_fw_cfg module; both mean no config here.
type FwCfg struct{ Sysfs string }

// Embedded is the config `strata image --provision` wrote into the physical root.
type Embedded struct{ PhysRoot string }

// URL is the config named by ignition.config.url= on the kernel command line Cmdline. Network,
// if set, is called first, only when the argument is there (prepare-root brings the network up
// for the fetch); Client nil means a client with a 30 s timeout per request.
type URL struct {
	Cmdline string
	Network func(ctx context.Context) error
	Client  *http.Client
}

var (
	_ Source = FwCfg{}
	_ Source = Embedded{}
	_ Source = URL{}
)

func (FwCfg) Name() string    { return "fw_cfg" }
func (Embedded) Name() string { return "embedded" }
func (URL) Name() string      { return "url" }

func (s FwCfg) Config(context.Context) ([]byte, bool, error) {
	sysfs := s.Sysfs
	if sysfs == "" {
		sysfs = "/sys"
	}
	return readBounded(filepath.Join(sysfs, provconfig.FwCfgConfig))
}

func (s Embedded) Config(context.Context) ([]byte, bool, error) {
	return readBounded(filepath.Join(s.PhysRoot, provconfig.FirstBootConfig))
}

func (s URL) Config(ctx context.Context) ([]byte, bool, error) {
	src := ""
	for _, arg := range strings.Fields(s.Cmdline) {
		if v, ok := strings.CutPrefix(arg, provconfig.ConfigURLArg+"="); ok {
			src = v // the last one wins, as for every kernel argument
		}
	}
	if src == "" {
		return nil, false, nil
	}
	u, err := url.Parse(src)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, true, fmt.Errorf("%s=%s: want an http or https URL: %w", provconfig.ConfigURLArg, src, errdefs.ErrInvalid)
	}
	if s.Network != nil {
		if err := s.Network(ctx); err != nil {
			return nil, true, fmt.Errorf("bringing up the network to fetch %s: %w", src, err)
		}
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	f := &fetcher{client: client}
	data, err := f.http(ctx, src, nil)
	if err != nil {
		return nil, true, fmt.Errorf("fetching %s: %w", src, err)
	}
	if len(data) > maxConfig {
		return nil, true, fmt.Errorf("fetching %s: more than %d bytes: %w", src, maxConfig, errdefs.ErrInvalid)
	}
	return data, true, nil
}

// readBounded reads a config file; a missing file is no config.
func readBounded(path string) ([]byte, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err != nil {
		return nil, true, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxConfig {
		return nil, true, fmt.Errorf("reading %s: more than %d bytes: %w", path, maxConfig, errdefs.ErrInvalid)
	}
	return data, true, nil
}

// Record is what FirstBoot keeps in the physical root (provconfig.FirstBootRecord) once the
// node is provisioned: when, with which config, from where. It stays across upgrades (it is
// not in a deployment), so `strata status` shows it for the node's whole life.
type Record struct {
	Date         string `json:"date"`
	ConfigDigest string `json:"config_digest,omitempty"`
	// Source is the Source's name; "" when no source had a config (nothing was applied).
	Source          string          `json:"source,omitempty"`
	BootID          string          `json:"boot_id,omitempty"`
	KernelArguments KernelArguments `json:"kernel_arguments"`
	// Hostname is the network's host name when it was written to /etc/hostname
	// (Options.NetworkHostname).
	Hostname string `json:"hostname,omitempty"`
}

// Failure is the report a failed first boot leaves (provconfig.FailureReport).
type Failure struct {
	Date  string `json:"date"`
	Error string `json:"error"`
}

// Status says where a node stands with its first-boot config.
type Status string

const (
	// StatusNone: the node was not built to be provisioned (no mark, no record).
	StatusNone Status = "none"
	// StatusPending: the mark is there and no attempt failed yet; the next boot provisions.
	StatusPending Status = "pending"
	// StatusFailed: an attempt failed; the mark stays and the next boot tries again.
	StatusFailed Status = "failed"
	// StatusProvisioned: done, the record says when and with what.
	StatusProvisioned Status = "provisioned"
)

// State is a node's provisioning state, read from its physical root.
type State struct {
	Status  Status   `json:"status"`
	Record  *Record  `json:"record,omitempty"`
	Failure *Failure `json:"failure,omitempty"`
}

// ReadState reads the provisioning state of the node whose physical root is physRoot.
func ReadState(physRoot string) (State, error) {
	var st State
	mark := true
	if _, err := os.Lstat(filepath.Join(physRoot, provconfig.FirstBootMark)); errors.Is(err, os.ErrNotExist) {
		mark = false
	} else if err != nil {
		return st, fmt.Errorf("checking the first-boot mark: %w", err)
	}
	for _, f := range []struct {
		path string
		v    any
	}{{provconfig.FirstBootRecord, &st.Record}, {provconfig.FailureReport, &st.Failure}} {
		data, found, err := readBounded(filepath.Join(physRoot, f.path))
		if err != nil {
			return st, err
		}
		if !found {
			continue
		}
		if err := json.Unmarshal(data, f.v); err != nil {
			return st, fmt.Errorf("reading %s: %w: %w", f.path, err, errdefs.ErrCorrupt)
		}
	}
	switch {
	case mark && st.Failure != nil:
		st.Status = StatusFailed
	case mark:
		st.Status = StatusPending
	case st.Record != nil:
		st.Status = StatusProvisioned
	default:
		st.Status = StatusNone
	}
	return st, nil
}

// FirstBoot provisions a deployment on its node's first boot: when the physical root holds
// the first-boot mark (provconfig.FirstBootMark), the config of the first of sources that has
// one (nil means Embedded{physRoot} only) is applied to the deployment's tree at deployRoot
// (assembled, /var mounted, not yet the root). When no source has a config nothing is applied
// and the node counts as provisioned, as with Ignition. Only after Apply succeeded and the
// tree is synced are the record written and the mark removed, so a boot cut short provisions
// again rather than passing a half-applied tree as provisioned. On failure the mark stays and
// provconfig.FailureReport records the error for the next boot and the operator. ran is false
// when there was no mark.
func FirstBoot(ctx context.Context, physRoot, deployRoot string, sources []Source, opts Options) (ran bool, rec Record, res Result, err error) {
	mark := filepath.Join(physRoot, provconfig.FirstBootMark)
	if _, err := os.Lstat(mark); errors.Is(err, os.ErrNotExist) {
		return false, rec, res, nil
	} else if err != nil {
		return true, rec, res, fmt.Errorf("checking the first-boot mark: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if sources == nil {
		sources = []Source{Embedded{PhysRoot: physRoot}}
	}
	rec, res, err = firstBoot(ctx, deployRoot, sources, opts)
	if err != nil {
		rep, _ := json.Marshal(Failure{Date: opts.Now().UTC().Format(time.RFC3339), Error: err.Error()})
		if werr := fsutil.WriteFileAtomic(filepath.Join(physRoot, provconfig.FailureReport), append(rep, '\n'), 0o600); werr != nil {
			err = errors.Join(err, fmt.Errorf("writing the failure report: %w", werr))
		}
		return true, rec, res, err
	}
	if ka := rec.KernelArguments; len(ka.ShouldExist)+len(ka.ShouldNotExist) > 0 {
		data, _ := json.Marshal(ka)
		if err := fsutil.WriteFileAtomic(filepath.Join(physRoot, provconfig.KargsPending), append(data, '\n'), 0o600); err != nil {
			return true, rec, res, fmt.Errorf("recording the config's kernel arguments: %w", err)
		}
	}
	data, _ := json.MarshalIndent(rec, "", "  ")
	if err := fsutil.WriteFileAtomic(filepath.Join(physRoot, provconfig.FirstBootRecord), append(data, '\n'), 0o600); err != nil {
		return true, rec, res, fmt.Errorf("writing the provisioning record: %w", err)
	}
	if err := os.Remove(mark); err != nil {
		return true, rec, res, fmt.Errorf("removing the first-boot mark: %w", err)
	}
	os.Remove(filepath.Join(physRoot, provconfig.FailureReport))
	if err := fsutil.FsyncDir(filepath.Dir(mark)); err != nil {
		return true, rec, res, fmt.Errorf("syncing the first-boot mark's removal: %w", err)
	}
	return true, rec, res, nil
}

func firstBoot(ctx context.Context, deployRoot string, sources []Source, opts Options) (Record, Result, error) {
	rec := Record{Date: opts.Now().UTC().Format(time.RFC3339), BootID: opts.BootID}
	var raw []byte
	for _, s := range sources {
		data, found, err := s.Config(ctx)
		if err != nil {
			return rec, Result{}, fmt.Errorf("%s config: %w", s.Name(), err)
		}
		if found {
			raw, rec.Source = data, s.Name()
			break
		}
	}
	if rec.Source == "" {
		return rec, Result{}, nil
	}
	cfg, rpt, err := provconfig.Parse(raw, provconfig.Options{})
	if err != nil {
		return rec, Result{}, fmt.Errorf("%s config: %w\n%s", rec.Source, err, rpt)
	}
	if opts.Digest == "" {
		opts.Digest = provconfig.Digest(raw)
	}
	rec.ConfigDigest = opts.Digest
	res, err := Apply(ctx, deployRoot, cfg, opts)
	rec.KernelArguments = res.KernelArguments
	if err != nil || opts.NetworkHostname == nil {
		return rec, res, err
	}
	if name := opts.NetworkHostname(); name != "" {
		written, err := defaultHostname(deployRoot, name)
		if err != nil {
			return rec, res, fmt.Errorf("writing the network's host name to /etc/hostname: %w", err)
		}
		if written {
			rec.Hostname = name
		}
	}
	return rec, res, nil
}

// PendingKargs returns the kernel arguments a first-boot config asked for that are not yet set
// on the deployment (provconfig.KargsPending); found is false when there are none.
func PendingKargs(physRoot string) (ka KernelArguments, found bool, err error) {
	data, found, err := readBounded(filepath.Join(physRoot, provconfig.KargsPending))
	if err != nil || !found {
		return ka, found, err
	}
	if err := json.Unmarshal(data, &ka); err != nil {
		return ka, true, fmt.Errorf("reading %s: %w: %w", provconfig.KargsPending, err, errdefs.ErrCorrupt)
	}
	return ka, true, nil
}

// ClearPendingKargs removes provconfig.KargsPending once the arguments are set, durably.
func ClearPendingKargs(physRoot string) error {
	p := filepath.Join(physRoot, provconfig.KargsPending)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", provconfig.KargsPending, err)
	}
	return fsutil.FsyncDir(filepath.Dir(p))
}

// KargsEdit returns what to change in the kernel arguments current so that they satisfy ka, as
// Ignition's kargs stage asks its distribution helper: every shouldExist argument that is
// missing is appended, every shouldNotExist argument that is present is deleted. Both are
// empty when current already satisfies ka, so applying the edit again changes nothing.
func KargsEdit(current []string, ka KernelArguments) (add, del []string) {
	has := map[string]bool{}
	for _, a := range current {
		has[a] = true
	}
	for _, a := range ka.ShouldExist {
		if !has[a] {
			add = append(add, a)
			has[a] = true
		}
	}
	for _, a := range ka.ShouldNotExist {
		if has[a] {
			del = append(del, a)
			delete(has, a)
		}
	}
	return add, del
}
