package sysext

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	erofs "github.com/erofs/go-erofs"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/osrelease"
)

// BuildOptions say what Build makes. The identity fields are used only
// when the directory has no extension-release file of its own.
type BuildOptions struct {
	Name   string // the extension's name (the image is NAME.raw)
	Out    string // the image file to write; its name must be Name+".raw"
	Format Format // FormatEROFS ("" too); FormatSquashFS is refused (Build)
	// OSID, VersionID, SysextLevel and Arch fill ID, VERSION_ID,
	// SYSEXT_LEVEL and ARCHITECTURE of the extension-release file Build
	// writes. OSID is required; exactly one of VersionID and SysextLevel
	// unless OSID is "_any"; Arch "" means Architecture().
	OSID, VersionID, SysextLevel, Arch string
	// Time is the mtime of every entry and the image's build time: a fixed
	// value (0, or SOURCE_DATE_EPOCH at the command line) makes the image
	// a function of the directory's content alone.
	Time time.Time
}

// entry is one path of the image: from the directory (src != "") or made
// by Build (data).
type entry struct {
	rel  string
	mode fs.FileMode
	src  string // absolute path in the source directory
	link string
	data []byte
}

// Build writes the directory dir as an extension image (docs/sysext.md,
// "Building"): every entry under /usr and /opt, owned by root, with its
// permission bits, mtime opts.Time, no extended attributes, in name
// order, so that the same directory gives the same bytes. If dir has no
// usr/lib/extension-release.d/extension-release.NAME, Build adds one from
// the options; if it has one, the options must not name an identity. The
// content rules of Inspect apply to dir before anything is written, and
// the image is inspected before it replaces opts.Out (written beside it,
// renamed into place).
func Build(ctx context.Context, dir string, opts BuildOptions) (Image, error) {
	if err := CheckName(opts.Name); err != nil {
		return Image{}, err
	}
	if filepath.Base(opts.Out) != opts.Name+".raw" {
		return Image{}, fmt.Errorf("output %s: systemd-sysext wants the file named %s.raw: %w", opts.Out, opts.Name, errdefs.ErrInvalid)
	}
	switch opts.Format {
	case "", FormatEROFS:
		opts.Format = FormatEROFS
	case FormatSquashFS:
		// go-diskfs 1.9.4, the one squashfs writer in Go strata can use,
		// writes images that unsquashfs rejects once a tree is a few
		// thousand files (directory headers over 256 entries, unreadable
		// metadata blocks) and cannot store a link that does not resolve
		// at build time (docs/sysext.md, "Building"). Inspect reads
		// squashfs images, so mksquashfs's can be added.
		return Image{}, fmt.Errorf("format squashfs: strata writes EROFS only (mksquashfs makes squashfs images that strata sysext add accepts): %w", errdefs.ErrUnsupported)
	default:
		return Image{}, fmt.Errorf("format %q: want erofs: %w", opts.Format, errdefs.ErrInvalid)
	}
	var err error
	if dir, err = filepath.Abs(dir); err == nil {
		opts.Out, err = filepath.Abs(opts.Out)
	}
	if err != nil {
		return Image{}, fmt.Errorf("building extension %s: %w", opts.Name, err)
	}
	entries, err := scan(ctx, dir)
	if err != nil {
		return Image{}, fmt.Errorf("building extension %s from %s: %w", opts.Name, dir, err)
	}
	if entries, err = withRelease(entries, opts); err != nil {
		return Image{}, fmt.Errorf("building extension %s: %w", opts.Name, err)
	}
	outDir := filepath.Dir(opts.Out)
	tmp, err := os.CreateTemp(outDir, "."+opts.Name+".raw-*")
	if err != nil {
		return Image{}, fmt.Errorf("building extension %s: %w", opts.Name, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	err = writeEROFS(ctx, tmp, entries, opts.Time)
	if err == nil {
		err = tmp.Sync()
	}
	if err != nil {
		return Image{}, fmt.Errorf("writing %s image %s: %w", opts.Format, opts.Out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return Image{}, fmt.Errorf("writing %s: %w", opts.Out, err)
	}
	// Inspect takes the name from the file name; the temporary file has
	// another, so inspectAs is told it.
	img, err := inspectAs(tmp.Name(), opts.Name)
	if err != nil {
		return Image{}, fmt.Errorf("internal error: the image built does not pass inspection: %w", err)
	}
	if err := os.Rename(tmp.Name(), opts.Out); err != nil {
		return Image{}, fmt.Errorf("writing %s: %w", opts.Out, err)
	}
	if err := fsutil.FsyncDir(outDir); err != nil {
		return Image{}, fmt.Errorf("writing %s: %w", opts.Out, err)
	}
	return img, nil
}

// inspectAs inspects the image at p as if its file were named NAME.raw.
func inspectAs(p, name string) (Image, error) {
	f, err := os.Open(p)
	if err != nil {
		return Image{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Image{}, err
	}
	img, err := inspect(f, st.Size(), name)
	img.Size = st.Size()
	return img, err
}

// scan lists dir's entries in name order, refusing what breaks the
// content rules. Symbolic links are read, never followed.
func scan(ctx context.Context, dir string) ([]entry, error) {
	var out []entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			if !d.IsDir() {
				return fmt.Errorf("%s is not a directory: %w", dir, errdefs.ErrInvalid)
			}
			return nil
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if err := CheckEntry(rel, fi.Mode()); err != nil {
			return err
		}
		if len(out) >= MaxEntries {
			return fmt.Errorf("more than %d entries: %w", MaxEntries, ErrImage)
		}
		e := entry{rel: rel, mode: fi.Mode(), src: p}
		if fi.Mode().Type() == fs.ModeSymlink {
			if e.link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// withRelease returns entries with the extension-release file: dir's own
// (checked) or one made from opts, with the directories it needs.
func withRelease(entries []entry, opts BuildOptions) ([]entry, error) {
	rel := ReleasePath(opts.Name)
	identity := opts.OSID != "" || opts.VersionID != "" || opts.SysextLevel != "" || opts.Arch != ""
	for _, e := range entries {
		if e.rel != rel {
			continue
		}
		if identity {
			return nil, fmt.Errorf("the directory has /%s: its identity is fixed there, drop --os-id, --version-id, --sysext-level and --arch: %w", rel, errdefs.ErrInvalid)
		}
		if !e.mode.IsRegular() {
			return nil, fmt.Errorf("/%s is not a regular file: %w", rel, ErrImage)
		}
		data, err := os.ReadFile(e.src)
		if err != nil {
			return nil, err
		}
		v, err := osrelease.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("/%s: %w", rel, err)
		}
		return entries, checkRelease(v)
	}
	v, err := releaseValues(opts)
	if err != nil {
		return nil, err
	}
	data, err := osrelease.Marshal(v)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, e := range entries {
		have[e.rel] = true
	}
	for _, d := range []string{"usr", "usr/lib", ReleaseDir} {
		if !have[d] {
			entries = append(entries, entry{rel: d, mode: fs.ModeDir | 0o755})
		}
	}
	entries = append(entries, entry{rel: rel, mode: 0o644, data: data})
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })
	return entries, nil
}

// releaseValues makes the extension-release fields from opts.
func releaseValues(opts BuildOptions) (osrelease.Values, error) {
	if opts.OSID == "" {
		return nil, fmt.Errorf("no extension-release in the directory and no --os-id (the ID of the OS it extends, or _any): %w", errdefs.ErrInvalid)
	}
	v := osrelease.Values{"ID": opts.OSID}
	switch {
	case opts.VersionID != "" && opts.SysextLevel != "":
		return nil, fmt.Errorf("both a VERSION_ID and a SYSEXT_LEVEL: systemd-sysext compares one: %w", errdefs.ErrInvalid)
	case opts.VersionID != "":
		if err := CheckVersion("VERSION_ID", opts.VersionID); err != nil {
			return nil, err
		}
		v["VERSION_ID"] = opts.VersionID
	case opts.SysextLevel != "":
		if err := CheckVersion("SYSEXT_LEVEL", opts.SysextLevel); err != nil {
			return nil, err
		}
		v["SYSEXT_LEVEL"] = opts.SysextLevel
	case opts.OSID != "_any":
		return nil, fmt.Errorf("no --version-id or --sysext-level: systemd-sysext would merge it on no host that has either: %w", errdefs.ErrInvalid)
	}
	arch := opts.Arch
	if arch == "" {
		arch = Architecture()
	}
	if arch != "" {
		v["ARCHITECTURE"] = arch
	}
	return v, checkRelease(v)
}

// open returns the content of e.
func (e entry) open() (io.ReadCloser, error) {
	if e.src == "" {
		return io.NopCloser(strings.NewReader(string(e.data))), nil
	}
	return os.Open(e.src)
}

func writeEROFS(ctx context.Context, out *os.File, entries []entry, mtime time.Time) error {
	w := erofs.Create(out, erofs.WithBuildTime(uint64(max(mtime.Unix(), 0)), 0), erofs.WithTempDir(filepath.Dir(out.Name())))
	if err := w.Mkdir("/", 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := "/" + e.rel
		switch e.mode.Type() {
		case fs.ModeDir:
			if err := w.Mkdir(name, e.mode.Perm()); err != nil {
				return fmt.Errorf("adding /%s: %w", e.rel, err)
			}
		case fs.ModeSymlink:
			if err := w.Symlink(e.link, name); err != nil {
				return fmt.Errorf("adding /%s: %w", e.rel, err)
			}
		default:
			if err := copyEROFS(w, name, e); err != nil {
				return fmt.Errorf("adding /%s: %w", e.rel, err)
			}
		}
		if e.mode.Type() != fs.ModeSymlink {
			if err := w.Chmod(name, e.mode.Perm()|e.mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
				return fmt.Errorf("adding /%s: %w", e.rel, err)
			}
		}
		if err := w.Chown(name, 0, 0); err != nil {
			return fmt.Errorf("adding /%s: %w", e.rel, err)
		}
		if err := w.Chtimes(name, mtime, mtime); err != nil {
			return fmt.Errorf("adding /%s: %w", e.rel, err)
		}
	}
	return w.Close()
}

func copyEROFS(w *erofs.Writer, name string, e entry) error {
	r, err := e.open()
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := w.Create(name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
