package spillway_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

// These tests run the standard pipeline over the real policies, so that the
// order documented in doc.go and docs/architecture.md is checked end to end
// and not only against the fake policies of pipeline_test.go. Anything timed
// runs in a synctest bubble, where durations are exact; a breaker's time is a
// ManualClock where the test has to move it by hand.

// eventLog is an Observer that keeps every event it receives.
type eventLog struct {
	mu     sync.Mutex
	events []spillway.Event
}

func (l *eventLog) Observe(e spillway.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// of returns the events of kind k, in the order they came.
func (l *eventLog) of(k spillway.EventKind) []spillway.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []spillway.Event
	for _, e := range l.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// transitions returns the breaker transitions seen, as "from->to".
func (l *eventLog) transitions() string {
	var s []string
	for _, e := range l.of(spillway.EventTransition) {
		s = append(s, e.From+"->"+e.To)
	}
	return strings.Join(s, ",")
}

// quietBreaker is a breaker that records outcomes but does not open within a
// test's few calls, for tests that look at what it counts.
func quietBreaker() *breaker.Breaker {
	return breaker.MustNew(breaker.Config{Name: "quiet", MinCalls: 1000, WindowSize: 1000})
}

func policyError(t *testing.T, err error) *spillway.Error {
	t.Helper()
	e, ok := errors.AsType[*spillway.Error](err)
	if !ok {
		t.Fatalf("error %v (%T) carries no *spillway.Error", err, err)
	}
	return e
}

// deadlineBlindRetrier is the real retry policy made blind to the deadline:
// it computes its backoff as if the context had none, as a retrier that
// does not read deadlines would. It lets a test reach the pipeline's
// handling of a total timeout that ends a backoff, which the real policy
// never lets happen.
type deadlineBlindRetrier struct{ *retry.Policy }

func (r deadlineBlindRetrier) Next(ctx context.Context, s spillway.RetryState, err error) (spillway.RetryState, time.Duration, error) {
	return r.Policy.Next(context.WithoutCancel(ctx), s, err)
}

func TestIntegrationTotalTimeout(t *testing.T) {
	const total = time.Second
	newPipeline := func(r spillway.Retrier, cb *breaker.Breaker) *spillway.Pipeline[string] {
		tt := timeout.MustNew(timeout.Config{Name: "total", Duration: total})
		// Below the total, as NewPipeline requires of a pipeline that
		// retries, but long enough never to fire first here: the one attempt
		// that blocks starts at .3s and would end at 1.2s.
		at := timeout.MustNew(timeout.Config{Name: "attempt", Duration: 900 * time.Millisecond})
		return spillway.MustNewPipeline(spillway.Policies[string]{Total: tt, Retry: r, Breaker: cb, Attempt: at})
	}
	// Backoffs of 100, 200, 400 and 800ms: attempts start at 0, .1, .3 and .7s.
	backoff := retry.Config{MaxAttempts: 10, Jitter: retry.NoJitter, Initial: 100 * time.Millisecond}

	t.Run("ends an attempt in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cb := quietBreaker()
			pl := newPipeline(retry.MustNew(backoff), cb)
			var calls int
			var last error
			start := time.Now()
			res := pl.ExecuteResult(context.Background(), func(ctx context.Context) (string, error) {
				calls++
				if calls < 3 {
					return "", errDown
				}
				<-ctx.Done()
				last = fmt.Errorf("attempt %d: %w", calls, ctx.Err())
				return "", last
			})
			if elapsed := time.Since(start); elapsed != total {
				t.Errorf("the execution took %v, want the total timeout %v", elapsed, total)
			}
			if res.Attempts != 3 || calls != 3 {
				t.Errorf("Attempts = %d after %d calls, want 3: an execution past its total timeout is not retried", res.Attempts, calls)
			}
			err := res.Err
			if r := spillway.ReasonOf(err); r != spillway.ReasonDeadlineExceeded {
				t.Errorf("ReasonOf = %q, want deadline_exceeded", r)
			}
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, timeout.ErrTimeout) {
				t.Errorf("%v must match context.DeadlineExceeded and timeout.ErrTimeout", err)
			}
			if e := policyError(t, err); e.Policy != "timeout" || e.Name != "total" || e.Cause != last {
				t.Errorf("error = %+v, want the total timeout's with the cut attempt's error %v as Cause", e, last)
			}
			// A downstream too slow to answer within the total is failing:
			// the cut attempt is the third failure the breaker counts.
			if s := cb.Snapshot(); s.Calls != 3 || s.Failures != 3 {
				t.Errorf("breaker counted %d calls, %d failures; want 3 and 3", s.Calls, s.Failures)
			}
		})
	})

	t.Run("is not outlived by a backoff", func(t *testing.T) {
		// The real retry policy reads the deadline and never starts a backoff
		// that would end past it: at .7s the next backoff (800ms) would, so it
		// stops at once with the attempts' own failure instead of sleeping
		// into the total timeout.
		synctest.Test(t, func(t *testing.T) {
			pl := newPipeline(retry.MustNew(backoff), quietBreaker())
			var calls int
			var last error
			start := time.Now()
			res := pl.ExecuteResult(context.Background(), func(ctx context.Context) (string, error) {
				calls++
				last = fmt.Errorf("attempt %d: %w", calls, errDown)
				return "", last
			})
			if elapsed := time.Since(start); elapsed != 700*time.Millisecond {
				t.Errorf("the execution took %v, want 700ms: no backoff may start that the total timeout would cut", elapsed)
			}
			if res.Attempts != 4 {
				t.Errorf("Attempts = %d, want 4", res.Attempts)
			}
			err := res.Err
			if !errors.Is(err, retry.ErrExhausted) || errors.Is(err, timeout.ErrTimeout) {
				t.Errorf("%v: want retry.ErrExhausted, not a timeout", err)
			}
			if r := spillway.ReasonOf(err); r != spillway.ReasonUpstreamError {
				t.Errorf("ReasonOf = %q, want upstream_error (the last attempt's reason)", r)
			}
			if e := policyError(t, err); e.Policy != "retry" || e.Cause != last {
				t.Errorf("error = %+v, want the retry's with the last attempt's error %v as Cause", e, last)
			}
		})
	})

	t.Run("ends a backoff of a retrier blind to deadlines", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pl := newPipeline(deadlineBlindRetrier{retry.MustNew(backoff)}, quietBreaker())
			var calls int
			var last error
			start := time.Now()
			res := pl.ExecuteResult(context.Background(), func(ctx context.Context) (string, error) {
				calls++
				last = fmt.Errorf("attempt %d: %w", calls, errDown)
				return "", last
			})
			if elapsed := time.Since(start); elapsed != total {
				t.Errorf("the execution took %v, want the total timeout %v", elapsed, total)
			}
			if res.Attempts != 4 || calls != 4 {
				t.Errorf("Attempts = %d after %d calls, want 4: the fifth would have started after the deadline", res.Attempts, calls)
			}
			err := res.Err
			if r := spillway.ReasonOf(err); r != spillway.ReasonDeadlineExceeded {
				t.Errorf("ReasonOf = %q, want deadline_exceeded", r)
			}
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, timeout.ErrTimeout) || !errors.Is(err, errDown) {
				t.Errorf("%v must match context.DeadlineExceeded, timeout.ErrTimeout and the downstream's error", err)
			}
			if e := policyError(t, err); e.Policy != "timeout" || e.Name != "total" || e.Cause != last {
				t.Errorf("error = %+v, want the total timeout's with the last attempt's error %v as Cause", e, last)
			}
		})
	})
}

