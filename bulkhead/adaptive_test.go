package bulkhead_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"pgregory.net/rapid"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
)

// sim drives an adaptive bulkhead in rounds on a manual clock: each round
// admits as many of demand callers as the limit lets in, lets the clock run
// for the round's latency and releases them all with outcome.
type sim struct {
	t     testing.TB
	b     *bulkhead.Bulkhead
	clock *spillway.ManualClock
}

func newSim(t testing.TB, cfg bulkhead.Config) *sim {
	clock := spillway.NewManualClock(time.Second)
	cfg.Adaptive.Clock = clock
	return &sim{t: t, b: bulkhead.MustNew(cfg), clock: clock}
}

// round runs one round and returns how many calls it admitted.
func (s *sim) round(demand int, latency func(inFlight int) time.Duration, outcome error) int {
	s.t.Helper()
	var held []spillway.Permit
	for range demand {
		p, ok := s.b.TryAcquire()
		if !ok {
			break
		}
		if s.b.InFlight() > s.b.Limit() {
			s.t.Fatalf("admitted past the limit: %d in flight, limit %d", s.b.InFlight(), s.b.Limit())
		}
		held = append(held, p)
	}
	s.clock.Advance(latency(len(held)))
	for _, p := range held {
		p.Release(outcome)
	}
	s.checkBounds()
	return len(held)
}

// rounds runs n rounds at a fixed latency.
func (s *sim) rounds(n, demand int, latency time.Duration, outcome error) {
	for range n {
		s.round(demand, func(int) time.Duration { return latency }, outcome)
	}
}

func (s *sim) checkBounds() {
	s.t.Helper()
	if l := s.b.Limit(); l < s.b.MinConcurrent() || l > s.b.MaxConcurrent() {
		s.t.Fatalf("limit %d outside [%d, %d]", l, s.b.MinConcurrent(), s.b.MaxConcurrent())
	}
}

// errTimeout is a dropped call: a timeout.
var errTimeout = &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "timeout", Err: context.DeadlineExceeded}

func TestAdaptiveGrowsAtBaselineLatency(t *testing.T) {
	for _, alg := range bulkhead.Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			s := newSim(t, bulkhead.Config{MaxConcurrent: 200, Adaptive: bulkhead.Adaptive{Algorithm: alg, MinConcurrent: 5}})
			if got := s.b.Limit(); got != bulkhead.DefaultInitialLimit {
				t.Fatalf("starting limit %d, want %d", got, bulkhead.DefaultInitialLimit)
			}
			// Demand well above the limit, latency that does not move.
			s.rounds(3000, 1000, 10*time.Millisecond, nil)
			if got := s.b.Limit(); got != 200 {
				t.Errorf("limit %d after 300 windows at the baseline latency, want the upper bound 200", got)
			}
		})
	}
}

func TestAdaptiveDoesNotGrowWhenAppLimited(t *testing.T) {
	for _, alg := range bulkhead.Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			s := newSim(t, bulkhead.Config{MaxConcurrent: 200, Adaptive: bulkhead.Adaptive{Algorithm: alg}})
			// Five callers never ask for half of the limit of 20.
			s.rounds(1000, 5, 10*time.Millisecond, nil)
			if got := s.b.Limit(); got != 20 {
				t.Errorf("limit %d with a demand of 5, want it kept at 20", got)
			}
		})
	}
}

func TestAdaptiveShrinksWhenLatencyRises(t *testing.T) {
	for _, alg := range []bulkhead.Algorithm{bulkhead.Gradient2, bulkhead.Vegas} {
		t.Run(string(alg), func(t *testing.T) {
			s := newSim(t, bulkhead.Config{MaxConcurrent: 200, Adaptive: bulkhead.Adaptive{Algorithm: alg, MinConcurrent: 5}})
			s.rounds(1000, 1000, 10*time.Millisecond, nil)
			grown := s.b.Limit()
			// Within the tolerance (1.04x < 1.05x) Gradient2 does not shrink.
			if alg == bulkhead.Gradient2 {
				s.rounds(200, 1000, 10400*time.Microsecond, nil)
				if got := s.b.Limit(); got < grown {
					t.Fatalf("limit %d after latency within the tolerance, want >= %d", got, grown)
				}
				grown = s.b.Limit()
			}
			s.rounds(300, 1000, 40*time.Millisecond, nil)
			got := s.b.Limit()
			if got >= grown/2 {
				t.Errorf("limit %d after 100 windows at 4x the latency, want below half of %d", got, grown)
			}
			if alg != bulkhead.Gradient2 {
				return
			}
			// Latency that keeps rising keeps the limit at its lower bound
			// (where the long-term average learns the new latency, so that
			// the limit lifts off it by a little each time).
			for i := range 1000 {
				s.round(1000, func(int) time.Duration { return time.Duration(i+1) * 40 * time.Millisecond }, nil)
			}
			if got := s.b.Limit(); got > 2*5 {
				t.Errorf("limit %d while latency keeps rising, want near the lower bound 5", got)
			}
		})
	}
}

