package cli

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/osrelease"
	"github.com/strata-os/strata/internal/sign"
	"github.com/strata-os/strata/internal/sysext"
	"github.com/strata-os/strata/internal/sysroot"
)

func newSysextCmd() *cobra.Command {
	return newGroup("sysext", "Build, add and list system extensions (systemd-sysext images), also ones that follow upgrades",
		newSysextBuildCmd(), newSysextAddCmd(), newSysextRemoveCmd(), newSysextListCmd(),
		newSysextPublishCmd(), newSysextLinkCmd(),
	)
}

func newSysextBuildCmd() *cobra.Command {
	var opts sysext.BuildOptions
	var format string
	cmd := &cobra.Command{
		Use:   "build DIR --name NAME --out NAME.raw [--format erofs] [--os-id ID] [--version-id V | --sysext-level L] [--arch A]",
		Short: "Write a directory as a system extension image",
		Long: `Write DIR (its usr/ and opt/) as a raw, uncompressed EROFS image that
systemd-sysext merges over /usr and /opt (--format squashfs is refused: no Go
squashfs writer makes sound images yet; strata sysext add accepts mksquashfs's). Unless DIR has its own
usr/lib/extension-release.d/extension-release.NAME, one is written with ID
(--os-id, or _any), VERSION_ID or SYSEXT_LEVEL, and ARCHITECTURE (--arch,
default the architecture strata runs on, _any for none). Files outside /usr
and /opt, a /usr/lib/os-release, devices and world-writable files are refused.
Everything is owned by root with DIR's permission bits, and every time stamp is
$SOURCE_DATE_EPOCH (else 0): the same DIR gives the same bytes.`,
		Args: argNames("DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Name == "" || opts.Out == "" {
				return usagef("--name NAME and --out NAME.raw are required (usage: %s)", usageLine(cmd))
			}
			opts.Format = sysext.Format(format)
			if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
				sec, err := strconv.ParseInt(e, 10, 64)
				if err != nil || sec < 0 {
					return usagef("SOURCE_DATE_EPOCH=%q is not a number of seconds", e)
				}
				opts.Time = time.Unix(sec, 0)
			} else {
				opts.Time = time.Unix(0, 0)
			}
			img, err := sysext.Build(cmd.Context(), args[0], opts)
			if err != nil {
				return fmt.Errorf("cannot build the extension: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s image of %s, %d entries, %s\n", opts.Out, img.Format, img.Name, img.Entries, humanBytes(img.Size))
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "the extension's name (systemd-sysext takes it from the file name NAME.raw)")
	cmd.Flags().StringVar(&opts.Out, "out", "", "the image to write, NAME.raw")
	cmd.Flags().StringVar(&format, "format", "erofs", "the image's filesystem: erofs (squashfs images come from mksquashfs)")
	cmd.Flags().StringVar(&opts.OSID, "os-id", "", "ID of the OS it extends (os-release ID), or _any")
	cmd.Flags().StringVar(&opts.VersionID, "version-id", "", "VERSION_ID of the OS it extends")
	cmd.Flags().StringVar(&opts.SysextLevel, "sysext-level", "", "SYSEXT_LEVEL of the OS it extends (instead of --version-id)")
	cmd.Flags().StringVar(&opts.Arch, "arch", "", "ARCHITECTURE in systemd's names (x86-64, arm64, ...), or _any")
	return cmd
}