func TestIntegrationAttemptTimeoutIsRetriedAndCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cb := quietBreaker()
		log := &eventLog{}
		r := retry.MustNew(retry.Config{MaxAttempts: 3, Jitter: retry.NoJitter, Initial: 10 * time.Millisecond, Observer: log})
		total := timeout.MustNew(timeout.Config{Name: "total", Duration: 10 * time.Second})
		attempt := timeout.MustNew(timeout.Config{Name: "attempt", Duration: 100 * time.Millisecond})
		pl := spillway.MustNewPipeline(spillway.Policies[string]{Total: total, Retry: r, Breaker: cb, Attempt: attempt})

		calls := 0
		start := time.Now()
		res := pl.ExecuteResult(context.Background(), func(ctx context.Context) (string, error) {
			calls++
			if calls == 1 {
				<-ctx.Done() // a downstream that hangs
				return "", ctx.Err()
			}
			return "ok", nil
		})
		if res.Value != "ok" || res.Err != nil || res.Attempts != 2 {
			t.Fatalf("result %+v, want ok after 2 attempts", res)
		}
		if elapsed := time.Since(start); elapsed != 110*time.Millisecond {
			t.Errorf("took %v, want 110ms: the attempt timeout, then a 10ms backoff", elapsed)
		}
		retries := log.of(spillway.EventRetry)
		if len(retries) != 1 || !errors.Is(retries[0].Err, timeout.ErrTimeout) ||
			spillway.ReasonOf(retries[0].Err) != spillway.ReasonDeadlineExceeded {
			t.Errorf("retry events %+v, want one for the attempt's timeout", retries)
		}
		if s := cb.Snapshot(); s.Calls != 2 || s.Failures != 1 {
			t.Errorf("breaker counted %d calls, %d failures; want 2 and 1 (the timed-out attempt)", s.Calls, s.Failures)
		}

		// When every attempt times out the retry gives up with the timeout's reason.
		res = pl.ExecuteResult(context.Background(), func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		})
		if res.Attempts != 3 || !errors.Is(res.Err, retry.ErrExhausted) || !errors.Is(res.Err, timeout.ErrTimeout) ||
			spillway.ReasonOf(res.Err) != spillway.ReasonDeadlineExceeded {
			t.Errorf("result %+v: want retries exhausted after 3 attempts, reason deadline_exceeded", res)
		}
		if s := cb.Snapshot(); s.Calls != 5 || s.Failures != 4 {
			t.Errorf("breaker counted %d calls, %d failures; want 5 and 4", s.Calls, s.Failures)
		}
	})
}

