package cli

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sysroot"
)

func newStatusCmd() *cobra.Command {
	var f nodeFlags
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
				out.Deployments = append(out.Deployments, toDeploymentJSON(s, d))
				if lb := readLayerBlock(s, d.OSName); lb != nil {
					if out.UpdatesBlocked == nil {
						out.UpdatesBlocked = map[string]*layerBlock{}
					}
					out.UpdatesBlocked[d.OSName] = lb
				}
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			if len(out.Deployments) == 0 {
				fmt.Fprintln(w, "No deployments.")
				return nil
			}
			fmt.Fprintln(w, "Deployments:")
			for _, dj := range out.Deployments {
				printStatusEntry(w, termSafeDeployment(dj))
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
	return cmd
}

// termSafeDeployment escapes the strings of dj that come from commits and
// origin files (stateroot, refspec, version, kernel arguments) for a
// terminal: a commit's version may hold escape sequences or line breaks.
func termSafeDeployment(dj deploymentJSON) deploymentJSON {
	dj.OSName, dj.Refspec, dj.Version = termSafe(dj.OSName), termSafe(dj.Refspec), termSafe(dj.Version)
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
