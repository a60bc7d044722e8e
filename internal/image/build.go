package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/strata-os/strata/internal/boot"
	"github.com/strata-os/strata/internal/distro"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sysroot"
)

// Defaults of Options.
const (
	DefaultOSName      = "strata"
	DefaultESPSize     = 256 << 20
	DefaultSystemdBoot = distro.SystemdBootEFI
	RootLabel          = "strata-root"
	RemoteName         = "origin"

	// Commit metadata read by Build (written by strata compose).
	metaComposeName = "strata.compose.name"
	metaKargs       = "strata.kargs"
)

// DefaultKargs are the kernel arguments every image starts with, before
// the commit's strata.kargs and Options.Kargs.
var DefaultKargs = []string{"root=LABEL=" + RootLabel, "rw", "console=ttyS0", "quiet"}

// FstabESP is the line of the deployment's /etc/fstab that mounts the ESP
// at /boot/efi on first access (docs/vm.md): systemd-bless-boot,
// `strata bootloader sync` and `strata boot-complete` find it there, and
// a disk without an ESP does not delay the boot.
const FstabESP = "PARTLABEL=ESP " + distro.ESPMountPoint + " vfat umask=0077,noauto,nofail,x-systemd.automount,x-systemd.device-timeout=10s 0 0"

// Options describe an image.
type Options struct {
	Repo string // repository holding the commit (any mode)
	Ref  string // ref or checksum of the commit
	Out  string // the disk image written (replaced atomically)

	// Size is the disk size in bytes; 0 fits the content with room for
	// upgrades (content × 1.5 + 256 MiB for the root filesystem).
	Size int64
	// OSName is the stateroot; "" means the commit's strata.compose.name,
	// else DefaultOSName.
	OSName string
	// Kargs are appended to DefaultKargs and the commit's strata.kargs.
	Kargs []string
	// RemoteURL, if set, becomes the sysroot repository's remote "origin"
	// and the deployment follows origin:REF, so `strata upgrade` on the
	// node pulls from it. TrustedKey is the ed25519 public key (base64,
	// as `strata repo keygen` writes) the remote's commits must be signed
	// with; "" turns verification off for that remote.
	RemoteURL  string
	TrustedKey string
	// ESPSize is the ESP's size in bytes; 0 means DefaultESPSize.
	ESPSize int64
	// SystemdBoot is the EFI binary installed as EFI/BOOT/BOOTX64.EFI;
	// "" means DefaultSystemdBoot.
	SystemdBoot string
	// Timeout is loader.conf's menu timeout in seconds.
	Timeout int
	// Stage, if set, is told each stage as it starts.
	Stage func(name string)
	// Provision, if set, is an Ignition JSON config the node applies on
	// its first boot: it is written with the first-boot mark into the
	// physical root (provconfig.FirstBootConfig, FirstBootMark), where
	// prepare-root finds it.
	Provision []byte
}

// Result describes a built image.
type Result struct {
	Commit     ostree.Checksum
	OSName     string
	Refspec    string
	Deployment string   // CHECKSUM.SERIAL
	Kargs      []string // of the deployment, ostree= aside
	Entry      string   // the ESP entry's file name
	Size       int64    // disk size (the file is sparse)
	RootSize   int64    // root partition size
	Stages     []StageTime
}

// StageTime is how long one stage of Build took.
type StageTime struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
}