// TestGradient2ShrinksPastTheTolerance: a window whose latency is past the
// tolerance shrinks the limit, whatever the queue. Netflix's rule (limit ×
// gradient + queue) would keep a limit of 40 growing at 1.1× the latency
// with a queue of 4 (40 × (1 − 1.05/1.1) < 4), and at its defaults
// (tolerance 1.5) would not see 1.3× at all: on a downstream that thrashes,
// both cost goodput (bench/overload).
func TestGradient2ShrinksPastTheTolerance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ad      bulkhead.Adaptive
		latency time.Duration
	}{
		{"explicit tolerance and queue", bulkhead.Adaptive{Algorithm: bulkhead.Gradient2, Tolerance: 1.05, QueueSize: 4}, 11 * time.Millisecond},
		{"defaults", bulkhead.Adaptive{Algorithm: bulkhead.Gradient2}, 13 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, bulkhead.Config{MaxConcurrent: 40, Adaptive: tc.ad})
			s.rounds(1000, 1000, 10*time.Millisecond, nil)
			if got := s.b.Limit(); got != 40 {
				t.Fatalf("limit %d at the baseline latency, want the upper bound 40", got)
			}
			s.rounds(500, 1000, tc.latency, nil)
			if got := s.b.Limit(); got >= 30 {
				t.Errorf("limit %d after about 45 windows at %v (baseline 10ms), want below 30", got, tc.latency)
			}
		})
	}
}

func TestAIMDBacksOffOnDrops(t *testing.T) {
	s := newSim(t, bulkhead.Config{MaxConcurrent: 50, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, MinConcurrent: 3}})
	s.rounds(10, 1000, 10*time.Millisecond, nil) // one window: +1
	if got := s.b.Limit(); got != 21 {
		t.Fatalf("limit %d after a window without drops, want 21", got)
	}
	// Latency alone does not move AIMD below its timeout...
	s.rounds(1, 1000, 100*time.Millisecond, nil)
	if got := s.b.Limit(); got != 22 {
		t.Fatalf("limit %d after a slow window without drops, want 22", got)
	}
	// ...a drop does: 22 * 0.9 = 19.8, floor 19.
	s.rounds(10, 1000, 10*time.Millisecond, errTimeout)
	if got := s.b.Limit(); got != 19 {
		t.Fatalf("limit %d after a window with drops, want 19", got)
	}
	s.rounds(1000, 1000, 10*time.Millisecond, errTimeout)
	if got := s.b.Limit(); got != 3 {
		t.Errorf("limit %d after drops only, want the lower bound 3", got)
	}
	// A window longer than Timeout is a drop too.
	s = newSim(t, bulkhead.Config{MaxConcurrent: 50, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, Timeout: time.Second}})
	s.rounds(1, 1000, 2*time.Second, nil)
	if got := s.b.Limit(); got != 18 {
		t.Errorf("limit %d after a window past Timeout, want 18", got)
	}
}

func TestAdaptiveSamplesOnlyWhatTheAlgorithmLearnsFrom(t *testing.T) {
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		outcome error
		drop    func(error) bool
		want    int
	}{
		{"success", nil, nil, 21},
		{"timeout is a drop", errTimeout, nil, 18},
		{"throttled is a drop", &spillway.Error{Code: spillway.ReasonThrottled}, nil, 18},
		{"a later guard's refusal is no sample", &spillway.Error{Code: spillway.ReasonThrottled, Policy: "ratelimit"}, nil, 20},
		{"a later guard's refusal is no sample, with Drop", &spillway.Error{Code: spillway.ReasonThrottled, Policy: "throttle"}, func(error) bool { return true }, 20},
		{"other failure is no sample", errBoom, nil, 20},
		{"caller gone is no sample", spillway.CallerDone(errTimeout), nil, 20},
		{"panic is no sample", &spillway.PanicError{Value: 1}, nil, 20},
		{"Drop decides", errBoom, func(err error) bool { return err == errBoom }, 18},
		{"Drop refuses", errTimeout, func(error) bool { return false }, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, bulkhead.Config{MaxConcurrent: 50, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, Drop: tc.drop}})
			s.rounds(10, 1000, 10*time.Millisecond, tc.outcome)
			if got := s.b.Limit(); got != tc.want {
				t.Errorf("limit %d, want %d", got, tc.want)
			}
		})
	}
}