func newSysextAddCmd() *cobra.Command {
	var (
		f      nodeFlags
		rf     sysextRefreshFlags
		sum    string
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "add FILE|URL [--sha256 HEX] [--sysroot S] [--no-refresh] | add --follow NAME",
		Short: "Add a system extension image to the node, checked first",
		Long: `Place the extension image FILE (or the one at the http(s) URL) in
/var/lib/extensions/NAME.raw, where systemd-sysext merges it at every boot
(NAME is the file name minus .raw). The image is copied into a private file
first and must pass every check before it gets its place: a readable EROFS or
squashfs filesystem, only /usr and /opt, no /usr/lib/os-release, and an
extension-release.NAME that matches the os-release of the booted deployment
(else the default one) as systemd-sysext 252 matches them. --sha256 pins the
image's digest. On the running system (sysroot /, booted with systemd) the
command then runs systemd-sysext refresh, so the extension is merged at once;
--no-refresh leaves that to the next boot.

--follow NAME follows an extension published per OS version next to the
origin's repository (REPO/extensions/NAME/VERSION_ID/NAME.raw with a signature
by the repository's key): its image for the deployment's VERSION_ID is fetched
and verified now, and every upgrade fetches the one for the new version before
staging it.`,
		Args: argNames("FILE|URL|NAME"),
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, args []string) error {
			d, err := sysextTarget(s)
			if err != nil {
				return fmt.Errorf("cannot add the extension: %w", err)
			}
			host, err := deploymentOSRelease(s, d)
			if err != nil {
				return fmt.Errorf("cannot add the extension: %w", err)
			}
			store := sysextStore(s, d.OSName)
			if follow {
				if err := sysextFollow(cmd, s, d, store, args[0]); err != nil {
					return err
				}
				return rf.refresh(cmd, s, "merged")
			}
			src := args[0]
			name, ok := strings.CutSuffix(filepath.Base(src), ".raw")
			if !ok {
				return usagef("%s: an extension image's file name ends in .raw (systemd-sysext reads only those)", src)
			}
			r, err := openImageSource(cmd, src)
			if err != nil {
				return fmt.Errorf("cannot add extension %s: %w", name, err)
			}
			defer r.Close()
			img, err := store.Add(cmd.Context(), r, name, sysext.AddOptions{SHA256: sum, Host: host, Arch: sysext.Architecture()})
			if err != nil {
				return fmt.Errorf("cannot add extension %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Added extension %s (%s, %s)\n", img.Name, img.Format, humanBytes(img.Size))
			return rf.refresh(cmd, s, "merged")
		}),
	}
	addSysrootFlag(cmd, &f.sysroot)
	rf.register(cmd)
	cmd.Flags().StringVar(&sum, "sha256", "", "the image's SHA-256, hex")
	cmd.Flags().BoolVar(&follow, "follow", false, "follow NAME as published per OS version beside the origin's repository")
	return cmd
}

// openImageSource opens a local file or an http(s) URL.
func openImageSource(cmd *cobra.Command, src string) (io.ReadCloser, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		return os.Open(src)
	}
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, errdefs.ErrInvalid)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%s: %s: %w", src, resp.Status, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("%s: %s: %w", src, resp.Status, errdefs.ErrUnavailable)
	}
	return resp.Body, nil
}

// sysextFollow starts following name and fetches its image for the
// deployment d now, through the same preparer an upgrade runs.
func sysextFollow(cmd *cobra.Command, s *sysroot.Sysroot, d sysroot.Deployment, store sysext.Store, name string) error {
	if err := store.Follow(name); err != nil {
		return fmt.Errorf("cannot follow extension %s: %w", name, err)
	}
	if _, err := sysextPreparer(cmd)(cmd.Context(), s, d, d.Checksum); err != nil {
		return fmt.Errorf("cannot follow extension %s: %w", name, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Following extension %s; upgrades fetch the image for each new OS version\n", name)
	return nil
}

func newSysextRemoveCmd() *cobra.Command {
	var (
		f  nodeFlags
		rf sysextRefreshFlags
	)
	cmd := &cobra.Command{
		Use:   "remove NAME [--sysroot S] [--no-refresh]",
		Short: "Remove a system extension (added or followed) from the node",
		Long: `Remove /var/lib/extensions/NAME.raw and stop following NAME (its per-version
images go too). On the running system (sysroot /, booted with systemd) the
command then runs systemd-sysext refresh, so the extension is unmerged at
once; --no-refresh keeps it merged until the next boot.`,
		Args: argNames("NAME"),
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, args []string) error {
			d, err := sysextTarget(s)
			if err != nil {
				return fmt.Errorf("cannot remove the extension: %w", err)
			}
			if err := sysextStore(s, d.OSName).Remove(args[0]); err != nil {
				return fmt.Errorf("cannot remove extension %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed extension %s\n", args[0])
			return rf.refresh(cmd, s, "unmerged")
		}),
	}
	addSysrootFlag(cmd, &f.sysroot)
	rf.register(cmd)
	return cmd
}

func newSysextListCmd() *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "list [--sysroot S] [--json]",
		Short: "List the node's system extensions and whether they match the OS",
		Long: `List the added and followed extensions as seen by the booted deployment (else
the default one): the image used, whether systemd-sysext merges it on this OS
(its extension-release against the deployment's os-release) and, when not, why;
on the running system (sysroot /) whether it is merged now.`,
		Args: noArgs,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, _ []string) error {
			l, err := sysextList(s)
			if err != nil {
				return fmt.Errorf("cannot list extensions: %w", err)
			}
			if f.json {
				if l == nil {
					l = []sysext.Status{}
				}
				return writeJSON(cmd.OutOrStdout(), l)
			}
			printSysextList(cmd.OutOrStdout(), l)
			return nil
		}),
	}
	f.register(cmd, "print the extensions as JSON")
	return cmd
}

