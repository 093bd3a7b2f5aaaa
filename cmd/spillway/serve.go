package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/internal/server"
)

func newServeCommand() *cobra.Command {
	var o server.Options
	cmd := &cobra.Command{
		Use:   "serve -c FILE | --upstream URL [--listen ADDR] [--admin ADDR]",
		Short: "Run the gateway: a resilience reverse proxy configured in YAML",
		Long: `serve runs the gateway described by FILE: the public listener proxies the
routes to their upstreams through the policies, the admin listener answers
/healthz, /readyz, /metrics and /api/v1/. The access log (JSON, one line per
request) goes to stdout; the start lines and the operational log to stderr.

With --upstream URL instead of a file, serve runs one catch-all route to URL
with the brief's defaults, the public listener on --listen (127.0.0.1:8080)
and the admin listener on --admin (127.0.0.1:9901). The admin token is
$SPILLWAY_ADMIN_TOKEN, or one generated and printed once on stderr.
spillway init writes the file to grow from there.

With an async route, the durable queue opens first: the embedded NATS
JetStream store in queue.dir, or the cluster of queue.servers.

Signals: SIGTERM or SIGINT stops accepting connections and drains the requests
in flight for up to server.shutdown_grace (a second one closes at once), then
stops the queue workers (5 s for their deliveries in flight) and closes the
queue (the embedded store is flushed);
SIGHUP re-reads FILE and applies it, or refuses it and keeps the running
configuration when it is invalid.

Unless GOGC is set in the environment, the Go collector runs at GOGC=400.`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case o.File != "" && o.Upstream != "":
				return errors.New("-c FILE and --upstream URL: choose one")
			case o.File == "" && o.Upstream == "":
				return errors.New("serve needs -c FILE, or --upstream URL to run with no file")
			case o.Upstream == "" && (cmd.Flags().Changed("listen") || cmd.Flags().Changed("admin")):
				return errors.New("--listen and --admin go with --upstream (a file sets listen and admin.listen)")
			}
			o.Token = os.Getenv("SPILLWAY_ADMIN_TOKEN")
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			signals := make(chan os.Signal, 1)
			signal.Notify(signals, syscall.SIGTERM, os.Interrupt, syscall.SIGHUP)
			defer signal.Stop(signals)
			// The signals channel is how serve stops: main's context is
			// cancelled by the same SIGTERM, which would otherwise be read
			// twice and turn a graceful drain into an immediate close.
			ctx := context.WithoutCancel(cmd.Context())
			tuneGC(os.Getenv)
			return server.Run(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr(), signals, nil)
		},
	}
	cmd.Flags().StringVarP(&o.File, "config", "c", "", "the configuration file (YAML)")
	cmd.Flags().StringVar(&o.Upstream, "upstream", "", "with no file: proxy everything to this URL with the default policies")
	cmd.Flags().StringVar(&o.Listen, "listen", "", "with --upstream: the public address (default 127.0.0.1:8080)")
	cmd.Flags().StringVar(&o.Admin, "admin", "", "with --upstream: the admin address (default 127.0.0.1:9901)")
	return cmd
}

// gatewayGCPercent is the garbage collector's target of `spillway serve`
// unless GOGC is set. A gateway's live heap is small and bounded (the
// bulkheads bound the requests in flight) while it allocates per request, so
// Go's default of 100 collects often; 400 cut the p99 latency at half the
// maximum rate from 5.4 ms to 3.9-4.1 ms on the benchmark machine
// (docs/benchmarks.md) for a heap up to five times the live data.
const gatewayGCPercent = 400

// tuneGC sets the collector's target to gatewayGCPercent unless the
// environment sets GOGC (which then applies as usual).
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gatewayGCPercent)
	}
}