func TestIntegrationCallerCancellationIsNeitherRetriedNorCounted(t *testing.T) {
	// newPipeline returns the standard pipeline over a breaker whose window
	// already holds a success and a failure, so that "unchanged" means something.
	newPipeline := func(t *testing.T) (*spillway.Pipeline[string], *breaker.Breaker, *eventLog) {
		cb := quietBreaker()
		log := &eventLog{}
		fb := fallback.MustNew(fallback.Config{}, fallback.Value("stale", "stale"))
		r := retry.MustNew(retry.Config{MaxAttempts: 5, Jitter: retry.NoJitter, Initial: 100 * time.Millisecond, Observer: log})
		total := timeout.MustNew(timeout.Config{Name: "total", Duration: 10 * time.Second})
		attempt := timeout.MustNew(timeout.Config{Name: "attempt", Duration: time.Second})
		pl := spillway.MustNewPipeline(spillway.Policies[string]{Fallback: fb, Total: total, Retry: r, Breaker: cb, Attempt: attempt})
		for _, err := range []error{nil, errDown} {
			p, aerr := cb.Acquire(context.Background())
			if aerr != nil {
				t.Fatal(aerr)
			}
			p.Release(err)
		}
		return pl, cb, log
	}

	t.Run("during an attempt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pl, cb, log := newPipeline(t)
			before := cb.Snapshot()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			res := pl.ExecuteResult(ctx, func(actx context.Context) (string, error) {
				calls++
				cancel() // the caller goes away while the downstream works
				<-actx.Done()
				return "", actx.Err()
			})
			if calls != 1 || res.Attempts != 1 || len(log.of(spillway.EventRetry)) != 0 {
				t.Errorf("%d calls, %d attempts, %d retries: a cancellation is never retried", calls, res.Attempts, len(log.of(spillway.EventRetry)))
			}
			if !errors.Is(res.Err, context.Canceled) || spillway.ReasonOf(res.Err) != spillway.ReasonCanceled || res.Fallback != "" {
				t.Errorf("result %+v: want context.Canceled, reason canceled, no fallback for a caller that is gone", res)
			}
			if after := cb.Snapshot(); after != before {
				t.Errorf("the breaker counted a cancellation:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	})

	t.Run("during a backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pl, cb, _ := newPipeline(t)
			before := cb.Snapshot()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			res := pl.ExecuteResult(ctx, func(context.Context) (string, error) {
				calls++
				time.AfterFunc(50*time.Millisecond, cancel) // halfway through the 100ms backoff
				return "", errDown
			})
			if calls != 1 || res.Attempts != 1 {
				t.Errorf("%d calls, %d attempts: nothing may start after the caller is gone", calls, res.Attempts)
			}
			if !errors.Is(res.Err, context.Canceled) || res.Fallback != "" {
				t.Errorf("result %+v: want context.Canceled and no fallback", res)
			}
			// The attempt's own failure counts; the cancellation adds nothing.
			after := cb.Snapshot()
			if after.Calls != before.Calls+1 || after.Failures != before.Failures+1 {
				t.Errorf("breaker went from %d calls/%d failures to %d/%d, want one more failed call",
					before.Calls, before.Failures, after.Calls, after.Failures)
			}
		})
	})
}

// spillway.IsCallerDone documents that the caller's own deadline, like its
// cancellation, is "never retried and never counted as failures by a breaker".
func TestIntegrationCallerDeadlineIsNeitherRetriedNorCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cb := quietBreaker()
		r := retry.MustNew(retry.Config{MaxAttempts: 5, Jitter: retry.NoJitter, Initial: time.Millisecond})
		attempt := timeout.MustNew(timeout.Config{Name: "attempt", Duration: time.Second})
		pl := spillway.MustNewPipeline(spillway.Policies[string]{Retry: r, Breaker: cb, Attempt: attempt})
		before := cb.Snapshot()

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		calls := 0
		res := pl.ExecuteResult(ctx, func(actx context.Context) (string, error) {
			calls++
			<-actx.Done()
			return "", actx.Err()
		})
		if calls != 1 {
			t.Errorf("%d calls: the caller's deadline is never retried", calls)
		}
		if !spillway.IsCallerDone(ctx, res.Err) || errors.Is(res.Err, timeout.ErrTimeout) {
			t.Errorf("%v: want the caller's own deadline, not the attempt timeout", res.Err)
		}
		if after := cb.Snapshot(); after != before {
			t.Errorf("the breaker counted the caller's deadline as a failure of the downstream:\nbefore %+v\nafter  %+v", before, after)
		}
	})
}