// TestAdaptiveSettlesNearCapacity is a closed loop: a downstream that serves
// C calls at once in 10ms and queues the rest (its latency grows with the
// concurrency past C), with far more demand than C. The limit settles near C.
func TestAdaptiveSettlesNearCapacity(t *testing.T) {
	const capacity = 40
	latency := func(n int) time.Duration {
		return time.Duration(max(1, float64(n)/capacity) * float64(10*time.Millisecond))
	}
	for _, alg := range []bulkhead.Algorithm{bulkhead.Gradient2, bulkhead.Vegas} {
		t.Run(string(alg), func(t *testing.T) {
			s := newSim(t, bulkhead.Config{MaxConcurrent: 500, Adaptive: bulkhead.Adaptive{Algorithm: alg}})
			for range 20000 {
				s.round(1000, latency, nil)
			}
			lo, hi, sum := 1<<30, 0, 0
			const n = 5000
			for range n {
				l := s.b.Limit()
				lo, hi, sum = min(lo, l), max(hi, l), sum+l
				s.round(1000, latency, nil)
			}
			t.Logf("limit over the last %d rounds: min %d, mean %d, max %d", n, lo, sum/n, hi)
			if mean := sum / n; mean < capacity*8/10 || mean > capacity*2 {
				t.Errorf("mean limit %d, want near the capacity %d (0.8x..2x)", mean, capacity)
			}
		})
	}
}

func TestAdaptiveConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  bulkhead.Config
		want string
	}{
		{bulkhead.Config{Adaptive: bulkhead.Adaptive{Algorithm: "cubic"}}, `unknown Adaptive.Algorithm "cubic" (want one of [gradient2 aimd vegas])`},
		{bulkhead.Config{MaxConcurrent: 10, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, MinConcurrent: 11}}, "MinConcurrent must be in [1, MaxConcurrent 10], got 11"},
		{bulkhead.Config{Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, BackoffRatio: 1}}, "BackoffRatio must be in [0.5, 1)"},
		{bulkhead.Config{Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.Gradient2, Tolerance: 0.5}}, "Tolerance must be >= 1"},
		{bulkhead.Config{Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.Vegas, Smoothing: 2}}, "Smoothing must be in (0, 1]"},
	} {
		_, err := bulkhead.New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.cfg.Adaptive, err, tc.want)
		}
		if err := bulkhead.MustNew(bulkhead.Config{}).Update(tc.cfg); err == nil {
			t.Errorf("Update(%+v) accepted", tc.cfg.Adaptive)
		}
	}
}