// sysextList is the extensions' status for the booted (else default)
// deployment, with Merged set on a running system.
func sysextList(s *sysroot.Sysroot) ([]sysext.Status, error) {
	d, err := sysextTarget(s)
	if err != nil {
		return nil, err
	}
	host, err := deploymentOSRelease(s, d)
	if err != nil {
		return nil, err
	}
	l, err := sysextStore(s, d.OSName).List(host, sysext.Architecture())
	if err != nil {
		return nil, err
	}
	if _, booted := s.Booted(); booted && absPath(s.Path()) == "/" {
		for i := range l {
			m := sysext.Merged("/", l[i].Name)
			l[i].Merged = &m
		}
	}
	return l, nil
}

func printSysextList(w io.Writer, l []sysext.Status) {
	if len(l) == 0 {
		fmt.Fprintln(w, "No extensions.")
		return
	}
	for _, st := range l {
		state := "matches"
		if !st.Matches {
			state = "not merged: " + st.Reason
		}
		if st.Merged != nil {
			if *st.Merged {
				state += ", merged"
			} else if st.Matches {
				state += ", not merged yet (next boot or systemd-sysext refresh)"
			}
		}
		fmt.Fprintf(w, "%s (%s): %s\n", termSafe(st.Name), st.Source, termSafe(state))
		if st.Path != "" {
			fmt.Fprintf(w, "  image: %s\n", st.Path)
		}
		if len(st.Release) > 0 {
			b, _ := osrelease.Marshal(st.Release)
			fmt.Fprintf(w, "  release: %s\n", termSafe(strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", " ")))
		}
		if len(st.Versions) > 0 {
			fmt.Fprintf(w, "  OS versions held: %s\n", strings.Join(st.Versions, ", "))
		}
	}
}

func newSysextPublishCmd() *cobra.Command {
	var (
		repoPath, version, keyFile string
	)
	cmd := &cobra.Command{
		Use:   "publish IMAGE --repo R --version-id V --sign-key FILE",
		Short: "Publish an extension image for one OS version beside a repository",
		Long: `Copy IMAGE (NAME.raw, checked first) to R/extensions/NAME/V/NAME.raw with
NAME.raw.sig, an ed25519 signature by the repository's key over the image's
name, V and SHA-256. Nodes that follow NAME fetch it when they upgrade to an OS
whose VERSION_ID is V, and verify it with the remote's keys.`,
		Args: argNames("IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if repoPath == "" || version == "" || keyFile == "" {
				return usagef("--repo R, --version-id V and --sign-key FILE are required (usage: %s)", usageLine(cmd))
			}
			key, err := sign.LoadSecretKey(keyFile)
			if err != nil {
				return fmt.Errorf("cannot publish the extension: %w", err)
			}
			img, err := sysext.Publish(repoPath, args[0], version, sign.NewEd25519Signer(key))
			if err != nil {
				return fmt.Errorf("cannot publish the extension: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Published extension %s for VERSION_ID %s\n", img.Name, version)
			return nil
		},
	}
	cmd.Flags().StringVar(&repoPath, "repo", "", "the repository directory to publish beside")
	cmd.Flags().StringVar(&version, "version-id", "", "the OS VERSION_ID the image is for")
	cmd.Flags().StringVar(&keyFile, "sign-key", "", "ed25519 secret key file (strata repo keygen)")
	return cmd
}

func newSysextLinkCmd() *cobra.Command {
	var root string
	cmd := &cobra.Command{
		Use:   "link [--root /]",
		Short: "Link the followed extensions that match the booted OS into /run/extensions (a boot step)",
		Long: `Run at every boot by strata-sysext.service, before systemd-sysext.service: for
every followed extension, link /run/extensions/NAME.raw to its image for the
booted OS's VERSION_ID when that image matches the os-release; one without a
match gets no link, so systemd-sysext never merges a mismatched image, and the
reason is printed (to the journal).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(filepath.Join(root, "usr/lib/os-release"))
			if err != nil {
				return fmt.Errorf("cannot link extensions: %w", err)
			}
			host, err := osrelease.Parse(data)
			if err != nil {
				return fmt.Errorf("cannot link extensions: %w", err)
			}
			store := sysext.Store{Var: filepath.Join(root, "var")}
			l, err := store.Link(host, sysext.Architecture(), filepath.Join(root, "run/extensions"))
			if err != nil {
				return fmt.Errorf("cannot link extensions: %w", err)
			}
			for _, st := range l {
				if st.Matches {
					fmt.Fprintf(cmd.OutOrStdout(), "Extension %s: linked %s\n", st.Name, st.Path)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "Extension %s: not merged: %s\n", st.Name, st.Reason)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "/", "the running system's root")
	return cmd
}