func TestIntegrationOpenBreakerStopsTheRetryLoop(t *testing.T) {
	const openFor = 30 * time.Second
	tests := []struct {
		name string
		// prepare brings the breaker to the state the case starts from.
		prepare                func(*breaker.Breaker)
		wantCalls, wantRetries int
		wantElapsed            time.Duration
	}{
		{
			name:      "open before the execution: refused before the downstream",
			prepare:   func(cb *breaker.Breaker) { _ = cb.TransitionTo(breaker.Open) },
			wantCalls: 0, wantRetries: 0, wantElapsed: 0,
		},
		{
			// MinCalls 1: the first failure trips it. The retry scheduled
			// before that is the only backoff; the rejection ends the loop.
			name:      "opened by the first attempt: the retry is refused and not retried",
			prepare:   func(*breaker.Breaker) {},
			wantCalls: 1, wantRetries: 1, wantElapsed: 100 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		for _, withFallback := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fallback=%v", tt.name, withFallback), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					clock := spillway.NewManualClock(0)
					cb := breaker.MustNew(breaker.Config{Name: "catalog", MinCalls: 1, OpenFor: openFor, Clock: clock})
					bh := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1})
					log := &eventLog{}
					r := retry.MustNew(retry.Config{MaxAttempts: 5, Jitter: retry.NoJitter, Initial: 100 * time.Millisecond, Observer: log})
					var fb spillway.Fallbacker[string]
					if withFallback {
						fb = fallback.MustNew(fallback.Config{}, fallback.Step[string]{
							Name: "stale-cache", When: fallback.OnReasons(spillway.ReasonBreakerOpen),
							Fn: func(context.Context, error) (string, error) { return "stale", nil },
						})
					}
					pl := spillway.MustNewPipeline(spillway.Policies[string]{Fallback: fb, Retry: r, Breaker: cb, Bulkhead: bh})
					tt.prepare(cb)

					calls := 0
					start := time.Now()
					res := pl.ExecuteResult(context.Background(), func(context.Context) (string, error) {
						calls++
						return "", errDown
					})
					if elapsed := time.Since(start); elapsed != tt.wantElapsed {
						t.Errorf("took %v, want %v", elapsed, tt.wantElapsed)
					}
					if calls != tt.wantCalls || res.Attempts != tt.wantCalls {
						t.Errorf("%d calls, Attempts %d; want %d", calls, res.Attempts, tt.wantCalls)
					}
					if n := len(log.of(spillway.EventRetry)); n != tt.wantRetries {
						t.Errorf("%d retries scheduled, want %d", n, tt.wantRetries)
					}
					if bh.InFlight() != 0 {
						t.Errorf("bulkhead InFlight = %d after the execution", bh.InFlight())
					}
					if withFallback {
						if res.Err != nil || res.Value != "stale" || res.Fallback != "stale-cache" {
							t.Errorf("result %+v, want the stale-cache fallback to serve", res)
						}
						return
					}
					if spillway.ReasonOf(res.Err) != spillway.ReasonBreakerOpen || !errors.Is(res.Err, breaker.ErrOpen) || res.Fallback != "" {
						t.Errorf("result %+v, want the breaker's rejection", res)
					}
					if d, ok := spillway.RetryAfterOf(res.Err); !ok || d != openFor {
						t.Errorf("RetryAfterOf = %v, %v; want the open duration %v", d, ok, openFor)
					}
				})
			})
		}
	}
}

func TestIntegrationBulkheadRejectionIsNeitherCountedNorRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cb := quietBreaker()
		bh := bulkhead.MustNew(bulkhead.Config{Name: "reports", MaxConcurrent: 1})
		log := &eventLog{}
		r := retry.MustNew(retry.Config{MaxAttempts: 5, Jitter: retry.NoJitter, Initial: 100 * time.Millisecond, Observer: log})
		pl := spillway.MustNewPipeline(spillway.Policies[int]{Retry: r, Breaker: cb, Bulkhead: bh})
		ctx := context.Background()

		// Put a failure and a success in the breaker's window.
		calls := 0
		flaky := func(context.Context) (int, error) {
			calls++
			if calls == 1 {
				return 0, errDown
			}
			return calls, nil
		}
		if res := pl.ExecuteResult(ctx, flaky); res.Err != nil || res.Attempts != 2 {
			t.Fatalf("warm-up: %+v", res)
		}
		before, retriesBefore := cb.Snapshot(), len(log.of(spillway.EventRetry))

		hold, err := bh.Acquire(ctx) // someone else has the only slot
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res := pl.ExecuteResult(ctx, flaky)
		hold.Release(nil)

		if calls != 2 || res.Attempts != 0 {
			t.Errorf("the downstream was called (%d calls, Attempts %d) although the bulkhead was full", calls, res.Attempts)
		}
		if spillway.ReasonOf(res.Err) != spillway.ReasonBulkheadFull || !errors.Is(res.Err, bulkhead.ErrFull) {
			t.Errorf("err = %v, want the bulkhead's rejection", res.Err)
		}
		if elapsed, n := time.Since(start), len(log.of(spillway.EventRetry))-retriesBefore; elapsed != 0 || n != 0 || bh.Rejected() != 1 {
			t.Errorf("took %v with %d retries and %d rejections: a full bulkhead is never retried", elapsed, n, bh.Rejected())
		}
		if after := cb.Snapshot(); after != before {
			t.Errorf("the breaker counted the bulkhead's rejection:\nbefore %+v\nafter  %+v", before, after)
		}
		if bh.InFlight() != 0 {
			t.Errorf("bulkhead InFlight = %d, want 0", bh.InFlight())
		}
	})
}

func TestIntegrationSharedRetryBudgetBoundsAnOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			requests    = 200
			ratio       = 0.2
			floor       = 10 // MinPerSecond 1 × a 10s window
			maxAttempts = 5
			workers     = 20
		)
		// A clock that stands still: the whole outage falls in one window,
		// so nothing expires and the bound is exact.
		clock := spillway.NewManualClock(0)
		budget := retry.MustNewBudget(retry.BudgetConfig{Ratio: ratio, Window: 10 * time.Second, MinPerSecond: 1, Clock: clock})
		log := &eventLog{}
		policy := func(name string) *retry.Policy {
			return retry.MustNew(retry.Config{Name: name, MaxAttempts: maxAttempts, Jitter: retry.NoJitter,
				Initial: time.Millisecond, Budget: budget, Observer: log})
		}
		strs := spillway.MustNewPipeline(spillway.Policies[string]{Retry: policy("strings")})
		ints := spillway.MustNewPipeline(spillway.Policies[int]{Retry: policy("ints")})

		var downstream, refused, exhausted atomic.Int64
		check := func(err error) {
			switch {
			case errors.Is(err, retry.ErrBudgetExhausted):
				refused.Add(1)
				if spillway.ReasonOf(err) != spillway.ReasonBudgetExhausted || !errors.Is(err, errDown) {
					t.Errorf("budget refusal %v: want reason budget_exhausted and the downstream's error as cause", err)
				}
			case errors.Is(err, retry.ErrExhausted):
				exhausted.Add(1)
			default:
				t.Errorf("unexpected error %v", err)
			}
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for range requests / workers {
					if w%2 == 0 {
						_, err := strs.Execute(context.Background(), func(context.Context) (string, error) {
							downstream.Add(1)
							return "", errDown
						})
						check(err)
					} else {
						_, err := ints.Execute(context.Background(), func(context.Context) (int, error) {
							downstream.Add(1)
							return 0, errDown
						})
						check(err)
					}
				}
			})
		}
		wg.Wait()

		// Without the budget the outage would cost requests × maxAttempts = 1000 calls.
		bound := int64(requests*(1+ratio) + floor)
		if n := downstream.Load(); n > bound || n < requests+floor {
			t.Errorf("the downstream received %d calls for %d requests, want between %d (the floor spent) and %d", n, requests, requests+floor, bound)
		}
		if refused.Load() == 0 || refused.Load()+exhausted.Load() != requests {
			t.Errorf("%d refused by the budget, %d exhausted, want refusals among %d requests", refused.Load(), exhausted.Load(), requests)
		}
		if n := int64(len(log.of(spillway.EventRejection))); n != refused.Load() {
			t.Errorf("%d budget rejections reported, want %d", n, refused.Load())
		}
		t.Logf("%d requests: %d downstream calls (bound %d), %d refused by the budget", requests, downstream.Load(), bound, refused.Load())
		if rem := budget.Remaining(); rem >= 1 {
			t.Errorf("budget Remaining = %v after the outage, want < 1", rem)
		}
	})
}