func TestAdaptiveUpdateInPlace(t *testing.T) {
	s := newSim(t, bulkhead.Config{MaxConcurrent: 200, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.Gradient2}})
	s.rounds(1000, 1000, 10*time.Millisecond, nil)
	var held []spillway.Permit
	for range 30 {
		p, ok := s.b.TryAcquire()
		if !ok {
			t.Fatal("refused under the limit")
		}
		held = append(held, p)
	}
	// Tighter bounds clamp the limit and keep the calls in flight.
	cfg := bulkhead.Config{MaxConcurrent: 25, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, MinConcurrent: 10, Clock: s.clock}}
	if err := s.b.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if got := [...]int{s.b.Limit(), s.b.MinConcurrent(), s.b.MaxConcurrent(), s.b.InFlight()}; got != [...]int{25, 10, 25, 30} {
		t.Fatalf("limit, min, max, in flight = %v, want [25 10 25 30]", got)
	}
	if s.b.Algorithm() != bulkhead.AIMD {
		t.Errorf("algorithm %q, want aimd", s.b.Algorithm())
	}
	if _, ok := s.b.TryAcquire(); ok {
		t.Error("admitted above the clamped limit")
	}
	for _, p := range held {
		p.Release(nil)
	}
	// Static again: the limit is MaxConcurrent.
	if err := s.b.Update(bulkhead.Config{MaxConcurrent: 7}); err != nil {
		t.Fatal(err)
	}
	if got := [...]int{s.b.Limit(), s.b.MinConcurrent(), s.b.MaxConcurrent(), s.b.InFlight()}; got != [...]int{7, 7, 7, 0} || s.b.Algorithm() != bulkhead.Static {
		t.Errorf("limit, min, max, in flight = %v (%q), want [7 7 7 0] static", got, s.b.Algorithm())
	}
	// A static bulkhead that becomes adaptive starts from its limit.
	if err := s.b.Update(bulkhead.Config{MaxConcurrent: 100, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.Vegas}}); err != nil {
		t.Fatal(err)
	}
	if got := s.b.Limit(); got != 7 {
		t.Errorf("limit %d after becoming adaptive, want 7", got)
	}
	// Resize moves the upper bound and clamps.
	if err := s.b.Resize(5, 0); err != nil || s.b.Limit() != 5 || s.b.MaxConcurrent() != 5 {
		t.Errorf("Resize(5, 0) = %v, limit %d, max %d", err, s.b.Limit(), s.b.MaxConcurrent())
	}
	if err := s.b.Update(bulkhead.Config{MaxConcurrent: 5, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, MinConcurrent: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := s.b.Resize(2, 0); err == nil {
		t.Error("Resize below MinConcurrent accepted")
	}
}

// TestAdaptiveQueueFollowsTheLimit: callers queued behind a full adaptive
// bulkhead are admitted as the limit grows, and MaxWait still refuses them.
func TestAdaptiveQueueFollowsTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := spillway.NewManualClock(0)
		b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 10, MaxWaiting: 5, MaxWait: time.Minute,
			Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, InitialLimit: 2, MinConcurrent: 2, Clock: clock}})
		a, _ := b.Acquire(t.Context())
		c, _ := b.Acquire(t.Context())
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for range 3 {
			wg.Go(func() {
				p, err := b.Acquire(t.Context())
				errs <- err
				if err == nil {
					time.Sleep(time.Hour) // hold the slot
					p.Release(nil)
				}
			})
		}
		synctest.Wait()
		if b.Waiting() != 3 {
			t.Fatalf("%d waiting, want 3", b.Waiting())
		}
		// Growing to 4 by an Update admits two waiters; the third waits on.
		if err := b.Update(bulkhead.Config{MaxConcurrent: 10, MaxWaiting: 5, MaxWait: time.Minute,
			Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, MinConcurrent: 4, Clock: clock}}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if b.InFlight() != 4 || b.Waiting() != 1 {
			t.Fatalf("in flight %d, waiting %d after growing to 4, want 4 and 1", b.InFlight(), b.Waiting())
		}
		time.Sleep(time.Minute) // MaxWait refuses the last one
		synctest.Wait()
		a.Release(nil)
		c.Release(nil)
		close(errs)
		var full int
		for err := range errs {
			if errors.Is(err, bulkhead.ErrFull) {
				full++
			}
		}
		if full != 1 || b.Rejected() != 1 {
			t.Errorf("%d refused (Rejected %d), want 1", full, b.Rejected())
		}
		wg.Wait()
	})
}

