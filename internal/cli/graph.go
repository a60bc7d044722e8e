package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/graph"
	"github.com/strata-os/strata/internal/graphserver"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/repo"
)

func newGraphCmd() *cobra.Command {
	return newGroup("graph", "Build and serve the release graph that nodes update along (Cincinnati)",
		newGraphServeCmd(), newGraphBuildCmd())
}

func newGraphServeCmd() *cobra.Command {
	var listen, releases, updates string
	cmd := &cobra.Command{
		Use:   "serve --listen ADDR --releases FILE --updates DIR",
		Short: "Serve the release graph over HTTP (GET /v1/graph, as Zincati asks it)",
		Long: `Serve the release graph of every stream that has an updates file in DIR
(STREAM.json): GET /v1/graph?basearch=ARCH&stream=STREAM answers the graph in
Cincinnati's JSON form, throttled by the node's rollout wariness (the
rollout_wariness parameter, else derived from node_uuid); with oci=true the
payloads are OS image digests. GET /v1/eligibility with the same parameters and
os_checksum (the booted payload) answers the node's wariness and from when each
release it can reach is eligible. GET /metrics answers Prometheus text.

--releases is one releases.json for every stream, or a directory of
STREAM.json files. The inputs are reread when their files change (checked every
5 s); a broken change is logged and the previous graph stays served.
The format and the rules are in docs/formats/cincinnati.md.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			s, err := graphserver.New(graphserver.Inputs{Releases: releases, Updates: updates}, graphserver.WithLogger(log))
			if err != nil {
				return fmt.Errorf("cannot serve the graph: %w", err)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("cannot serve the graph: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "http://%s/ (streams: %v)\n", ln.Addr(), s.Streams())
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return pull.Serve(ctx, ln, s, pull.ServeOptions{MaxConns: 4096})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8081", "address to listen on, HOST:PORT")
	cmd.Flags().StringVar(&releases, "releases", "", "releases.json, or a directory of STREAM.json files")
	cmd.Flags().StringVar(&updates, "updates", "", "directory of updates files, STREAM.json")
	cmd.MarkFlagRequired("releases")
	cmd.MarkFlagRequired("updates")
	return cmd
}

func newGraphBuildCmd() *cobra.Command {
	var path, ref, stream, out, arch string
	var rolloutMinutes uint64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "build --repo R --ref REF --stream S [--out DIR]",
		Short: "Write a stream's graph inputs from a ref's commit history",
		Long: `Write DIR/releases.json and DIR/updates/S.json for the stream S from the history
of REF: every commit with version metadata is a release, oldest first. Both files
are merged, not replaced: releases already listed stay in their place (a version
listed with another checksum is an error), and entries an operator wrote into the
updates file (barriers, dead ends, rollouts) are kept. A release the updates file
does not mention yet gets a rollout starting now: to every node at once, or with
--rollout-minutes N spread over N minutes by the nodes' wariness.
Serve the result with: strata graph serve --releases DIR/releases.json --updates DIR/updates`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			h, err := repo.Log(cmd.Context(), r, ref)
			if err != nil {
				return err
			}
			var history []graph.Published
			for _, e := range slices.Backward(h.Commits) {
				v := e.Commit.Metadata.String(ostree.MetaVersion)
				if v == "" {
					continue // not a release
				}
				history = append(history, graph.Published{Version: v, Checksum: e.Checksum.String()})
			}
			if len(history) == 0 {
				return fmt.Errorf("no commit in the history of %s has version metadata (commit with --metadata version=V)", ref)
			}
			relPath, updPath := filepath.Join(out, "releases.json"), filepath.Join(out, "updates", stream+".json")
			var ri graph.ReleaseIndex
			var u graph.Updates
			if err := readInput(relPath, func(f *os.File) (err error) { ri, err = graph.ParseReleaseIndex(f); return }); err != nil {
				return err
			}
			if err := readInput(updPath, func(f *os.File) (err error) { u, err = graph.ParseUpdates(f); return }); err != nil {
				return err
			}
			before := len(ri.Releases)
			ri, u, err = graph.AddReleases(ri, u, stream, arch, history, graph.RolloutPolicy{Start: time.Now(), Minutes: rolloutMinutes})
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(updPath), 0o755); err != nil {
				return err
			}
			for p, v := range map[string]any{relPath: ri, updPath: u} {
				var b bytes.Buffer
				enc := json.NewEncoder(&b)
				enc.SetIndent("", "  ")
				if err := enc.Encode(v); err != nil {
					return err
				}
				if err := fsutil.WriteFileAtomic(p, b.Bytes(), 0o644); err != nil {
					return err
				}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"releases": relPath, "updates": updPath,
					"count": len(ri.Releases), "added": len(ri.Releases) - before, "newest": history[len(history)-1].Version})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d releases (%d new, newest %s); %s\n", relPath, len(ri.Releases),
				len(ri.Releases)-before, history[len(history)-1].Version, updPath)
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().StringVar(&ref, "ref", "", "the ref whose history is the stream's releases")
	cmd.Flags().StringVar(&stream, "stream", "", "the stream's name")
	cmd.Flags().StringVar(&out, "out", ".", "directory of releases.json and updates/")
	cmd.Flags().StringVar(&arch, "arch", goArchToBasearch(runtime.GOARCH), "the releases' architecture, as nodes send it (basearch)")
	cmd.Flags().Uint64Var(&rolloutMinutes, "rollout-minutes", 0, "spread new releases over this many minutes (0: all nodes at once)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.MarkFlagRequired("ref")
	cmd.MarkFlagRequired("stream")
	return cmd
}

// readInput opens path and parses it with parse; a missing file leaves the zero value.
func readInput(path string, parse func(*os.File) error) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return parse(f)
}

// goArchToBasearch maps Go's GOARCH to the architecture names nodes send.
func goArchToBasearch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	}
	return goarch
}