func TestIntegrationRetryAfterHint(t *testing.T) {
	const backoff, maxDelay = 10 * time.Millisecond, 5 * time.Second
	tests := []struct {
		name         string
		hint, total  time.Duration // total 0: no total timeout
		wantWait     time.Duration
		wantAttempts int
	}{
		{"a hint longer than the backoff is waited for", 2 * time.Second, 0, 2 * time.Second, 2},
		{"a hint shorter than the backoff does not shorten it", time.Millisecond, 0, backoff, 2},
		{"a hint is capped at the backoff's Max", time.Minute, 0, maxDelay, 2},
		{"a hint that would outlive the total timeout ends the execution at once", 4 * time.Second, 3 * time.Second, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log := &eventLog{}
				r := retry.MustNew(retry.Config{MaxAttempts: 3, Jitter: retry.NoJitter, Initial: backoff, Max: maxDelay, Observer: log})
				var total spillway.Timeouter
				if tt.total > 0 {
					total = timeout.MustNew(timeout.Config{Name: "total", Duration: tt.total})
				}
				pl := spillway.MustNewPipeline(spillway.Policies[string]{Total: total, Retry: r, Breaker: quietBreaker(), Bulkhead: bulkhead.MustNew(bulkhead.Config{})})
				calls := 0
				start := time.Now()
				res := pl.ExecuteResult(context.Background(), func(context.Context) (string, error) {
					calls++
					if calls == 1 {
						return "", spillway.WithRetryAfter(fmt.Errorf("503: %w", errDown), tt.hint)
					}
					return "ok", nil
				})
				if elapsed := time.Since(start); elapsed != tt.wantWait {
					t.Errorf("took %v, want %v", elapsed, tt.wantWait)
				}
				if res.Attempts != tt.wantAttempts {
					t.Errorf("Attempts = %d, want %d", res.Attempts, tt.wantAttempts)
				}
				if tt.wantAttempts == 1 {
					if !errors.Is(res.Err, retry.ErrExhausted) || !errors.Is(res.Err, errDown) {
						t.Errorf("err = %v, want retries exhausted over the downstream's error", res.Err)
					}
					if d, ok := spillway.RetryAfterOf(res.Err); !ok || d != tt.hint {
						t.Errorf("RetryAfterOf = %v, %v: the hint must reach the caller, who can pass it on", d, ok)
					}
					return
				}
				if res.Err != nil || res.Value != "ok" {
					t.Errorf("result %+v, want ok", res)
				}
				if ev := log.of(spillway.EventRetry); len(ev) != 1 || ev[0].Delay != tt.wantWait {
					t.Errorf("retry events %+v, want one with Delay %v", ev, tt.wantWait)
				}
			})
		})
	}
}

