package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/strata-os/strata/internal/bootloader"
	"github.com/strata-os/strata/internal/distro"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/repo"
	"golang.org/x/sys/unix"
)

// GPT partition types (docs/vm.md; the Discoverable Partitions
// Specification's x86-64 root).
const (
	typeESP      = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeRootX864 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	mib          = 1 << 20
)

// tools are the programs Build runs, with their Debian packages.
var tools = [][2]string{{distro.SfdiskCmd, "fdisk"}, {distro.MkfsExt4Cmd, "e2fsprogs"}, {distro.MkfsVfatCmd, "dosfstools"}, {distro.McopyCmd, "mtools"}}

func checkTools() error {
	for _, t := range tools {
		if _, err := exec.LookPath(t[0]); err != nil {
			return fmt.Errorf("building image: %s not found (install the Debian package %s): %w", t[0], t[1], errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}

func bootloaderOptions(timeout int) bootloader.Options {
	return bootloader.Options{Tries: 0, Timeout: timeout}
}

// disk writes the partition table and both filesystems into Out.tmp,
// then renames it to Out.
func (b *builder) disk(ctx context.Context, _ *repo.Repo) (err error) {
	used, err := usage(b.root())
	if err != nil {
		return err
	}
	espMiB := roundMiB(b.opts.ESPSize)
	var rootMiB int64
	if b.opts.Size > 0 {
		rootMiB = b.opts.Size/mib - espMiB - 2
		if need := roundMiB(used + used/8 + 32*mib); rootMiB < need {
			return fmt.Errorf("size %d MiB leaves %d MiB for a root filesystem that needs %d MiB: %w", b.opts.Size/mib, rootMiB, need, errdefs.ErrInvalid)
		}
	} else {
		rootMiB = roundMiB(used + used/2 + 256*mib)
	}
	b.res.RootSize = rootMiB * mib
	b.res.Size = (1 + espMiB + rootMiB + 1) * mib
	tmp := b.opts.Out + ".tmp"
	os.Remove(tmp)
	ok := false
	defer func() {
		if !ok {
			err = noSpace(filepath.Dir(tmp), err) // before the removal frees it
			os.Remove(tmp)
		}
	}()
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = f.Truncate(b.res.Size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", tmp, err)
	}
	table := fmt.Sprintf("label: gpt\nstart=1MiB, size=%dMiB, type=%s, name=ESP\nstart=%dMiB, size=%dMiB, type=%s, name=root\n",
		espMiB, typeESP, 1+espMiB, rootMiB, typeRootX864)
	if err := run(ctx, "", table, distro.SfdiskCmd, "-q", tmp); err != nil {
		return err
	}
	if err := run(ctx, "", "", distro.MkfsExt4Cmd, "-q", "-F", "-L", RootLabel, "-m", "1",
		"-E", fmt.Sprintf("offset=%d", (1+espMiB)*mib), "-d", b.root(), tmp, fmt.Sprintf("%dM", rootMiB)); err != nil {
		return err
	}
	// -s 1: FAT32 on a small partition needs one sector per cluster, or
	// mtools later runs out of directory slots (docs/vm.md).
	if err := run(ctx, "", "", distro.MkfsVfatCmd, "-F", "32", "-S", "512", "-s", "1", "-n", "ESP", "--offset=2048", tmp, fmt.Sprint(espMiB*1024)); err != nil {
		return err
	}
	tops, err := os.ReadDir(b.espDir())
	if err != nil {
		return err
	}
	args := []string{"-s", "-p", "-Q", "-i", tmp + "@@1M"}
	for _, e := range tops {
		args = append(args, e.Name())
	}
	if err := run(ctx, b.espDir(), "", distro.McopyCmd, append(args, "::/")...); err != nil {
		return err
	}
	if err := fsutil.FsyncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, b.opts.Out); err != nil {
		return fmt.Errorf("placing %s: %w", b.opts.Out, err)
	}
	ok = true
	return nil
}

// noSpace adds ENOSPC to err when the file system of dir is full: the
// disk tools say only that a write failed ("failed whilst writing FAT").
func noSpace(dir string, err error) error {
	if err == nil || errors.Is(err, syscall.ENOSPC) {
		return err
	}
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) == nil && st.Bavail*uint64(st.Bsize) < mib {
		return fmt.Errorf("%w: %w (the file system of %s is full)", err, syscall.ENOSPC, dir)
	}
	return err
}

func roundMiB(n int64) int64 { return (n + mib - 1) / mib }

// run runs a tool; its output is part of the error.
func run(ctx context.Context, dir, stdin, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// usage returns the bytes a tree occupies: allocated blocks of each inode
// once (hard links share them), plus an inode's worth for each.
func usage(root string) (int64, error) {
	type ino struct{ dev, ino uint64 }
	seen := map[ino]bool{}
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			total += fi.Size()
			return nil
		}
		k := ino{uint64(st.Dev), st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		total += max(st.Blocks*512, fi.Size()) + 256
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring %s: %w", root, err)
	}
	return total, nil
}

// clearImmutable clears the immutable attribute the sysroot sets on
// deployment roots (ostree/deploy/OS/deploy/*), so that the work
// directory can be removed.
func clearImmutable(root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, "ostree/deploy/*/deploy/*"))
	for _, d := range dirs {
		_ = fsutil.SetImmutable(d, false) // a failure shows when the removal fails
	}
}
