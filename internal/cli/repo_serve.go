package cli

import (
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/pull"
)

func newRepoServeCmd() *cobra.Command {
	var (
		path, listen string
		opts         pull.ServeOptions
	)
	cmd := &cobra.Command{
		Use:   "serve --repo R --listen ADDR",
		Short: "Serve an archive repository over HTTP for pulls",
		Long: `Serve the files of an archive repository over HTTP, as any static web server
could serve the same directory: GET and HEAD of config, summary, summary.sig,
refs/, objects/, deltas/ and delta-indexes/, with ranges and conditional
requests; nothing else (no dotfiles, tmp/ or state/, no directory listings,
nothing outside the repository). Only archive repositories can be pulled over
HTTP, so other modes are refused.

Prints the URL it listens on (ADDR may use port 0 to pick a free port), logs
one line per request to stderr, and stops cleanly on SIGINT or SIGTERM,
letting responses in flight finish. No symbolic link in the repository is
followed. At most --max-connections connections are served at once, and a
client that reads nothing for --write-timeout is disconnected.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			h, err := pull.NewHandler(r, log)
			if err != nil {
				return fmt.Errorf("cannot serve: %w", err)
			}
			defer h.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("cannot serve: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "http://%s/\n", ln.Addr())
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := pull.Serve(ctx, ln, h, opts); err != nil {
				return fmt.Errorf("cannot serve: %w", err)
			}
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on, HOST:PORT")
	cmd.Flags().IntVar(&opts.MaxConns, "max-connections", pull.DefaultMaxConns, "most connections served at once")
	cmd.Flags().DurationVar(&opts.WriteTimeout, "write-timeout", pull.DefaultWriteTimeout, "disconnect a client that reads nothing for this long")
	return cmd
}