func TestIntegrationPanicReleasesPermits(t *testing.T) {
	type setup struct {
		cb *breaker.Breaker
		bh *bulkhead.Bulkhead
		pl *spillway.Pipeline[int]
	}
	newSetup := func() setup {
		cb := breaker.MustNew(breaker.Config{Name: "db", MinCalls: 100, HalfOpenProbes: 1, OpenJitter: -1})
		bh := bulkhead.MustNew(bulkhead.Config{Name: "db", MaxConcurrent: 1})
		r := retry.MustNew(retry.Config{MaxAttempts: 3, Initial: time.Millisecond})
		fb := fallback.MustNew(fallback.Config{}, fallback.Value("zero", 0))
		return setup{cb, bh, spillway.MustNewPipeline(spillway.Policies[int]{Fallback: fb, Retry: r, Breaker: cb, Bulkhead: bh})}
	}
	// run executes fn and returns what it panicked with.
	run := func(pl *spillway.Pipeline[int], fn func(context.Context) (int, error)) (recovered any) {
		defer func() { recovered = recover() }()
		_, _ = pl.Execute(context.Background(), fn)
		return nil
	}
	boom := func(context.Context) (int, error) { panic("boom") }

	t.Run("closed breaker", func(t *testing.T) {
		s := newSetup()
		calls := 0
		r := run(s.pl, func(ctx context.Context) (int, error) { calls++; return boom(ctx) })
		if r != "boom" || calls != 1 {
			t.Fatalf("recovered %v after %d calls, want the panic itself, not retried nor replaced by the fallback", r, calls)
		}
		if s.bh.InFlight() != 0 {
			t.Errorf("bulkhead InFlight = %d after the panic, want 0", s.bh.InFlight())
		}
		if snap := s.cb.Snapshot(); snap.Calls != 1 || snap.Failures != 1 {
			t.Errorf("breaker counted %d calls, %d failures; want the panic as 1 failure", snap.Calls, snap.Failures)
		}
		// The only slot is free again.
		if v, err := s.pl.Execute(context.Background(), func(context.Context) (int, error) { return 7, nil }); v != 7 || err != nil {
			t.Errorf("after the panic Execute = %v, %v", v, err)
		}
	})

	t.Run("half-open probe", func(t *testing.T) {
		s := newSetup()
		_ = s.cb.TransitionTo(breaker.HalfOpen)
		if r := run(s.pl, boom); r != "boom" {
			t.Fatalf("recovered %v", r)
		}
		snap := s.cb.Snapshot()
		if snap.State != breaker.Open || snap.ProbesInFlight != 0 {
			t.Errorf("after a probe panicked: state %v with %d probes in flight, want open with none", snap.State, snap.ProbesInFlight)
		}
		if s.bh.InFlight() != 0 {
			t.Errorf("bulkhead InFlight = %d, want 0", s.bh.InFlight())
		}
	})

	t.Run("runtime.Goexit", func(t *testing.T) {
		s := newSetup()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = s.pl.Execute(context.Background(), func(context.Context) (int, error) {
				runtime.Goexit()
				return 0, nil
			})
		}()
		<-done
		if snap := s.cb.Snapshot(); s.bh.InFlight() != 0 || snap.Failures != 1 {
			t.Errorf("after Goexit: bulkhead InFlight %d, breaker failures %d; want 0 and 1", s.bh.InFlight(), snap.Failures)
		}
	})
}

// The contexts a pipeline derives for its timeouts must be cancelled however
// the execution ends: an uncancelled context keeps its timer and its place
// among its parent's children until the deadline (context.WithTimeout's doc).
func TestIntegrationPanicCancelsTheTimeoutContexts(t *testing.T) {
	hour := timeout.MustNew(timeout.Config{Name: "hour", Duration: time.Hour})
	tests := []struct {
		name string
		pl   *spillway.Pipeline[int]
	}{
		{"attempt timeout", spillway.MustNewPipeline(spillway.Policies[int]{Attempt: hour})},
		{"total timeout", spillway.MustNewPipeline(spillway.Policies[int]{Total: hour})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen context.Context
			if _, err := tt.pl.Execute(context.Background(), func(ctx context.Context) (int, error) { seen = ctx; return 1, nil }); err != nil {
				t.Fatal(err)
			}
			if seen.Err() == nil {
				t.Fatal("after a normal return the context fn ran with is still live")
			}
			func() {
				defer func() {
					if r := recover(); r != "boom" {
						t.Fatalf("recovered %v", r)
					}
				}()
				_, _ = tt.pl.Execute(context.Background(), func(ctx context.Context) (int, error) { seen = ctx; panic("boom") })
			}()
			if seen.Err() == nil {
				t.Error("after a panic the context fn ran with is still live: its CancelFunc is called only when fn returns")
			}
		})
	}
}