// TestAdaptiveNeverAdmitsPastTheLimit: whatever the sequence of admissions,
// releases (of any outcome), clock moves and updates, a call is admitted
// only while fewer than Limit calls are in flight, and the limit stays in
// its bounds.
func TestAdaptiveNeverAdmitsPastTheLimit(t *testing.T) {
	outcomes := []error{nil, errTimeout, errors.New("boom"), spillway.CallerDone(errTimeout)}
	rapid.Check(t, func(rt *rapid.T) {
		clock := spillway.NewManualClock(0)
		adaptive := func() bulkhead.Adaptive {
			return bulkhead.Adaptive{
				Algorithm:     rapid.SampledFrom(bulkhead.Algorithms).Draw(rt, "algorithm"),
				MinConcurrent: rapid.IntRange(1, 5).Draw(rt, "min"), Clock: clock,
				MinSamples: rapid.IntRange(1, 5).Draw(rt, "samples"), Window: time.Millisecond,
			}
		}
		b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: rapid.IntRange(5, 40).Draw(rt, "max"), Adaptive: adaptive()})
		var held []spillway.Permit
		rt.Repeat(map[string]func(*rapid.T){
			"acquire": func(rt *rapid.T) {
				before, limit := b.InFlight(), b.Limit()
				p, ok := b.TryAcquire()
				if ok && before >= limit {
					rt.Fatalf("admitted with %d in flight at limit %d", before, limit)
				}
				if !ok && before < limit {
					rt.Fatalf("refused with %d in flight under limit %d", before, limit)
				}
				if ok {
					held = append(held, p)
				}
			},
			"release": func(rt *rapid.T) {
				if len(held) == 0 {
					rt.Skip()
				}
				i := rapid.IntRange(0, len(held)-1).Draw(rt, "i")
				held[i].Release(rapid.SampledFrom(outcomes).Draw(rt, "outcome"))
				held = append(held[:i], held[i+1:]...)
			},
			"advance": func(rt *rapid.T) {
				clock.Advance(time.Duration(rapid.IntRange(1, 50).Draw(rt, "ms")) * time.Millisecond)
			},
			"update": func(rt *rapid.T) {
				cfg := bulkhead.Config{MaxConcurrent: rapid.IntRange(5, 40).Draw(rt, "max")}
				if rapid.Bool().Draw(rt, "adaptive") {
					cfg.Adaptive = adaptive()
				}
				if err := b.Update(cfg); err != nil {
					rt.Fatal(err)
				}
			},
			"": func(rt *rapid.T) {
				if l := b.Limit(); l < b.MinConcurrent() || l > b.MaxConcurrent() {
					rt.Fatalf("limit %d outside [%d, %d]", l, b.MinConcurrent(), b.MaxConcurrent())
				}
				if b.InFlight() != len(held) {
					rt.Fatalf("in flight %d, held %d", b.InFlight(), len(held))
				}
			},
		})
	})
}

// TestAdaptiveConcurrentReleases runs admissions, releases and window
// closes from many goroutines under the race detector.
func TestAdaptiveConcurrentReleases(t *testing.T) {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 50,
		Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.Gradient2, Window: time.Microsecond, MinSamples: 1}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				if err := b.Execute(t.Context(), func(context.Context) error { return nil }); err != nil && !errors.Is(err, bulkhead.ErrFull) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if b.InFlight() != 0 {
		t.Errorf("in flight %d after every call returned", b.InFlight())
	}
}

// TestAdaptiveUpdateOfTheQueueKeepsLearning: an Update that changes only
// the queue leaves the adaptive limit where it was.
func TestAdaptiveUpdateOfTheQueueKeepsLearning(t *testing.T) {
	s := newSim(t, bulkhead.Config{MaxConcurrent: 200, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD}})
	s.rounds(50, 1000, 10*time.Millisecond, nil) // 5 windows: 25
	cfg := bulkhead.Config{MaxConcurrent: 200, MaxWaiting: 10, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, Clock: s.clock}}
	if err := s.b.Update(cfg); err != nil {
		t.Fatal(err)
	}
	s.rounds(10, 1000, 10*time.Millisecond, nil)
	if got := s.b.Limit(); got != 26 || s.b.MaxWaiting() != 10 {
		t.Errorf("limit %d, max waiting %d after a queue-only Update and one more window, want 26 and 10", got, s.b.MaxWaiting())
	}
}

// TestAdaptiveExecuteReleasesWithTheOutcome: Execute and Do hand the call's
// error to the limit (a timeout is a drop), and a panic is no sample.
func TestAdaptiveExecuteReleasesWithTheOutcome(t *testing.T) {
	s := newSim(t, bulkhead.Config{MaxConcurrent: 50, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, MinSamples: 1}})
	for range 10 {
		func() {
			defer func() { _ = recover() }()
			_ = s.b.Execute(t.Context(), func(context.Context) error { s.clock.Advance(20 * time.Millisecond); panic("boom") })
		}()
	}
	if s.b.Limit() != 20 || s.b.InFlight() != 0 {
		t.Fatalf("limit %d, in flight %d after panics, want 20 and 0", s.b.Limit(), s.b.InFlight())
	}
	for range 10 {
		_, _ = bulkhead.Do(t.Context(), s.b, func(context.Context) (int, error) {
			s.clock.Advance(20 * time.Millisecond)
			return 0, errTimeout
		})
	}
	if got := s.b.Limit(); got >= 20 {
		t.Errorf("limit %d after timeouts through Do, want below 20", got)
	}
}
