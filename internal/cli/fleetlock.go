package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/lockserver"
	"github.com/strata-os/strata/internal/pull"
)

func newFleetlockCmd() *cobra.Command {
	return newGroup("fleetlock", "Serve the fleet-wide reboot lock (FleetLock protocol, airlock-compatible)",
		newFleetlockServeCmd())
}

func newFleetlockServeCmd() *cobra.Command {
	var listen, storePath, etcd, configPath string
	var slots uint64
	var lease time.Duration
	cmd := &cobra.Command{
		Use:   "serve --listen ADDR [--store PATH | --etcd URLS] [--config FILE]",
		Short: "Serve reboot slots per group to update agents (POST /v1/pre-reboot, /v1/steady-state)",
		Long: `Serve the FleetLock protocol that update agents (strata's and Zincati) use to take
one of a few reboot slots of their group before rebooting into an update, and to
give it back once the new boot is good.

Slots are kept in a bbolt file (--store, the default for one server) or in etcd v3
(--etcd http://HOST:2379,...) under airlock's keys, so a fleet can move between
airlock and strata. Beyond the protocol: GET /v1/groups/GROUP shows the holders and
since when; POST /v1/groups/GROUP/release {"id":..,"reason":..} releases a slot by
force and leaves an audit record (GET /v1/audit); --lease releases a holder that
never reported steady state; maintenance windows per group (--config) are enforced
here. GET /metrics answers Prometheus text. The protocol has no authentication:
serve it only where the nodes and their operators can reach it.
Settings and formats: docs/formats/fleetlock.md.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (storePath == "") == (etcd == "") {
				return usagef("give one of --store PATH or --etcd URLS")
			}
			cfg := lockserver.Config{DefaultSlots: slots, Lease: lease}
			if configPath != "" {
				f, err := os.Open(configPath)
				if err != nil {
					return err
				}
				cfg, err = lockserver.ParseConfig(f, configPath)
				f.Close()
				if err != nil {
					return err
				}
				if cmd.Flags().Changed("slots") {
					cfg.DefaultSlots = slots
				}
				if cmd.Flags().Changed("lease") {
					cfg.Lease = lease
				}
			}
			var store lockserver.Store
			var err error
			if storePath != "" {
				store, err = lockserver.OpenBolt(storePath)
			} else {
				store, err = lockserver.OpenEtcd(strings.Split(etcd, ","), 3*time.Second)
			}
			if err != nil {
				return err
			}
			defer store.Close()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			srv := lockserver.New(store, cfg, time.Now, log)
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("cannot serve the fleet lock: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "http://%s/\n", ln.Addr())
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if cfg.Lease > 0 {
				go expireLoop(ctx, srv, log, min(cfg.Lease/4, time.Minute))
			}
			return pull.Serve(ctx, ln, srv, pull.ServeOptions{MaxConns: 4096})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:3333", "address to listen on, HOST:PORT")
	cmd.Flags().StringVar(&storePath, "store", "", "bbolt file that keeps the slots")
	cmd.Flags().StringVar(&etcd, "etcd", "", "comma-separated etcd v3 client URLs (airlock's key layout)")
	cmd.Flags().StringVar(&configPath, "config", "", "TOML settings: groups, slots, lease, maintenance windows")
	cmd.Flags().Uint64Var(&slots, "slots", 1, "slots of a group the settings do not list")
	cmd.Flags().DurationVar(&lease, "lease", 0, "release a holder that has not reported steady state after this long (0: never)")
	return cmd
}

// expireLoop releases expired holders periodically, so that a dead holder's slot comes back even
// when no other node asks.
func expireLoop(ctx context.Context, srv *lockserver.Server, log *slog.Logger, every time.Duration) {
	t := time.NewTicker(max(every, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := srv.ExpireLeases(ctx); err != nil {
				log.Error("expiring leases", "err", err)
			}
		}
	}
}