func TestIntegrationBreakerTripsAndRecovers(t *testing.T) {
	const openFor = 30 * time.Second
	type world struct {
		clock   *spillway.ManualClock
		cb      *breaker.Breaker
		log     *eventLog
		pl      *spillway.Pipeline[string]
		healthy bool
		calls   int
		// slow is how long each call takes on the breaker's clock.
		slow time.Duration
		fn   func(context.Context) (string, error)
	}
	newWorld := func() *world {
		w := &world{clock: spillway.NewManualClock(0), log: &eventLog{}}
		w.cb = breaker.MustNew(breaker.Config{Name: "catalog", WindowSize: 10, MinCalls: 5, FailureRate: 0.5,
			OpenFor: openFor, OpenJitter: -1, HalfOpenProbes: 2, ProbeTimeout: 5 * time.Second,
			Clock: w.clock, Observer: w.log})
		r := retry.MustNew(retry.Config{MaxAttempts: 3, Jitter: retry.NoJitter, Initial: 10 * time.Millisecond})
		fb := fallback.MustNew(fallback.Config{}, fallback.Step[string]{
			Name: "stale", When: fallback.OnReasons(spillway.ReasonBreakerOpen),
			Fn: func(context.Context, error) (string, error) { return "stale", nil },
		})
		w.pl = spillway.MustNewPipeline(spillway.Policies[string]{Fallback: fb, Retry: r, Breaker: w.cb, Bulkhead: bulkhead.MustNew(bulkhead.Config{})})
		w.fn = func(context.Context) (string, error) {
			w.calls++
			w.clock.Advance(w.slow)
			if !w.healthy {
				return "", errDown
			}
			return "fresh", nil
		}
		return w
	}

	type step struct {
		name         string
		before       func(*world)
		wantValue    string // "" with wantReason: the execution fails
		wantReason   spillway.Reason
		wantAttempts int
		wantCalls    int // downstream calls so far
		wantState    breaker.State
	}
	run := func(t *testing.T, w *world, steps []step) {
		t.Helper()
		for _, s := range steps {
			if s.before != nil {
				s.before(w)
			}
			res := w.pl.ExecuteResult(context.Background(), w.fn)
			if res.Value != s.wantValue || spillway.ReasonOf(res.Err) != s.wantReason || res.Attempts != s.wantAttempts {
				t.Errorf("%s: result %+v (reason %q), want value %q, reason %q, %d attempts",
					s.name, res, spillway.ReasonOf(res.Err), s.wantValue, s.wantReason, s.wantAttempts)
			}
			if w.calls != s.wantCalls {
				t.Errorf("%s: %d downstream calls so far, want %d", s.name, w.calls, s.wantCalls)
			}
			if st := w.cb.State(); st != s.wantState {
				t.Errorf("%s: breaker %v, want %v", s.name, st, s.wantState)
			}
		}
	}
	heal := func(w *world) { w.healthy = true }
	advance := func(d time.Duration) func(*world) { return func(w *world) { w.clock.Advance(d) } }

	t.Run("trips after MinCalls failures and closes after the probes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld()
			run(t, w, []step{
				{name: "three failed attempts stay below MinCalls", wantReason: spillway.ReasonUpstreamError, wantAttempts: 3, wantCalls: 3, wantState: breaker.Closed},
				{name: "the fifth failure trips it and the rejection ends the retry loop", wantValue: "stale", wantAttempts: 2, wantCalls: 5, wantState: breaker.Open},
				{name: "open: served stale without calling the downstream", wantValue: "stale", wantAttempts: 0, wantCalls: 5, wantState: breaker.Open},
				{name: "just before OpenFor ends: still open", before: advance(openFor - 1), wantValue: "stale", wantCalls: 5, wantState: breaker.Open},
				{name: "the first probe succeeds", before: func(w *world) { w.clock.Advance(1); heal(w) }, wantValue: "fresh", wantAttempts: 1, wantCalls: 6, wantState: breaker.HalfOpen},
				{name: "the second probe closes it", wantValue: "fresh", wantAttempts: 1, wantCalls: 7, wantState: breaker.Closed},
			})
			if got, want := w.log.transitions(), "closed->open,open->half_open,half_open->closed"; got != want {
				t.Errorf("transitions %s, want %s", got, want)
			}
			if s := w.cb.Snapshot(); s.Calls != 0 {
				t.Errorf("the breaker closed with %d calls in its window, want an empty window", s.Calls)
			}
		})
	})

	t.Run("a failed probe opens it again for longer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld()
			_ = w.cb.TransitionTo(breaker.Open)
			run(t, w, []step{
				// The failed probe reopens the breaker, which refuses the retry.
				{name: "the probe fails", before: advance(openFor), wantValue: "stale", wantAttempts: 1, wantCalls: 1, wantState: breaker.Open},
			})
			bare := spillway.MustNewPipeline(spillway.Policies[string]{Breaker: w.cb})
			res := bare.ExecuteResult(context.Background(), w.fn)
			if d, ok := spillway.RetryAfterOf(res.Err); !ok || d != 2*openFor || w.calls != 1 {
				t.Errorf("reopened: RetryAfter %v (%v), want %v (OpenFor × OpenBackoff 2)", d, ok, 2*openFor)
			}
			run(t, w, []step{
				{name: "still open after OpenFor", before: advance(openFor), wantValue: "stale", wantCalls: 1, wantState: breaker.Open},
				{name: "half-open after twice OpenFor: the probe succeeds", before: func(w *world) { advance(openFor)(w); heal(w) }, wantValue: "fresh", wantAttempts: 1, wantCalls: 2, wantState: breaker.HalfOpen},
				{name: "closed", wantValue: "fresh", wantAttempts: 1, wantCalls: 3, wantState: breaker.Closed},
			})
		})
	})

	t.Run("a probe slower than ProbeTimeout opens it again though it succeeded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWorld()
			w.healthy = true
			_ = w.cb.TransitionTo(breaker.Open)
			run(t, w, []step{
				{name: "the slow probe", before: func(w *world) { w.clock.Advance(openFor); w.slow = 5 * time.Second }, wantValue: "fresh", wantAttempts: 1, wantCalls: 1, wantState: breaker.Open},
			})
		})
	})
}

