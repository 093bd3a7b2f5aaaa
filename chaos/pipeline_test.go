package chaos_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/chaos"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

func ok(context.Context) (string, error) { return "real", nil }

// sequence returns the draws given, then 0.99 (no injection below that).
func sequence(draws ...float64) func() float64 {
	return func() float64 {
		if len(draws) == 0 {
			return 0.99
		}
		d := draws[0]
		draws = draws[1:]
		return d
	}
}

// TestInjectedErrorsOpenTheBreaker: the breaker counts injected errors as
// it counts real ones, then fails fast without running the call.
func TestInjectedErrorsOpenTheBreaker(t *testing.T) {
	br := breaker.MustNew(breaker.Config{Name: "db", ConsecutiveFailures: 3})
	fault := chaos.Must(chaos.NewFault[string](chaos.Config{Enabled: true, Rate: 1}, nil))
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Breaker: br, Chaos: []spillway.Injector[string]{fault}})
	calls := 0
	fn := func(context.Context) (string, error) { calls++; return "real", nil }
	for i := range 3 {
		if _, err := pl.Execute(context.Background(), fn); !errors.Is(err, chaos.ErrInjected) {
			t.Fatalf("call %d: %v, want the injected fault", i, err)
		}
	}
	fault.SetEnabled(false)
	if _, err := pl.Execute(context.Background(), fn); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("after 3 injected faults: %v, want the breaker open", err)
	}
	if calls != 0 {
		t.Fatalf("the call ran %d times", calls)
	}
}

// TestInjectedErrorsAreRetried: the retry policy retries an injected
// error; the next attempt, not picked, runs the call.
func TestInjectedErrorsAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rp := retry.MustNew(retry.Config{MaxAttempts: 3, Initial: time.Millisecond, Jitter: retry.NoJitter, NoBudget: true})
		fault := chaos.Must(chaos.NewFault[string](chaos.Config{Enabled: true, Rate: 0.5, Rand: sequence(0.1)}, nil))
		pl := spillway.MustNewPipeline(spillway.Policies[string]{Retry: rp, Chaos: []spillway.Injector[string]{fault}})
		r := pl.ExecuteResult(t.Context(), ok)
		if r.Err != nil || r.Value != "real" || r.Attempts != 2 {
			t.Fatalf("result %+v, want real after 2 attempts", r)
		}
	})
}

// TestFallbackServesForAnInjectedError: the fallback replaces an injected
// error as it replaces a real one.
func TestFallbackServesForAnInjectedError(t *testing.T) {
	fb := fallback.MustNew(fallback.Config{}, fallback.Value("cache", "stale"))
	fault := chaos.Must(chaos.NewFault[string](chaos.Config{Enabled: true, Rate: 1}, nil))
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Fallback: fb, Chaos: []spillway.Injector[string]{fault}})
	r := pl.ExecuteResult(context.Background(), ok)
	if r.Err != nil || r.Value != "stale" || r.Fallback != "cache" || !errors.Is(r.Replaced, chaos.ErrInjected) {
		t.Fatalf("result %+v, want the fallback's value in place of the injected fault", r)
	}
}

// TestAttemptTimeoutCutsInjectedLatency: an injected latency runs under
// the attempt timeout, which cuts it short with its own error.
func TestAttemptTimeoutCutsInjectedLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		to := timeout.MustNew(timeout.Config{Name: "attempt", Duration: 100 * time.Millisecond})
		slow := chaos.Must(chaos.NewLatency[string](chaos.Config{Enabled: true, Rate: 1}, time.Hour))
		pl := spillway.MustNewPipeline(spillway.Policies[string]{Attempt: to, Chaos: []spillway.Injector[string]{slow}})
		start := time.Now()
		_, err := pl.Execute(t.Context(), ok)
		if !errors.Is(err, timeout.ErrTimeout) || time.Since(start) != 100*time.Millisecond {
			t.Fatalf("%v after %v, want the attempt timeout after 100ms", err, time.Since(start))
		}
	})
}

// TestSubstituteResultIsClassified: a substitute value is the pipeline's
// T, judged by Classify like a real one (here a failure that is retried),
// and several injectors run in order.
func TestSubstituteResultIsClassified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type resp struct{ Status int }
		unavailable := chaos.Must(chaos.NewOutcome(chaos.Config{Enabled: true, Rate: 0.5, Rand: sequence(0.1)},
			func(context.Context) (resp, error) { return resp{Status: 503}, nil }))
		slow := chaos.Must(chaos.NewLatency[resp](chaos.Config{Enabled: true, Rate: 1}, 10*time.Millisecond))
		rp := retry.MustNew(retry.Config{MaxAttempts: 2, Initial: time.Millisecond, Jitter: retry.NoJitter, NoBudget: true})
		errStatus := errors.New("status 503")
		pl := spillway.MustNewPipeline(spillway.Policies[resp]{Retry: rp, Chaos: []spillway.Injector[resp]{slow, unavailable},
			Classify: func(r resp) error {
				if r.Status >= 500 {
					return errStatus
				}
				return nil
			}})
		start := time.Now()
		r := pl.ExecuteResult(t.Context(), func(context.Context) (resp, error) { return resp{Status: 200}, nil })
		if r.Err != nil || r.Value.Status != 200 || r.Attempts != 2 {
			t.Fatalf("result %+v, want 200 after a substituted 503", r)
		}
		if got := time.Since(start); got != 21*time.Millisecond {
			t.Fatalf("took %v, want 2 latencies and a 1ms backoff", got)
		}
	})
}

func TestTypedNilInjectorIsRefused(t *testing.T) {
	var p *chaos.Policy[string]
	if _, err := spillway.NewPipeline(spillway.Policies[string]{Chaos: []spillway.Injector[string]{p}}); err == nil {
		t.Fatal("a nil *chaos.Policy was accepted")
	}
}

// switched is an injector whose Inject must not be called while its switch
// is off: the Engine reads the switch itself.
type switched struct {
	on    atomic.Bool
	calls int
}

func (s *switched) Switch() *atomic.Bool { return &s.on }
func (s *switched) Inject(context.Context) (v string, replaced bool, err error) {
	s.calls++
	return v, false, nil
}

func TestEngineSkipsASwitchedOffInjector(t *testing.T) {
	in := &switched{}
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Chaos: []spillway.Injector[string]{in}})
	if _, err := pl.Execute(context.Background(), ok); err != nil || in.calls != 0 {
		t.Fatalf("switched off: err %v, %d calls", err, in.calls)
	}
	in.on.Store(true)
	if _, err := pl.Execute(context.Background(), ok); err != nil || in.calls != 1 {
		t.Fatalf("switched on: err %v, %d calls", err, in.calls)
	}
}

// TestPanickingBehaviorReleasesThePermits: an injected behaviour runs
// inside the attempt, so a panic in it releases the bulkhead's slot like a
// panic in the call.
func TestPanickingBehaviorReleasesThePermits(t *testing.T) {
	bh := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1})
	boom := chaos.Must(chaos.NewBehavior[string](chaos.Config{Enabled: true, Rate: 1}, func(context.Context) error { panic("boom") }))
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Bulkhead: bh, Chaos: []spillway.Injector[string]{boom}})
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the behaviour's panic", r)
			}
		}()
		_, _ = pl.Execute(context.Background(), ok)
	}()
	if n := bh.InFlight(); n != 0 {
		t.Fatalf("%d bulkhead slots held after the panic", n)
	}
}