// Build writes a bootable GPT disk image of the commit opts.Ref of
// opts.Repo to opts.Out: an ESP with systemd-boot and one boot entry (not
// boot-counted: a fresh image's first boot is not on trial), and an ext4
// root filesystem labelled strata-root holding a sysroot with the commit
// deployed once. It needs root (the sysroot repository is in bare mode)
// and the tools sfdisk (fdisk), mkfs.ext4 (e2fsprogs), mkfs.vfat
// (dosfstools) and mcopy (mtools). Its work directory, under Out's
// directory, is removed on every path; Out is replaced only on success.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if opts.Repo == "" || opts.Ref == "" || opts.Out == "" {
		return nil, fmt.Errorf("building image: repository, ref and output are required: %w", errdefs.ErrInvalid)
	}
	// The tools run in work directories of their own: a relative Out
	// would name another file there.
	out, err := filepath.Abs(opts.Out)
	if err != nil {
		return nil, fmt.Errorf("building image: %w", err)
	}
	opts.Out = out
	if opts.ESPSize == 0 {
		opts.ESPSize = DefaultESPSize
	}
	if opts.SystemdBoot == "" {
		opts.SystemdBoot = DefaultSystemdBoot
	}
	if err := checkTools(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(opts.SystemdBoot); err != nil {
		return nil, fmt.Errorf("building image: systemd-boot (Debian package systemd-boot-efi): %w", err)
	}
	b := &builder{opts: opts, res: &Result{}}
	src, err := repo.Open(opts.Repo)
	if err != nil {
		return nil, fmt.Errorf("building image: %w", err)
	}
	defer src.Close()
	if err := b.resolve(src); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(filepath.Dir(opts.Out), ".strata-image-")
	if err != nil {
		return nil, fmt.Errorf("building image: %w", err)
	}
	b.work = work
	defer func() {
		clearImmutable(b.root())
		os.RemoveAll(work)
	}()
	for _, st := range []struct {
		name string
		fn   func(context.Context, *repo.Repo) error
	}{
		{"copy", b.copy}, {"deploy", b.deploy}, {"esp", b.esp}, {"disk", b.disk},
	} {
		if opts.Stage != nil {
			opts.Stage(st.name)
		}
		start := time.Now()
		if err := st.fn(ctx, src); err != nil {
			return nil, fmt.Errorf("building image %s: %w", opts.Out, err)
		}
		b.res.Stages = append(b.res.Stages, StageTime{st.name, time.Since(start)})
	}
	return b.res, nil
}

type builder struct {
	opts   Options
	res    *Result
	work   string
	commit *ostree.Commit
	kargs  []string
}

func (b *builder) root() string   { return filepath.Join(b.work, "root") }
func (b *builder) espDir() string { return filepath.Join(b.work, "esp") }

// resolve reads the commit and decides the stateroot, refspec and kargs.
func (b *builder) resolve(src *repo.Repo) error {
	c, err := src.ResolveRev(b.opts.Ref)
	if err != nil {
		return fmt.Errorf("building image: %w", err)
	}
	cm, err := src.ReadCommit(c)
	if err != nil {
		return fmt.Errorf("building image: %w", err)
	}
	b.commit, b.res.Commit = cm, c
	b.res.OSName = b.opts.OSName
	if b.res.OSName == "" {
		b.res.OSName = cm.Metadata.String(metaComposeName)
	}
	if b.res.OSName == "" {
		b.res.OSName = DefaultOSName
	}
	switch {
	case ostree.IsChecksum(b.opts.Ref):
		b.res.Refspec = c.String()
	case b.opts.RemoteURL != "":
		_, ref, err := ostree.ParseRefspec(b.opts.Ref)
		if err != nil {
			return fmt.Errorf("building image: %w", err)
		}
		b.res.Refspec = RemoteName + ":" + ref
	default:
		_, ref, err := ostree.ParseRefspec(b.opts.Ref)
		if err != nil {
			return fmt.Errorf("building image: %w", err)
		}
		b.res.Refspec = ref
	}
	for _, k := range slices.Concat(DefaultKargs, cm.Metadata.Strings(metaKargs), b.opts.Kargs) {
		if !slices.Contains(b.kargs, k) {
			b.kargs = append(b.kargs, k)
		}
	}
	b.res.Kargs = b.kargs
	return nil
}

// copy makes the sysroot and copies the commit into its repository.
func (b *builder) copy(ctx context.Context, src *repo.Repo) error {
	if err := sysroot.Init(b.root(), b.res.OSName); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(b.root(), distro.ESPMountPoint), 0o755); err != nil {
		return fmt.Errorf("creating the ESP mount point: %w", err)
	}
	dst, err := repo.Open(filepath.Join(b.root(), "ostree/repo"))
	if err != nil {
		return err
	}
	defer dst.Close()
	// The sysroot is scratch until mkfs.ext4 copies it into the image,
	// which is synced as a whole: no fsync per object.
	dst.SetFsync(false)
	remote, ref := "", ""
	if !ostree.IsChecksum(b.opts.Ref) {
		if r, name, ok := strings.Cut(b.res.Refspec, ":"); ok {
			remote, ref = r, name
		} else {
			ref = b.res.Refspec
		}
	}
	if b.opts.RemoteURL != "" {
		rm := repo.Remote{Name: RemoteName, URL: b.opts.RemoteURL}
		if b.opts.TrustedKey != "" {
			rm.SignVerify, rm.Ed25519Key = true, b.opts.TrustedKey
		}
		if err := dst.AddRemote(rm); err != nil {
			return fmt.Errorf("adding remote %s: %w", RemoteName, err)
		}
	}
	return copyCommit(ctx, src, dst, b.res.Commit, remote, ref, nil)
}

