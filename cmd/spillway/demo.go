package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway/internal/demo"
)

func newDemoCommand() *cobra.Command {
	o := demo.Options{}
	var library bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Watch the gateway and its policies keep a service answering while simulated downstreams fail",
		Long: `demo starts the gateway from an embedded example configuration in front of
simulated downstreams on loopback: a catalog with two instances (one fails for
a stretch, then both), a catalog replica, a reports service that is slow now
and then, an optional recommendations service that fails for a while, and an
orders service behind an async route (POST /orders answers 202 once the
order is stored in the durable queue) that is down for two phases; and the
seed's architecture, the route shop in front of service A, which calls
service B through the library (spillwayhttp with retry and breaker) and
serves each item's last good answer when B fails (Seed-Fallback: last-good).
A few clients send requests and orders through the gateway; the demo prints
the gateway's URL, a job status URL, the admin status, metrics and
dead-letters URLs, and each second a summary: answers per route, orders
accepted, pending in the queue, delivered and dead-lettered, fallbacks served
(replica, stale cache, static, default), reasons, the catalog's breaker and
instances, latency; and a shop line: requests answered by A, by A's own
fallback, by the gateway's fallbacks, errors, the gateway's breaker on A and
A's breaker on B. Alongside the phases, the shop loop repeats healthy → B
slow → B down (chaos policies on A's client to B) → A flapping (a runtime
fault added with POST /api/v1/faults, on the dashboard's faults panel and
the event stream, removed by the kill switch DELETE /api/v1/faults at the
end of the step). It runs for --duration (longer if its phases and one shop
loop need it; 0 runs until Ctrl-C), waits for the orders queue to drain,
then checks that every accepted order was delivered or dead-lettered. The
queue's store lives in a temporary directory removed at exit. Ctrl-C stops
it. examples/seed runs the shop's topology piece by piece.

demo --library runs the library demo instead: Spillway's standard pipeline
(fallback, total timeout, retry with budget, circuit breaker, bulkhead,
attempt timeout) against an in-process downstream that goes healthy →
failing → slow → recovered, without a gateway.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if library {
				if cmd.Flags().Changed("duration") {
					return errors.New("demo: --duration applies to the gateway demo, not to --library (its length is 4 phases)")
				}
				return demo.RunLibrary(cmd.Context(), cmd.OutOrStdout(), o)
			}
			return demo.RunGateway(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, nil)
		},
	}
	cmd.Flags().BoolVar(&library, "library", false, "run the library demo (the standard pipeline, no gateway)")
	cmd.Flags().DurationVar(&o.Duration, "duration", 30*time.Second, "how long the gateway demo runs (at least one pass of its phases and of the shop loop); 0: until Ctrl-C")
	cmd.Flags().DurationVar(&o.Phase, "phase", 6*time.Second, "length of each downstream phase and of each step of the shop loop")
	cmd.Flags().DurationVar(&o.Tick, "tick", time.Second, "interval between summary lines")
	cmd.Flags().IntVar(&o.Workers, "workers", 8, "concurrent callers")
	cmd.Flags().DurationVar(&o.Pace, "pace", 20*time.Millisecond, "pause between two calls of one caller")
	return cmd
}
