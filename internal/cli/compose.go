package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/compose"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sign"
)

// defaultCacheDir is $XDG_CACHE_HOME/strata/apt, else /var/cache/strata/apt.
func defaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "strata", "apt")
	}
	return "/var/cache/strata/apt"
}

// sourceDateEpoch reads $SOURCE_DATE_EPOCH; the zero time when unset.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, usagef("SOURCE_DATE_EPOCH=%q: want seconds since the epoch", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

func newComposeCmd() *cobra.Command {
	var (
		path, signKey, cacheDir, initrd string
		asJSON, verbose, noCache        bool
	)
	cmd := &cobra.Command{
		Use:   "compose MANIFEST --repo R [--sign-key FILE] [--cache-dir DIR | --no-cache] [--json] [--verbose]",
		Short: "Build a bootable OS commit from a manifest of Debian packages",
		Long: `Install the manifest's Debian packages with mmdebstrap into a temporary
directory, turn it into an OSTree-ready tree and commit it to the manifest's ref
(docs/compose.md). Needs root and mmdebstrap.

The commit time and the installation's SOURCE_DATE_EPOCH are $SOURCE_DATE_EPOCH,
else the newest Date of the Debian sources' InRelease files: the same manifest,
package versions and SOURCE_DATE_EPOCH give the same commit checksum (for the
same parent). Downloaded packages are kept in --cache-dir (default
$XDG_CACHE_HOME/strata/apt, else /var/cache/strata/apt). --sign-key signs the
commit with an ed25519 secret key file (strata repo keygen).`,
		Args: argNames("MANIFEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			epoch, err := sourceDateEpoch()
			if err != nil {
				return err
			}
			m, err := compose.LoadManifest(args[0])
			if err != nil {
				var me *compose.ManifestError
				if errors.As(err, &me) {
					return fmt.Errorf("cannot compose: invalid manifest:\n%w", err)
				}
				return fmt.Errorf("cannot compose: %w", err)
			}
			opts := compose.Options{SourceDateEpoch: epoch, CacheDir: cacheDir}
			switch initrd {
			case "strata":
				self, err := os.Executable()
				if err != nil {
					return fmt.Errorf("cannot compose: finding the strata binary to install: %w", err)
				}
				opts.Initramfs = compose.StrataBoot(self)
			case "debian":
				opts.Initramfs = compose.DebianInitramfs
			default:
				return usagef("--initramfs %q: want strata or debian", initrd)
			}
			if noCache {
				opts.CacheDir = ""
			} else if opts.CacheDir == "" {
				opts.CacheDir = defaultCacheDir()
			}
			if opts.CacheDir != "" {
				if opts.CacheDir, err = filepath.Abs(opts.CacheDir); err != nil {
					return err
				}
			}
			if signKey != "" {
				key, err := sign.LoadSecretKey(signKey)
				if err != nil {
					return fmt.Errorf("cannot load signing key: %w", err)
				}
				signer := sign.NewEd25519Signer(key)
				opts.Sign = func(commit, detached []byte) ([]byte, error) {
					return sign.Append(detached, commit, signer)
				}
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("cannot compose: mmdebstrap --mode=root needs root: %w", errdefs.ErrFailedPrecondition)
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			stderr := cmd.ErrOrStderr()
			if verbose {
				opts.Log = stderr
			}
			tty := isTerminal(stderr)
			start := time.Now()
			var bar *progress
			opts.Stage = func(s compose.Stage) {
				if tty || verbose {
					fmt.Fprintf(stderr, "compose: %s (%.0fs)\n", s, time.Since(start).Seconds())
				}
				if s == compose.StageCommit {
					bar = newProgress(cmd, "commit", -1, false)
				}
			}
			opts.Progress = lazyProgress{&bar}
			res, err := compose.Compose(ctx, r, m, opts)
			if bar != nil {
				bar.Finish()
			}
			if err != nil {
				return fmt.Errorf("cannot compose %s: %w", args[0], err)
			}
			return printCompose(cmd.OutOrStdout(), res, signKey != "", time.Since(start), asJSON)
		},
	}
	addRepoFlag(cmd, &path)
	f := cmd.Flags()
	f.StringVar(&signKey, "sign-key", "", "sign the commit with this ed25519 secret key file")
	f.StringVar(&cacheDir, "cache-dir", "", "keep downloaded packages here (default $XDG_CACHE_HOME/strata/apt or /var/cache/strata/apt)")
	f.BoolVar(&noCache, "no-cache", false, "do not keep downloaded packages")
	f.StringVar(&initrd, "initramfs", "strata", `"strata": install this (static) binary, its boot units and its initramfs; "debian": keep initramfs-tools' initramfs`)
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVarP(&verbose, "verbose", "v", false, "show mmdebstrap's output")
	return cmd
}

// lazyProgress forwards to the commit stage's bar, made when that stage
// starts.
type lazyProgress struct{ bar **progress }

func (l lazyProgress) SetTotal(n int64) {
	if *l.bar != nil {
		(*l.bar).SetTotal(n)
	}
}

func (l lazyProgress) Add(n int64) {
	if *l.bar != nil {
		(*l.bar).Add(n)
	}
}

func printCompose(w io.Writer, res *compose.Result, signed bool, took time.Duration, asJSON bool) error {
	st := res.Stats
	written := st.ContentWritten + st.MetaWritten
	reused := st.ContentReused + st.MetaReused
	if asJSON {
		j := composeJSON{
			Ref: res.Ref, Commit: res.Commit.String(), Version: res.Version, Kernel: res.Kernel, Suite: res.Suite,
			SourceDateEpoch: res.SourceDateEpoch.Unix(), Packages: res.Packages,
			ObjectsWritten: written, ObjectsReused: reused, BytesWritten: st.BytesWritten, Bytes: st.Bytes,
			Signed: signed, Seconds: took.Seconds(), StageSeconds: map[string]float64{},
		}
		for s, d := range res.Durations {
			j.StageSeconds[string(s)] = d.Seconds()
		}
		return writeJSON(w, j)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ref:       %s\n", res.Ref)
	fmt.Fprintf(&b, "commit:    %s\n", res.Commit)
	fmt.Fprintf(&b, "version:   %s\n", res.Version)
	fmt.Fprintf(&b, "kernel:    %s\n", res.Kernel)
	fmt.Fprintf(&b, "packages:  %d\n", len(res.Packages))
	fmt.Fprintf(&b, "objects:   %d written, %d reused\n", written, reused)
	fmt.Fprintf(&b, "bytes:     %d written, %d in files\n", st.BytesWritten, st.Bytes)
	fmt.Fprintf(&b, "signed:    %t\n", signed)
	fmt.Fprintf(&b, "seconds:   %.1f", took.Seconds())
	var parts []string
	for _, s := range []compose.Stage{compose.StageResolve, compose.StageInstall, compose.StagePostProcess, compose.StageCommit} {
		if d, ok := res.Durations[s]; ok {
			parts = append(parts, fmt.Sprintf("%s %.1f", s, d.Seconds()))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
