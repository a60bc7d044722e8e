package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sysroot"
)

// The node verbs (status, deploy, rollback, cleanup, pin, undeploy, kargs,
// upgrade, finalize) act on a sysroot: "/" on a booted system, any
// directory in tests and image builds.

func addSysrootFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "sysroot", hostEnv().defaultSysroot(), "the sysroot to act on ($OSTREE_SYSROOT sets the default)")
}

func openSysroot(path string) (*sysroot.Sysroot, error) {
	s, err := sysroot.Open(path, nodeESP(path)...)
	if err != nil {
		return nil, fmt.Errorf("cannot open sysroot: %w", err)
	}
	return s, nil
}

// deploymentJSON is one deployment in --json outputs (snake_case like
// every strata JSON output).
type deploymentJSON struct {
	Index        int      `json:"index"`
	OSName       string   `json:"osname"`
	Checksum     string   `json:"checksum"`
	Serial       int      `json:"serial"`
	BootChecksum string   `json:"boot_checksum,omitempty"`
	BootSerial   int      `json:"boot_serial"`
	Refspec      string   `json:"refspec,omitempty"`
	Version      string   `json:"version,omitempty"`
	Timestamp    int64    `json:"timestamp,omitempty"`
	Kargs        []string `json:"kargs"`
	Booted       bool     `json:"booted"`
	Staged       bool     `json:"staged"`
	Pending      bool     `json:"pending"`
	Rollback     bool     `json:"rollback"`
	Pinned       bool     `json:"pinned"`
	Path         string   `json:"path"`
}

func toDeploymentJSON(s *sysroot.Sysroot, d sysroot.Deployment) deploymentJSON {
	out := deploymentJSON{
		Index: d.Index, OSName: d.OSName, Checksum: d.Checksum.String(), Serial: d.Serial,
		BootChecksum: d.BootChecksum, BootSerial: d.BootSerial, Refspec: d.Refspec, Version: d.Version,
		Kargs: d.Kargs, Booted: d.Booted, Staged: d.Staged, Pinned: d.Pinned, Path: d.Path(),
	}
	if out.Kargs == nil {
		out.Kargs = []string{}
	}
	if !d.Timestamp.IsZero() {
		out.Timestamp = d.Timestamp.Unix()
	}
	if p, ok := s.Pending(); ok && p.Index == d.Index && !d.Staged {
		out.Pending = true
	}
	if r, ok := s.RollbackDeployment(); ok && r.Index == d.Index {
		out.Rollback = true
	}
	return out
}

// printDeployment writes one deployment in the style of rpm-ostree status.
func printDeployment(w io.Writer, dj deploymentJSON) {
	mark := " "
	if dj.Booted {
		mark = "●"
	}
	origin := dj.Refspec
	if origin == "" {
		origin = dj.Checksum
	}
	var tags []string
	for _, t := range []struct {
		on   bool
		name string
	}{{dj.Booted, "booted"}, {dj.Staged, "staged"}, {dj.Pending, "pending"}, {dj.Rollback, "rollback"}, {dj.Pinned, "pinned"}} {
		if t.on {
			tags = append(tags, t.name)
		}
	}
	head := fmt.Sprintf("%s %s:%s", mark, dj.OSName, origin)
	if len(tags) > 0 {
		head += " (" + strings.Join(tags, ", ") + ")"
	}
	fmt.Fprintln(w, head)
	if dj.Version != "" {
		v := dj.Version
		if dj.Timestamp != 0 {
			v += " (" + time.Unix(dj.Timestamp, 0).UTC().Format(time.RFC3339) + ")"
		}
		fmt.Fprintf(w, "    %-10s %s\n", "Version:", v)
	} else if dj.Timestamp != 0 {
		fmt.Fprintf(w, "    %-10s %s\n", "Timestamp:", time.Unix(dj.Timestamp, 0).UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "    %-10s %s.%d\n", "Commit:", dj.Checksum, dj.Serial)
	fmt.Fprintf(w, "    %-10s %d\n", "Index:", dj.Index)
	if len(dj.Kargs) > 0 {
		fmt.Fprintf(w, "    %-10s %s\n", "Kargs:", strings.Join(dj.Kargs, " "))
	}
}
