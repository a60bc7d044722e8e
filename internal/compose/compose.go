package compose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// Options tune a compose; the zero value is usable.
type Options struct {
	// CacheDir keeps downloaded .debs between composes; "" means none.
	CacheDir string
	// TmpDir is where the temporary work directory goes; "" means the
	// repository's tmp/ directory.
	TmpDir string
	// SourceDateEpoch is the commit time and the SOURCE_DATE_EPOCH of the
	// installation; the zero value means the newest Date of the sources'
	// InRelease files (docs/compose.md, "Reproducibility").
	SourceDateEpoch time.Time
	// HostRoot is where the host's apt sources are read ("" means "/").
	HostRoot string
	// HTTPClient fetches InRelease files; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Sign, if set, signs the commit (see repo.CommitOptions.Sign).
	Sign func(commit, detached []byte) ([]byte, error)
	// Initramfs installs the initramfs; nil means DebianInitramfs.
	Initramfs InitramfsFunc
	// Stage, if set, is called as each stage starts.
	Stage func(Stage)
	// Log receives mmdebstrap's output; nil discards it.
	Log io.Writer
	// Progress is passed to the commit (see repo.TreeOptions.Progress).
	Progress interface {
		SetTotal(n int64)
		Add(n int64)
	}
	// Mmdebstrap is the program to run; "" means "mmdebstrap" in $PATH.
	Mmdebstrap string
}

// Result describes a compose.
type Result struct {
	Ref             string
	Commit          ostree.Checksum
	Version         string
	Kernel          string
	Suite           string
	Sources         []Source
	Packages        []Package
	SourceDateEpoch time.Time
	Stats           repo.CommitStats
	Durations       map[Stage]time.Duration
}

// Compose builds the manifest's packages into a tree, post-processes it
// and commits it to m.Ref in r. Nothing is committed and no ref moves
// unless every step succeeded; the temporary directory is removed on every
// path, cancellation included.
func Compose(ctx context.Context, r *repo.Repo, m *Manifest, opts Options) (_ *Result, err error) {
	res := &Result{Ref: m.Ref, Version: m.Version, Durations: map[Stage]time.Duration{}}
	stage, last := Stage(""), time.Now()
	enter := func(s Stage) {
		now := time.Now()
		if stage != "" {
			res.Durations[stage] += now.Sub(last)
		}
		stage, last = s, now
		if opts.Stage != nil && s != "" {
			opts.Stage(s)
		}
	}
	defer enter("")

	enter(StageResolve)
	if err := CheckOverlays(m); err != nil {
		return nil, err
	}
	hostRoot := opts.HostRoot
	if hostRoot == "" {
		hostRoot = "/"
	}
	res.Sources, res.Suite, err = ResolveSources(m, func() ([]Source, error) { return HostSources(hostRoot) })
	if err != nil {
		return nil, err
	}
	client := opts.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	released, err := ReleaseDate(ctx, client, res.Sources)
	if err != nil {
		return nil, fmt.Errorf("checking the mirror: %w", err)
	}
	res.SourceDateEpoch = opts.SourceDateEpoch
	if res.SourceDateEpoch.IsZero() {
		res.SourceDateEpoch = released
	}
	res.SourceDateEpoch = res.SourceDateEpoch.UTC()

	parent := opts.TmpDir
	if parent == "" {
		parent = filepath.Join(r.Path(), "tmp")
	}
	work, err := os.MkdirTemp(parent, "strata-compose-")
	if err != nil {
		return nil, fmt.Errorf("creating work directory: %w", err)
	}
	defer func() {
		if rerr := removeWorkDir(work); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing work directory: %w", rerr))
		}
	}()
	if err := os.Mkdir(filepath.Join(work, "tmp"), 0o700); err != nil {
		return nil, err
	}
	tree := filepath.Join(work, "tree")
	b := &build{
		m: m, sources: res.Sources, suite: res.Suite, target: tree, tmpDir: filepath.Join(work, "tmp"),
		cacheDir: opts.CacheDir, epoch: res.SourceDateEpoch, log: opts.Log, stage: enter, program: opts.Mmdebstrap,
	}
	if err := b.run(ctx); err != nil {
		return nil, fmt.Errorf("installing packages: %w", err)
	}

	enter(StagePostProcess)
	if err := ApplyOverlays(tree, m.Overlays); err != nil {
		return nil, fmt.Errorf("applying overlays: %w", err)
	}
	if err := ApplyUnits(ctx, tree, m); err != nil {
		return nil, err
	}
	info, err := PostProcess(ctx, tree, PostProcessOptions{
		Name: m.Name, Version: m.Version, KernelArgs: m.KernelArgs,
		SourceDateEpoch: res.SourceDateEpoch, Initramfs: opts.Initramfs,
	})
	if err != nil {
		return nil, fmt.Errorf("post-processing: %w", err)
	}
	res.Kernel, res.Packages = info.Kernel, info.Packages

	enter(StageCommit)
	copts := repo.CommitOptions{
		Branch:    m.Ref,
		Subject:   m.Name + " " + m.Version,
		Timestamp: res.SourceDateEpoch,
		Metadata:  CommitMetadata(m, info),
		Sign:      opts.Sign,
	}
	copts.Progress = opts.Progress
	res.Commit, res.Stats, err = repo.CommitTree(ctx, r, repo.DirSource(tree), copts)
	if err != nil {
		return nil, fmt.Errorf("committing: %w", err)
	}
	return res, nil
}

// CommitMetadata is the metadata of a composed commit, in order: version,
// ostree.bootable, ostree.linux, strata.compose.name, strata.packages,
// strata.kargs (if any), then the manifest's extra metadata by key.
func CommitMetadata(m *Manifest, info *TreeInfo) ostree.Metadata {
	md := ostree.Metadata{
		{Key: ostree.MetaVersion, Value: gvariant.NewVariant("s", m.Version)},
		{Key: "ostree.bootable", Value: gvariant.NewVariant("b", true)},
		{Key: "ostree.linux", Value: gvariant.NewVariant("s", info.Kernel)},
		{Key: MetaName, Value: gvariant.NewVariant("s", m.Name)},
		{Key: MetaPackages, Value: PackagesVariant(info.Packages)},
	}
	if len(m.KernelArgs) > 0 {
		args := make([]any, len(m.KernelArgs))
		for i, a := range m.KernelArgs {
			args[i] = a
		}
		md = append(md, gvariant.DictEntry{Key: MetaKernelArgs, Value: gvariant.NewVariant("as", args)})
	}
	for _, e := range m.Metadata {
		md = append(md, gvariant.DictEntry{Key: e.Key, Value: gvariant.NewVariant("s", e.Value)})
	}
	return md
}