func TestIntegrationConcurrentPipelinesShareOnePolicySet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			limit      = 4
			goroutines = 16
			perG       = 200
		)
		transitions := &eventLog{}
		cb := breaker.MustNew(breaker.Config{Name: "shared", WindowSize: 50, MinCalls: 20, FailureRate: 0.3,
			OpenFor: 10 * time.Millisecond, MaxOpenFor: 40 * time.Millisecond, HalfOpenProbes: 2,
			ProbeTimeout: 10 * time.Millisecond, Observer: transitions})
		bh := bulkhead.MustNew(bulkhead.Config{Name: "shared", MaxConcurrent: limit, MaxWaiting: 8, MaxWait: time.Millisecond})
		r := retry.MustNew(retry.Config{Name: "shared", Initial: time.Millisecond, Max: 10 * time.Millisecond,
			Budget: retry.MustNewBudget(retry.BudgetConfig{})})
		total := timeout.MustNew(timeout.Config{Name: "total", Duration: 50 * time.Millisecond})
		attempt := timeout.MustNew(timeout.Config{Name: "attempt", Duration: 2100 * time.Microsecond})
		local := fallback.OnReasons(spillway.ReasonBreakerOpen, spillway.ReasonBulkheadFull)
		strs := spillway.MustNewPipeline(spillway.Policies[string]{
			Fallback: fallback.MustNew(fallback.Config{}, fallback.Step[string]{Name: "static", When: local,
				Fn: func(context.Context, error) (string, error) { return "default", nil }}),
			Total:    total,
			Retry:    r,
			Breaker:  cb,
			Bulkhead: bh,
			Attempt:  attempt,
		})
		ints := spillway.MustNewPipeline(spillway.Policies[int]{
			Fallback: fallback.MustNew(fallback.Config{}, fallback.Step[int]{Name: "static", When: local,
				Fn: func(context.Context, error) (int, error) { return -1, nil }}),
			Total:    total,
			Retry:    r,
			Breaker:  cb,
			Bulkhead: bh,
			Attempt:  attempt,
		})

		var active, maxActive, overLimit, calls, fallbacks, failures atomic.Int64
		// downstream takes 0 to 2.25ms, so that a tenth of the attempts
		// outlive the attempt timeout, and fails a tenth of the time: a
		// failure rate around the breaker's threshold, which trips it now
		// and then.
		downstream := func(ctx context.Context, n uint64) error {
			calls.Add(1)
			a := active.Add(1)
			defer active.Add(-1)
			for m := maxActive.Load(); a > m && !maxActive.CompareAndSwap(m, a); m = maxActive.Load() {
			}
			if bh.InFlight() > limit {
				overLimit.Add(1)
			}
			tm := time.NewTimer(time.Duration(n%10) * 250 * time.Microsecond)
			defer tm.Stop()
			select {
			case <-tm.C:
			case <-ctx.Done():
				return ctx.Err()
			}
			if n>>8%10 == 0 {
				return errDown
			}
			return nil
		}
		allowed := map[spillway.Reason]bool{
			spillway.ReasonUpstreamError: true, spillway.ReasonDeadlineExceeded: true, spillway.ReasonBudgetExhausted: true,
		}
		check := func(err error, attempts int, served string) {
			if attempts > 3 {
				t.Errorf("%d attempts, MaxAttempts is 3", attempts)
			}
			if err != nil && !allowed[spillway.ReasonOf(err)] {
				t.Errorf("unexpected error %v", err)
			}
			switch served {
			case "":
			case "static":
				fallbacks.Add(1)
			default:
				t.Errorf("served by %q", served)
			}
			if err != nil {
				failures.Add(1)
			}
		}
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 42))
				for range perG {
					// Think time between requests: the bubble's clock moves on,
					// so the breaker's open time passes and it probes again.
					time.Sleep(time.Duration(rng.IntN(4000)) * time.Microsecond)
					if g%2 == 0 {
						res := strs.ExecuteResult(context.Background(), func(ctx context.Context) (string, error) {
							return "v", downstream(ctx, rng.Uint64())
						})
						check(res.Err, res.Attempts, res.Fallback)
					} else {
						res := ints.ExecuteResult(context.Background(), func(ctx context.Context) (int, error) {
							return 1, downstream(ctx, rng.Uint64())
						})
						check(res.Err, res.Attempts, res.Fallback)
					}
				}
			})
		}
		wg.Wait()

		if m := maxActive.Load(); m > limit || overLimit.Load() != 0 {
			t.Errorf("%d calls ran at once (InFlight over the limit %d times), limit %d", m, overLimit.Load(), limit)
		}
		if bh.InFlight() != 0 || bh.Waiting() != 0 {
			t.Errorf("bulkhead InFlight %d, Waiting %d after every call returned; want 0 and 0", bh.InFlight(), bh.Waiting())
		}
		s := cb.Snapshot()
		if s.ProbesInFlight != 0 {
			t.Errorf("breaker has %d probes in flight after every call returned", s.ProbesInFlight)
		}
		t.Logf("%d executions: %d downstream calls, %d served by the fallback, %d failed; "+
			"breaker rejected %d and made %d transitions, bulkhead rejected %d",
			goroutines*perG, calls.Load(), fallbacks.Load(), failures.Load(),
			s.Rejected, len(transitions.of(spillway.EventTransition)), bh.Rejected())
	})
}

func TestIntegrationStandardPipelineAllocatesNothing(t *testing.T) {
	clock := spillway.NewManualClock(time.Hour)
	tests := []struct {
		name string
		cfg  breaker.Config
	}{
		{"count window", breaker.Config{}},
		{"count window with slow-call detection", breaker.Config{SlowCallDuration: time.Second, Clock: clock}},
		{"time window", breaker.Config{Window: breaker.TimeWindow, Clock: clock}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			budget := retry.MustNewBudget(retry.BudgetConfig{Clock: clock})
			r := retry.MustNew(retry.Config{Budget: budget})
			cb := breaker.MustNew(tt.cfg)
			bh := bulkhead.MustNew(bulkhead.Config{})
			fb := fallback.MustNew(fallback.Config{}, fallback.Value("zero", 0))
			pl := spillway.MustNewPipeline(spillway.Policies[int]{Fallback: fb, Retry: r, Breaker: cb, Bulkhead: bh})
			ctx := context.Background()
			fn := func(context.Context) (int, error) { return 1, nil }
			if n := testing.AllocsPerRun(1000, func() {
				if v, err := pl.Execute(ctx, fn); v != 1 || err != nil {
					panic(err)
				}
			}); n != 0 {
				t.Errorf("a successful Execute allocates %v times, want 0", n)
			}
		})
	}
}
