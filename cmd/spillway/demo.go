package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

// demoOptions shape both demos; the defaults show every pattern within 30 s.
type demoOptions struct {
	phase    time.Duration // how long each phase of the downstreams lasts (at least)
	tick     time.Duration // how often a summary line is printed
	workers  int           // concurrent callers
	pace     time.Duration // pause between two calls of one caller
	duration time.Duration // how long the gateway demo runs (at least its scenario)
}

func newDemoCommand() *cobra.Command {
	o := demoOptions{}
	var library bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Watch the gateway and its policies keep a service answering while simulated downstreams fail",
		Long: `demo starts the gateway from an embedded example configuration in front of
simulated downstreams on loopback: a catalog with two instances (one fails for
a stretch, then both), a catalog replica, a reports service that is slow now
and then, an optional recommendations service that fails for a while, and an
orders service behind an async route (POST /orders answers 202 once the
order is stored in the durable queue) that is down for two phases.
A few clients send requests and orders through the gateway; the demo prints
the gateway's URL, a job status URL, the admin status, metrics and
dead-letters URLs, and each second a summary: answers per route, orders
accepted, pending in the queue, delivered and dead-lettered, fallbacks served
(replica, stale cache, static, default), reasons, the catalog's breaker and
instances, latency. It runs for --duration (longer if its phases need it),
waits for the orders queue to drain, then checks that every accepted order
was delivered or dead-lettered. The queue's store lives in a temporary
directory removed at exit. Ctrl-C stops it.

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
				return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
			}
			return runGatewayDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, nil)
		},
	}
	cmd.Flags().BoolVar(&library, "library", false, "run the library demo (the standard pipeline, no gateway)")
	cmd.Flags().DurationVar(&o.duration, "duration", 30*time.Second, "how long the gateway demo runs (at least one pass of its phases)")
	cmd.Flags().DurationVar(&o.phase, "phase", 6*time.Second, "length of each downstream phase")
	cmd.Flags().DurationVar(&o.tick, "tick", time.Second, "interval between summary lines")
	cmd.Flags().IntVar(&o.workers, "workers", 8, "concurrent callers")
	cmd.Flags().DurationVar(&o.pace, "pace", 20*time.Millisecond, "pause between two calls of one caller")
	return cmd
}

// phase is one behaviour of the simulated downstream.
type phase struct {
	name    string
	latency time.Duration
	failPct int
}

var demoPhases = []phase{
	{name: "healthy", latency: 5 * time.Millisecond},
	{name: "failing", latency: 2 * time.Millisecond, failPct: 90},
	{name: "slow", latency: 300 * time.Millisecond},
	{name: "recovered", latency: 5 * time.Millisecond},
}

// downstream simulates the dependency: its behaviour is the current phase.
type downstream struct {
	current atomic.Int32
	calls   atomic.Int64
}

var errDownstream = errors.New("downstream: 503 service unavailable")

func (d *downstream) call(ctx context.Context) (string, error) {
	d.calls.Add(1)
	p := demoPhases[d.current.Load()]
	if err := spillway.Sleep(ctx, p.latency); err != nil {
		return "", err
	}
	if rand.IntN(100) < p.failPct {
		return "", errDownstream
	}
	return "fresh answer", nil
}

// demoStats counts what the policies did, from their events and results.
type demoStats struct {
	mu sync.Mutex
	demoWindow
}

// demoWindow is what happened during one summary interval.
type demoWindow struct {
	calls     int
	ok        int
	fallbacks int
	failed    int
	retries   int
	timeouts  int
	opened    int
	rejected  map[spillway.Reason]int
	latencies []time.Duration
}

func (s *demoStats) Observe(e spillway.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Kind {
	case spillway.EventRetry:
		s.retries++
	case spillway.EventTimeout:
		s.timeouts++
	case spillway.EventRejection:
		s.rejected[e.Reason]++
	case spillway.EventTransition:
		if e.To == breaker.Open.String() {
			s.opened++
		}
	}
}

func (s *demoStats) record(r spillway.Result[string], d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	switch {
	case r.Err != nil:
		s.failed++
	case r.Fallback != "":
		s.fallbacks++
	default:
		s.ok++
	}
	s.latencies = append(s.latencies, d)
}

// take returns the counts since the last call and resets them.
func (s *demoStats) take() demoWindow {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.demoWindow
	s.demoWindow = demoWindow{rejected: map[spillway.Reason]int{}}
	return out
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1))]
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) error {
	if o.phase <= 0 || o.tick <= 0 || o.workers <= 0 || o.pace < 0 {
		return fmt.Errorf("demo: --phase, --tick and --workers must be positive and --pace not negative")
	}
	stats := &demoStats{demoWindow: demoWindow{rejected: map[spillway.Reason]int{}}}
	var obs spillway.Observer = stats

	br := breaker.MustNew(breaker.Config{Name: "downstream", WindowSize: 50, MinCalls: 10,
		SlowCallDuration: 150 * time.Millisecond, SlowCallRate: 0.5, OpenFor: time.Second,
		MaxOpenFor: 2 * time.Second, HalfOpenProbes: 3, ProbeTimeout: time.Second, Observer: obs})
	budget := retry.MustNewBudget(retry.BudgetConfig{})
	rp := retry.MustNew(retry.Config{Name: "downstream", MaxAttempts: 3, Initial: 20 * time.Millisecond,
		Max: 200 * time.Millisecond, Budget: budget, Observer: obs})
	bh := bulkhead.MustNew(bulkhead.Config{Name: "downstream", MaxConcurrent: 6, Observer: obs})
	attempt := timeout.MustNew(timeout.Config{Name: "attempt", Duration: 200 * time.Millisecond, Observer: obs})
	total := timeout.MustNew(timeout.Config{Name: "total", Duration: 600 * time.Millisecond, Observer: obs})
	fb := fallback.NewWithConfig(fallback.Config{Name: "downstream", Observer: obs},
		fallback.Value("cached", "cached answer"))
	pl := spillway.NewStandard[string](fb, total, rp, br, bh, attempt)

	ds := &downstream{}
	fmt.Fprintf(out, "Spillway demo: %d callers → standard pipeline → a downstream that goes %s, %s each.\n",
		o.workers, phaseNames(), o.phase)
	fmt.Fprintf(out, "%-6s %-10s %-10s %6s %6s %8s %6s %7s %8s %-34s %7s %7s\n",
		"t", "phase", "breaker", "calls", "ok", "fallback", "failed", "retries", "timeouts", "rejected", "p50", "p99")

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for i := range o.workers {
		wg.Go(func() {
			// Staggered starts spread the callers over the pace instead of a burst.
			if spillway.Sleep(runCtx, o.pace*time.Duration(i)/time.Duration(o.workers)) != nil {
				return
			}
			for runCtx.Err() == nil {
				start := time.Now()
				r := pl.ExecuteResult(runCtx, ds.call)
				if runCtx.Err() == nil {
					stats.record(r, time.Since(start))
				}
				if spillway.Sleep(runCtx, o.pace) != nil {
					return
				}
			}
		})
	}

	start := time.Now()
	phaseStart := start
	opened := 0
	ticker := time.NewTicker(o.tick)
	defer ticker.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "interrupted: stopping the callers")
			break loop
		case <-ticker.C:
		}
		elapsed := time.Since(start)
		s := stats.take()
		opened += s.opened
		slices.Sort(s.latencies)
		// The line describes the interval that just ended, under the phase it ran in.
		fmt.Fprintf(out, "%-6s %-10s %-10s %6d %6d %8d %6d %7d %8d %-34s %7s %7s\n",
			elapsed.Round(o.tick/10).String(), demoPhases[ds.current.Load()].name, br.State(), s.calls, s.ok, s.fallbacks, s.failed,
			s.retries, s.timeouts, formatRejected(s.rejected),
			percentile(s.latencies, 0.50).Round(time.Millisecond/10), percentile(s.latencies, 0.99).Round(time.Millisecond/10))
		// Each phase lasts at least o.phase, however late a tick comes: a
		// starved process shows every phase instead of skipping one.
		if time.Since(phaseStart) < o.phase {
			continue
		}
		idx := int(ds.current.Load()) + 1
		phaseStart = time.Now()
		if idx >= len(demoPhases) {
			break
		}
		ds.current.Store(int32(idx))
	}
	stop()
	wg.Wait()
	snap := br.Snapshot()
	opened += stats.take().opened
	fmt.Fprintf(out, "done: %d downstream calls; the breaker opened %d times and is %s (failure rate %.0f%%); bulkhead in flight %d.\n",
		ds.calls.Load(), opened, snap.State, snap.FailureRate*100, bh.InFlight())
	return nil
}

func phaseNames() string {
	names := make([]string, len(demoPhases))
	for i, p := range demoPhases {
		names[i] = p.name
	}
	return strings.Join(names, " → ")
}

func formatRejected(m map[spillway.Reason]int) string {
	if len(m) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(m))
	for _, r := range spillway.Reasons {
		if n := m[r]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", r, n))
		}
	}
	return strings.Join(parts, " ")
}