// deploy deploys the commit; the ESP gets its entry through the
// bootloader seam, without a boot counter.
func (b *builder) deploy(ctx context.Context, _ *repo.Repo) error {
	s, err := sysroot.Open(b.root(), sysroot.WithBootloader(&boot.ESP{Dir: b.espDir(), Options: bootloaderOptions(b.opts.Timeout)}))
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := s.Deploy(ctx, b.res.OSName, b.res.Commit.String(), sysroot.DeployOptions{Kargs: b.kargs, Refspec: b.res.Refspec})
	if err != nil {
		return err
	}
	b.res.Deployment = d.Name()
	if err := persistJournal(b.root(), d); err != nil {
		return err
	}
	if err := embedProvision(b.root(), b.opts.Provision); err != nil {
		return err
	}
	return addFstabLine(filepath.Join(b.root(), d.Path(), "etc/fstab"), FstabESP)
}

// embedProvision writes the first-boot config (0600: it may hold password
// hashes) and then the mark, so that a mark never exists without its config.
func embedProvision(root string, config []byte) error {
	if len(config) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(root, provconfig.FirstBootDir), 0o700); err != nil {
		return fmt.Errorf("embedding the provisioning config: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(root, provconfig.FirstBootConfig), config, 0o600); err != nil {
		return fmt.Errorf("embedding the provisioning config: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(root, provconfig.FirstBootMark), nil, 0o600); err != nil {
		return fmt.Errorf("writing the first-boot mark: %w", err)
	}
	return nil
}

// persistJournal creates the stateroot's var/log/journal when the
// deployment has systemd-journald, so that the very first boot's journal
// persists too: systemd-journal-flush runs before systemd-tmpfiles creates
// the directory from compose's strata-var.conf line.
func persistJournal(root string, d sysroot.Deployment) error {
	if _, err := os.Lstat(filepath.Join(root, d.Path(), "usr/lib/systemd/systemd-journald")); err != nil {
		return nil
	}
	// Mode 2755 and group systemd-journal are set by systemd-tmpfiles at
	// that boot (systemd's own journal lines, recursively for the files).
	if err := os.MkdirAll(filepath.Join(root, "ostree/deploy", d.OSName, "var/log/journal"), 0o755); err != nil {
		return fmt.Errorf("creating the persistent journal directory: %w", err)
	}
	return nil
}

// addFstabLine appends line to an fstab unless a line mounts the same
// mount point already. The fstab is the commit's: a symlink there is
// refused (errdefs.ErrInvalid), or the image would carry the content of
// whatever build-host file it names.
func addFstabLine(p, line string) error {
	data, err := readNoFollow(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	mnt := strings.Fields(line)[1]
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 1 && !strings.HasPrefix(f[0], "#") && f[1] == mnt {
			return nil
		}
	}
	if len(data) > 0 && !strings.HasSuffix(string(data), "\n") {
		data = append(data, '\n')
	}
	data = append(data, line+"\n"...)
	if err := fsutil.WriteFileAtomic(p, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// readNoFollow reads the regular file p, which must not be a symlink.
func readNoFollow(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link: %w", p, errdefs.ErrInvalid)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", p, errdefs.ErrInvalid)
	}
	return io.ReadAll(f)
}

// esp installs systemd-boot into the staged ESP.
func (b *builder) esp(_ context.Context, _ *repo.Repo) error {
	dst := filepath.Join(b.espDir(), "EFI/BOOT/BOOTX64.EFI")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	data, err := os.ReadFile(b.opts.SystemdBoot)
	if err != nil {
		return fmt.Errorf("reading systemd-boot: %w", err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return fmt.Errorf("installing systemd-boot: %w", err)
	}
	ents, err := os.ReadDir(filepath.Join(b.espDir(), "loader/entries"))
	if err != nil || len(ents) != 1 {
		return fmt.Errorf("staged ESP has %d entries, want 1: %w", len(ents), err)
	}
	b.res.Entry = ents[0].Name()
	return nil
}
