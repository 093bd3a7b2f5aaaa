// Package demo is `spillway demo`: the gateway in front of simulated
// services that fail on a schedule and of the seed's service A → service B
// (examples/seed/seed) under a fault loop (RunGateway), or the library's
// standard pipeline against one simulated downstream (RunLibrary). It starts
// the gateway through package server, as `spillway serve` does.
package demo

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

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

// Options shape both demos; the defaults of `spillway demo` show every
// pattern within 30 s.
type Options struct {
	Phase    time.Duration // how long each phase of the downstreams lasts (at least)
	Tick     time.Duration // how often a summary line is printed
	Workers  int           // concurrent callers
	Pace     time.Duration // pause between two calls of one caller
	Duration time.Duration // how long the gateway demo runs (at least its scenario and one shop loop); 0: until ctx ends
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

// RunLibrary runs the library demo: o.Workers callers through the standard
// pipeline (fallback, total timeout, retry with budget, circuit breaker,
// bulkhead, attempt timeout) against an in-process downstream that goes
// healthy → failing → slow → recovered, o.Phase each, printing a summary
// line every o.Tick to out; or until ctx ends.
func RunLibrary(ctx context.Context, out io.Writer, o Options) error {
	if o.Phase <= 0 || o.Tick <= 0 || o.Workers <= 0 || o.Pace < 0 {
		return fmt.Errorf("demo: --phase, --tick and --workers must be positive and --pace not negative")
	}
	stats := &demoStats{demoWindow: demoWindow{rejected: map[spillway.Reason]int{}}}
	br := breaker.MustNew(breaker.Config{Name: "downstream", WindowSize: 50, MinCalls: 10,
		SlowCallDuration: 150 * time.Millisecond, SlowCallRate: 0.5, OpenFor: time.Second,
		MaxOpenFor: 2 * time.Second, HalfOpenProbes: 3, ProbeTimeout: time.Second})
	budget := retry.MustNewBudget(retry.BudgetConfig{})
	rp := retry.MustNew(retry.Config{Name: "downstream", MaxAttempts: 3, Initial: 20 * time.Millisecond,
		Max: 200 * time.Millisecond, Budget: budget})
	bh := bulkhead.MustNew(bulkhead.Config{Name: "downstream", MaxConcurrent: 6})
	attempt := timeout.MustNew(timeout.Config{Name: "attempt", Duration: 200 * time.Millisecond})
	total := timeout.MustNew(timeout.Config{Name: "total", Duration: 600 * time.Millisecond})
	fb := fallback.MustNew(fallback.Config{Name: "downstream"}, fallback.Value("cached", "cached answer"))
	// The pipeline's Observer gets every policy's events: one line.
	pl := spillway.MustNewPipeline(spillway.Policies[string]{
		Fallback: fb, Total: total, Retry: rp, Breaker: br, Bulkhead: bh, Attempt: attempt, Observer: stats,
	})

	ds := &downstream{}
	fmt.Fprintf(out, "Spillway demo: %d callers → standard pipeline → a downstream that goes %s, %s each.\n",
		o.Workers, phaseNames(), o.Phase)
	fmt.Fprintf(out, "%-6s %-10s %-10s %6s %6s %8s %6s %7s %8s %-34s %7s %7s\n",
		"t", "phase", "breaker", "calls", "ok", "fallback", "failed", "retries", "timeouts", "rejected", "p50", "p99")

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for i := range o.Workers {
		wg.Go(func() {
			// Staggered starts spread the callers over the pace instead of a burst.
			if spillway.Sleep(runCtx, o.Pace*time.Duration(i)/time.Duration(o.Workers)) != nil {
				return
			}
			for runCtx.Err() == nil {
				start := time.Now()
				r := pl.ExecuteResult(runCtx, ds.call)
				if runCtx.Err() == nil {
					stats.record(r, time.Since(start))
				}
				if spillway.Sleep(runCtx, o.Pace) != nil {
					return
				}
			}
		})
	}

	start := time.Now()
	phaseStart := start
	opened := 0
	ticker := time.NewTicker(o.Tick)
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
			elapsed.Round(o.Tick/10).String(), demoPhases[ds.current.Load()].name, br.State(), s.calls, s.ok, s.fallbacks, s.failed,
			s.retries, s.timeouts, formatRejected(s.rejected),
			percentile(s.latencies, 0.50).Round(time.Millisecond/10), percentile(s.latencies, 0.99).Round(time.Millisecond/10))
		// Each phase lasts at least o.Phase, however late a tick comes: a
		// starved process shows every phase instead of skipping one.
		if time.Since(phaseStart) < o.Phase {
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
