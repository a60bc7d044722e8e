package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/provision"
	"github.com/strata-os/strata/internal/sysroot"
)

func newStatusCmd() *cobra.Command {
	var (
		f        nodeFlags
		liveRoot string
	)
	cmd := &cobra.Command{
		Use:   "status [--sysroot S] [--json]",
		Short: "Show the deployments of a sysroot",
		Long: `List the deployments of the sysroot in boot order: index 0 is the default for
the next boot. Marks the booted deployment (found from ostree= in /proc/cmdline
when the sysroot is /), the staged one (written into the boot configuration at
shutdown), the pending one (the default when it is not the booted one), the
rollback one and the pinned ones.`,
		Args: noArgs,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, _ []string) error {
			bv, sbv := s.BootVersion()
			out := statusJSON{Sysroot: absPath(s.Path()), BootVersion: bv, SubBootVersion: sbv, Deployments: []deploymentJSON{}}
			for _, d := range s.Deployments() {
				dj := toDeploymentJSON(s, d)
				if d.Booted && (filepath.Clean(s.Path()) == "/" || liveRoot != "/") {
					// What install --apply-live mounted on the running /usr.
					if top, ok, err := liveOverlay(filepath.Join(liveRoot, "usr"), stateVar(s, d.OSName, layerLive)); err == nil && ok {
						dj.LiveApplied = filepath.Base(top)
					}
				}
				out.Deployments = append(out.Deployments, dj)
				if lb := readLayerBlock(s, d.OSName); lb != nil {
					if out.UpdatesBlocked == nil {
						out.UpdatesBlocked = map[string]*layerBlock{}
					}
					out.UpdatesBlocked[d.OSName] = lb
				}
			}
			prov, err := provisioningStatus(s.Path())
			if err != nil {
				return fmt.Errorf("cannot read the provisioning state: %w", err)
			}
			out.Provisioning = prov
			// Extensions are reported, never a reason to fail status.
			out.Extensions, _ = sysextList(s)
			if f.json {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			if len(out.Deployments) == 0 {
				fmt.Fprintln(w, "No deployments.")
				printProvisioning(w, out.Provisioning)
				return nil
			}
			fmt.Fprintln(w, "Deployments:")
			for _, dj := range out.Deployments {
				printStatusEntry(w, termSafeDeployment(dj))
			}
			printProvisioning(w, out.Provisioning)
			if len(out.Extensions) > 0 {
				fmt.Fprintln(w, "Extensions:")
				printSysextList(w, out.Extensions)
			}
			for osname, lb := range out.UpdatesBlocked {
				v := lb.Base
				if lb.Version != "" {
					v = lb.Version + " (" + lb.Base + ")"
				}
				fmt.Fprintf(w, "Updates blocked (%s): the layered packages %s cannot be installed on %s: %s\n",
					termSafe(osname), termSafe(strings.Join(lb.Packages, ", ")), termSafe(v), termSafe(lb.Reason))
			}
			return nil
		}),
	}
	f.register(cmd, "print the deployments as JSON")
	cmd.Flags().StringVar(&liveRoot, "live-root", "/", "root of the running system whose /usr may carry an --apply-live overlay (tests)")
	cmd.Flags().StringVar(&f.procCmdline, "proc-cmdline", "", "read the booted kernel's command line from this file (tests)")
	_ = cmd.Flags().MarkHidden("live-root")
	_ = cmd.Flags().MarkHidden("proc-cmdline")
	return cmd
}

// provisioningStatus reads the first-boot provisioning state of the node whose sysroot is
// path; on the booted node (sysroot /) the physical root is mounted at /sysroot. nil when the
// node was not built to be provisioned, or when the caller may not read the state (it is
// root's only: the config may hold password hashes), so that status still works for others.
func provisioningStatus(path string) (*provisioningJSON, error) {
	st, err := provision.ReadState(physicalRoot(path))
	if errors.Is(err, fs.ErrPermission) {
		return nil, nil
	}
	if err != nil || st.Status == provision.StatusNone {
		return nil, err
	}
	out := &provisioningJSON{Status: string(st.Status)}
	if r := st.Record; r != nil && st.Status == provision.StatusProvisioned {
		out.Date, out.ConfigDigest, out.Source = r.Date, r.ConfigDigest, r.Source
	}
	if f := st.Failure; f != nil && st.Status == provision.StatusFailed {
		out.Error, out.FailedDate = f.Error, f.Date
	}
	return out, nil
}

// physicalRoot is the physical root of the sysroot at path: on the booted node (sysroot /)
// prepare-root mounts it at /sysroot.
func physicalRoot(path string) string {
	if filepath.Clean(path) == "/" {
		return "/sysroot"
	}
	return path
}

// printProvisioning writes the provisioning state after the deployments.
func printProvisioning(w io.Writer, p *provisioningJSON) {
	if p == nil {
		return
	}
	switch provision.Status(p.Status) {
	case provision.StatusProvisioned:
		what := "no config (none of fw_cfg, embedded, ignition.config.url= had one)"
		if p.Source != "" {
			what = "the " + termSafe(p.Source) + " config " + termSafe(p.ConfigDigest)
		}
		fmt.Fprintf(w, "Provisioned: %s with %s\n", termSafe(p.Date), what)
	case provision.StatusFailed:
		fmt.Fprintf(w, "Provisioning: failed at %s (the next boot tries again): %s\n", termSafe(p.FailedDate), termSafe(p.Error))
	default:
		fmt.Fprintln(w, "Provisioning: pending (the next boot applies the first-boot config)")
	}
}

// termSafeDeployment escapes the strings of dj that come from commits and
// origin files (stateroot, refspec, version, kernel arguments) for a
// terminal: a commit's version may hold escape sequences or line breaks.
func termSafeDeployment(dj deploymentJSON) deploymentJSON {
	dj.OSName, dj.Refspec, dj.Version = termSafe(dj.OSName), termSafe(dj.Refspec), termSafe(dj.Version)
	dj.ImageDigest = termSafe(dj.ImageDigest)
	kargs := make([]string, len(dj.Kargs))
	for i, k := range dj.Kargs {
		kargs[i] = termSafe(k)
	}
	dj.Kargs = kargs
	safe := func(l []string) []string {
		out := make([]string, len(l))
		for i, x := range l {
			out[i] = termSafe(x)
		}
		return out
	}
	dj.RequestedPackages, dj.RequestedLocal, dj.RequestedBaseRemovals = safe(dj.RequestedPackages), safe(dj.RequestedLocal), safe(dj.RequestedBaseRemovals)
	return dj
}

// termSafe writes every character of s that a terminal would not print
// as itself (control characters, C1 controls, bidirectional overrides,
// invalid UTF-8) as a Go escape: \x1b, \n, \u202e.
func termSafe(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r == utf8.RuneError || !unicode.IsPrint(r) }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}
