package retry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
	"github.com/spillway-dev/spillway/retry"
)

var errUpstream = errors.New("503 from upstream")

// failing returns a call that fails with the errors in order (the last one
// repeated) and counts its calls.
func failing(calls *int, errs ...error) func(context.Context) (int, error) {
	return func(context.Context) (int, error) {
		*calls++
		return *calls, errs[min(*calls, len(errs))-1]
	}
}

// events keeps the events policies report.
type events = spillwaytest.Recorder

func TestAttemptsIncludeTheFirst(t *testing.T) {
	tests := []struct {
		name        string
		maxAttempts int
		failures    int // the call succeeds after this many failures
		wantCalls   int
		wantErr     bool
	}{
		{"default is 3 attempts", 0, 100, 3, true},
		{"1 never retries", 1, 100, 1, true},
		{"2 retries once", 2, 100, 2, true},
		{"5 attempts", 5, 100, 5, true},
		{"success on the first attempt", 3, 0, 1, false},
		{"success on the last attempt", 3, 2, 3, false},
		{"success before the last attempt", 5, 1, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := retry.MustNew(retry.Config{MaxAttempts: tt.maxAttempts})
				calls := 0
				v, err := retry.Do(context.Background(), p, func(context.Context) (int, error) {
					calls++
					if calls <= tt.failures {
						return calls, errUpstream
					}
					return calls, nil
				})
				if calls != tt.wantCalls {
					t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
				}
				if v != calls {
					t.Errorf("Do returned %d, want the last attempt's value %d", v, calls)
				}
				if (err != nil) != tt.wantErr {
					t.Errorf("err = %v, want error: %v", err, tt.wantErr)
				}
			})
		})
	}
}

func TestBackoffTimingIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := retry.MustNew(retry.Config{MaxAttempts: 5, Jitter: retry.NoJitter, Initial: 100 * ms, Max: 500 * ms})
		start := time.Now()
		var at []time.Duration
		err := p.Run(context.Background(), func(context.Context) error {
			at = append(at, time.Since(start))
			return errUpstream
		})
		want := []time.Duration{0, 100 * ms, 300 * ms, 700 * ms, 1200 * ms}
		if fmt.Sprint(at) != fmt.Sprint(want) {
			t.Errorf("attempts started at %v, want %v", at, want)
		}
		if got := time.Since(start); got != 1200*ms {
			t.Errorf("Run returned after %v, want 1.2s: no sleep after the last attempt", got)
		}
		if !errors.Is(err, retry.ErrExhausted) {
			t.Errorf("err = %v, want ErrExhausted", err)
		}
	})
}

func TestContextDoneStopsAtOnce(t *testing.T) {
	cfg := retry.Config{MaxAttempts: 10, Jitter: retry.NoJitter, Initial: 100 * ms}
	t.Run("canceled during the backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(150*ms, cancel)
			start := time.Now()
			calls := 0
			_, err := retry.Do(ctx, retry.MustNew(cfg), failing(&calls, errUpstream))
			if got := time.Since(start); got != 150*ms {
				t.Errorf("Do returned after %v, want 150ms: the moment of the cancel", got)
			}
			if calls != 2 {
				t.Errorf("calls = %d, want 2 (at 0 and 100ms)", calls)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			time.Sleep(10 * time.Second)
			if calls != 2 {
				t.Errorf("calls = %d after Do returned", calls)
			}
		})
	})
	t.Run("canceled during an attempt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			calls := 0
			_, err := retry.Do(ctx, retry.MustNew(cfg), func(context.Context) (int, error) {
				calls++
				cancel()
				return 0, errUpstream
			})
			if time.Since(start) != 0 || calls != 1 {
				t.Errorf("Do returned after %v and %d calls, want at once after 1", time.Since(start), calls)
			}
			if err != errUpstream {
				t.Errorf("err = %v, want the attempt's error as it is", err)
			}
		})
	})
	t.Run("done before the first attempt", func(t *testing.T) {
		b := retry.MustNewBudget(retry.BudgetConfig{Ratio: 1, MinPerSecond: -1, Clock: spillway.NewManualClock(0)})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		calls := 0
		_, err := retry.Do(ctx, retry.MustNew(retry.Config{Budget: b}), failing(&calls, errUpstream))
		if calls != 0 || !errors.Is(err, context.Canceled) {
			t.Errorf("calls = %d, err = %v; want no call and context.Canceled", calls, err)
		}
		if got := b.Remaining(); got != 0 {
			t.Errorf("budget Remaining = %v: a call that never ran earned retries", got)
		}
	})
	t.Run("a total timeout during the backoff keeps the last error as its cause", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			total := &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "timeout", Err: errors.New("total timeout")}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			time.AfterFunc(150*ms, func() { cancel(total) })
			calls := 0
			_, err := retry.Do(ctx, retry.MustNew(cfg), failing(&calls, errUpstream))
			if !errors.Is(err, total.Err) || !errors.Is(err, errUpstream) {
				t.Errorf("err = %v, want the total timeout with the last error as its cause", err)
			}
			if total.Cause != nil {
				t.Error("the preallocated total timeout error was modified")
			}
		})
	})
}

func TestDeadlineAndMaxElapsedStopBeforeUselessSleep(t *testing.T) {
	tests := []struct {
		name       string
		timeout    time.Duration // of the context; 0 for none
		maxElapsed time.Duration
		wantCalls  int
		wantAt     time.Duration // when Do returns
	}{
		// Attempts at 0 and 100ms; the next would start at 300ms.
		{"deadline before the next attempt", 250 * ms, 0, 2, 100 * ms},
		{"deadline exactly at the next attempt", 300 * ms, 0, 2, 100 * ms},
		{"deadline just after the next attempt", 301 * ms, 0, 3, 300 * ms},
		{"MaxElapsed before the next attempt", 0, 250 * ms, 2, 100 * ms},
		{"MaxElapsed exactly at the next attempt", 0, 300 * ms, 2, 100 * ms},
		{"MaxElapsed just after the next attempt", 0, 301 * ms, 3, 300 * ms},
		{"neither: attempts run out", 0, 0, 4, 700 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				if tt.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.timeout)
					defer cancel()
				}
				p := retry.MustNew(retry.Config{MaxAttempts: 4, Jitter: retry.NoJitter, MaxElapsed: tt.maxElapsed})
				start := time.Now()
				calls := 0
				_, err := retry.Do(ctx, p, failing(&calls, errUpstream))
				if calls != tt.wantCalls {
					t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
				}
				if got := time.Since(start); got != tt.wantAt {
					t.Errorf("Do returned after %v, want %v", got, tt.wantAt)
				}
				if !errors.Is(err, retry.ErrExhausted) || !errors.Is(err, errUpstream) {
					t.Errorf("err = %v, want ErrExhausted wrapping the last error", err)
				}
			})
		})
	}
}

func TestMaxElapsedUsesTheClock(t *testing.T) {
	clock := spillway.NewManualClock(time.Hour)
	p := retry.MustNew(retry.Config{Jitter: retry.NoJitter, MaxElapsed: time.Second, Clock: clock, MaxAttempts: 10})
	s := p.Begin()
	if s.Start != int64(time.Hour) {
		t.Fatalf("Begin's Start = %d, want the clock reading", s.Start)
	}
	clock.Advance(850 * ms)
	s.Attempts = 1
	if _, d, stop := p.Next(context.Background(), s, errUpstream); stop != nil || d != 100*ms {
		t.Fatalf("at 850ms: delay %v, stop %v; want a 100ms retry", d, stop)
	}
	clock.Advance(100 * ms)
	s.Attempts = 2
	if _, _, stop := p.Next(context.Background(), s, errUpstream); !errors.Is(stop, retry.ErrExhausted) {
		t.Fatalf("at 950ms with a 200ms backoff: stop = %v, want ErrExhausted", stop)
	}

	if s := retry.MustNew(retry.Config{Clock: clock}).Begin(); s.Start != 0 {
		t.Errorf("Begin read the clock (Start = %d) without MaxElapsed", s.Start)
	}
}

func TestRetryAfterHint(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		maxRetryAfter time.Duration
		want          time.Duration
	}{
		{"no hint: the backoff", errUpstream, 0, 100 * ms},
		{"MaxRetryAfter raises the hint's cap above Max", spillway.WithRetryAfter(errUpstream, time.Minute), 300 * time.Second, time.Minute},
		{"MaxRetryAfter caps the hint", spillway.WithRetryAfter(errUpstream, time.Hour), 300 * time.Second, 300 * time.Second},
		{"a longer hint wins", spillway.WithRetryAfter(errUpstream, 2*time.Second), 0, 2 * time.Second},
		{"a hint beyond Max is capped by default", spillway.WithRetryAfter(errUpstream, time.Hour), 0, 5 * time.Second},
		{"a shorter hint leaves the backoff", spillway.WithRetryAfter(errUpstream, 10*ms), 0, 100 * ms},
		{"a negative hint is ignored", spillway.WithRetryAfter(errUpstream, -time.Second), 0, 100 * ms},
		{"a wrapped hint counts", fmt.Errorf("GET /items: %w", spillway.WithRetryAfter(errUpstream, 3*time.Second)), 0, 3 * time.Second},
		{"a policy error's RetryAfter counts", &spillway.Error{Code: spillway.ReasonUpstreamError, Policy: "http", RetryAfter: time.Second}, 0, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev events
			p := retry.MustNew(retry.Config{Jitter: retry.NoJitter, MaxRetryAfter: tt.maxRetryAfter, Observer: &ev})
			s, d, stop := p.Next(context.Background(), spillway.RetryState{Attempts: 1}, tt.err)
			if stop != nil || d != tt.want {
				t.Fatalf("Next = %v, %v; want a retry after %v", d, stop, tt.want)
			}
			if s.Prev != tt.want {
				t.Errorf("state's Prev = %v, want the delay %v", s.Prev, tt.want)
			}
			if got := ev.Events(); len(got) != 1 || got[0].Delay != tt.want {
				t.Errorf("events = %+v, want one retry after %v", got, tt.want)
			}
		})
	}
}

// attemptTimeout is what a timeout policy returns when its own deadline cut
// an attempt short.
var attemptTimeout = &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "timeout", Err: errors.New("attempt timeout"), Cause: context.DeadlineExceeded}

func TestSafeDefaults(t *testing.T) {
	rejection := func(r spillway.Reason) error {
		return &spillway.Error{Code: r, Policy: "guard", Err: errors.New(string(r))}
	}
	always := func(error) bool { return true }
	never := func(error) bool { return false }
	tests := []struct {
		name      string
		err       error
		retryable func(error) bool
		wantCalls int
	}{
		{"breaker open", rejection(spillway.ReasonBreakerOpen), always, 1},
		{"bulkhead full", rejection(spillway.ReasonBulkheadFull), always, 1},
		{"budget exhausted", rejection(spillway.ReasonBudgetExhausted), always, 1},
		{"throttled", rejection(spillway.ReasonThrottled), always, 1},
		{"no healthy instance", rejection(spillway.ReasonNoHealthyInstance), always, 1},
		{"a wrapped rejection", fmt.Errorf("call: %w", rejection(spillway.ReasonBreakerOpen)), always, 1},
		{"permanent", spillway.Permanent(errUpstream), always, 1},
		{"panic", &spillway.PanicError{Value: "boom"}, always, 1},
		{"canceled from another context", fmt.Errorf("dial: %w", context.Canceled), always, 1},
		{"Retryable refuses", errUpstream, never, 1},
		{"upstream error", errUpstream, nil, 3},
		{"attempt timeout while the context lives", attemptTimeout, nil, 3},
		{"deadline exceeded of an inner context", fmt.Errorf("read: %w", context.DeadlineExceeded), nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := retry.MustNew(retry.Config{Retryable: tt.retryable})
				calls := 0
				_, err := retry.Do(context.Background(), p, failing(&calls, tt.err))
				if calls != tt.wantCalls {
					t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
				}
				if tt.wantCalls == 1 && err != tt.err {
					t.Errorf("err = %v, want the attempt's error as it is", err)
				}
				if tt.wantCalls > 1 && spillway.ReasonOf(err) != spillway.ReasonOf(tt.err) {
					t.Errorf("ReasonOf(err) = %s, want %s", spillway.ReasonOf(err), spillway.ReasonOf(tt.err))
				}
			})
		})
	}
}

func TestRetryableSeesOnlyWhatPassesTheSafeDefaults(t *testing.T) {
	var seen []error
	p := retry.MustNew(retry.Config{Retryable: func(err error) bool { seen = append(seen, err); return true }})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, err := range []error{spillway.Permanent(errUpstream), &spillway.PanicError{}, errUpstream} {
		p.Next(ctx, spillway.RetryState{Attempts: 1}, err)
	}
	p.Next(context.Background(), spillway.RetryState{Attempts: 1}, spillway.Permanent(errUpstream))
	if len(seen) != 0 {
		t.Errorf("Retryable was asked about %v", seen)
	}
}

func TestErrors(t *testing.T) {
	t.Run("exhausted wraps the last error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := retry.MustNew(retry.Config{Name: "catalog"})
			first, last := errors.New("first"), errors.New("last")
			calls := 0
			_, err := retry.Do(context.Background(), p, failing(&calls, first, first, last))
			if !errors.Is(err, retry.ErrExhausted) || !errors.Is(err, last) || errors.Is(err, first) {
				t.Errorf("err = %v, want ErrExhausted wrapping the last error only", err)
			}
			var e *spillway.Error
			if !errors.As(err, &e) || e.Policy != "retry" || e.Name != "catalog" || e.Code != spillway.ReasonUpstreamError || e.Cause != last {
				t.Errorf("err = %#v, want a retry *spillway.Error", err)
			}
			if spillway.IsRejection(err) {
				t.Error("an exhausted retry is not a rejection")
			}
			if want := `spillway: retry "catalog": retries exhausted: last`; err.Error() != want {
				t.Errorf("message %q, want %q", err.Error(), want)
			}
		})
	})
	t.Run("exhausted keeps the reason of an attempt timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			calls := 0
			_, err := retry.Do(context.Background(), retry.MustNew(retry.Config{}), failing(&calls, attemptTimeout))
			if spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, retry.ErrExhausted) {
				t.Errorf("err = %v (reason %s), want deadline_exceeded", err, spillway.ReasonOf(err))
			}
		})
	})
	t.Run("budget refusal", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var ev events
			b := retry.MustNewBudget(retry.BudgetConfig{Ratio: 0.5, MinPerSecond: -1})
			p := retry.MustNew(retry.Config{Name: "catalog", Budget: b, Observer: &ev})
			calls := 0
			_, err := retry.Do(context.Background(), p, failing(&calls, errUpstream))
			if calls != 1 {
				t.Errorf("calls = %d, want 1: half a retry earned is none", calls)
			}
			var e *spillway.Error
			if !errors.As(err, &e) || e.Policy != "budget" || e.Name != "catalog" || e.Code != spillway.ReasonBudgetExhausted || e.Cause != errUpstream {
				t.Errorf("err = %#v, want a budget *spillway.Error", err)
			}
			if !errors.Is(err, retry.ErrBudgetExhausted) || !errors.Is(err, errUpstream) || !spillway.IsRejection(err) {
				t.Errorf("err = %v, want ErrBudgetExhausted, the last error, and a rejection", err)
			}
			want := []spillway.Event{{Kind: spillway.EventRejection, Policy: "budget", Name: "catalog", Reason: spillway.ReasonBudgetExhausted}}
			if got := ev.Events(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("events = %+v, want %+v", got, want)
			}

			// The second execution's request completes the retry it needs.
			calls = 0
			_, err = retry.Do(context.Background(), p, failing(&calls, errUpstream, errUpstream, nil))
			if calls != 2 || !errors.Is(err, retry.ErrBudgetExhausted) {
				t.Errorf("calls = %d, err = %v; want one retry, then a refusal", calls, err)
			}
		})
	})
}

func TestObserverReportsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev events
		p := retry.MustNew(retry.Config{Name: "catalog", Jitter: retry.NoJitter, Observer: &ev})
		calls := 0
		retry.Do(context.Background(), p, failing(&calls, errUpstream))
		want := []spillway.Event{
			{Kind: spillway.EventRetry, Policy: "retry", Name: "catalog", Attempt: 1, Delay: 100 * ms, Err: errUpstream},
			{Kind: spillway.EventRetry, Policy: "retry", Name: "catalog", Attempt: 2, Delay: 200 * ms, Err: errUpstream},
		}
		if got := ev.Events(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("events:\n got %+v\nwant %+v", got, want)
		}
	})
}

func TestPolicyInPipeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.MustNewBudget(retry.BudgetConfig{})
		p := retry.MustNew(retry.Config{Budget: b, Jitter: retry.NoJitter})
		pl := spillway.MustNewPipeline(spillway.Policies[int]{Retry: p})
		start := time.Now()
		calls := 0
		res := pl.ExecuteResult(context.Background(), failing(&calls, errUpstream, errUpstream, nil))
		if res.Err != nil || res.Attempts != 3 || res.Value != 3 {
			t.Errorf("result %+v, want success on attempt 3", res)
		}
		if got := time.Since(start); got != 300*ms {
			t.Errorf("took %v, want 100ms + 200ms of backoff", got)
		}
		calls = 0
		res = pl.ExecuteResult(context.Background(), failing(&calls, errUpstream))
		if !errors.Is(res.Err, retry.ErrExhausted) || res.Attempts != 3 {
			t.Errorf("result %+v, want ErrExhausted after 3 attempts", res)
		}
	})
}

func TestConcurrentExecutionsShareABudget(t *testing.T) {
	clock := spillway.NewManualClock(0)
	b := retry.MustNewBudget(retry.BudgetConfig{Ratio: 0.5, MinPerSecond: -1, Clock: clock})
	p := retry.MustNew(retry.Config{MaxAttempts: 2, Initial: time.Nanosecond, Jitter: retry.NoJitter, Budget: b})
	const workers, each = 8, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	retried := 0
	for range workers {
		wg.Go(func() {
			for range each {
				calls := 0
				retry.Do(context.Background(), p, failing(&calls, errUpstream))
				mu.Lock()
				retried += calls - 1
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if retried > workers*each/2 {
		t.Errorf("%d retries for %d requests at ratio 0.5", retried, workers*each)
	}
	if retried < workers*each/2-workers*16 {
		t.Errorf("only %d retries for %d requests at ratio 0.5", retried, workers*each)
	}
}

func TestConfig(t *testing.T) {
	rnd := func() float64 { return 0 }
	p := retry.MustNew(retry.Config{Name: "x", Rand: rnd})
	got := p.Config()
	if got.MaxAttempts != 3 || got.Backoff != retry.Exponential || got.Initial != 100*ms || got.Max != 5*time.Second ||
		got.Multiplier != 2 || got.Jitter != retry.FullJitter || got.MaxElapsed != 0 || got.Clock != spillway.SystemClock ||
		got.Name != "x" || got.Rand == nil || got.Budget == nil || got.Retryable != nil {
		t.Errorf("defaults: %+v", got)
	}
	if bc := got.Budget.Config(); bc.Ratio != 0.2 || bc.Window != 10*time.Second || bc.MinPerSecond != 10 {
		t.Errorf("the default budget is %+v, want the brief's 20 %% over 10s plus 10/s", bc)
	}
	if p := retry.MustNew(retry.Config{NoBudget: true}); p.Config().Budget != nil {
		t.Error("NoBudget must leave the policy without a budget")
	}
	if p := retry.MustNew(retry.Config{MaxAttempts: 1}); p.Config().Budget != nil {
		t.Error("a policy that never retries needs no budget")
	}
	if _, err := retry.New(retry.Config{NoBudget: true, Budget: got.Budget}); err == nil || !strings.Contains(err.Error(), "NoBudget") {
		t.Errorf("NoBudget with a Budget must be refused, got %v", err)
	}
	if d := retry.MustNew(retry.Config{Jitter: retry.DecorrelatedJitter}).Config(); d.Backoff != retry.Decorrelated {
		t.Errorf("DecorrelatedJitter left Backoff %s, want decorrelated", d.Backoff)
	}
	if d := retry.MustNew(retry.Config{Backoff: retry.Decorrelated}).Config(); d.Jitter != retry.DecorrelatedJitter {
		t.Errorf("Backoff decorrelated left Jitter %s, want decorrelated", d.Jitter)
	}
	if _, err := retry.New(got); err != nil {
		t.Errorf("New(Config()) = %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		cfg  retry.Config
		want string // a substring of the error
	}{
		{retry.Config{MaxAttempts: -1}, "MaxAttempts"},
		{retry.Config{Backoff: 3}, "Backoff"},
		{retry.Config{Jitter: 4}, "Jitter"},
		{retry.Config{Initial: -1}, "Initial"},
		{retry.Config{Max: -1}, "Max must"},
		{retry.Config{MaxElapsed: -1}, "MaxElapsed"},
		{retry.Config{Multiplier: 0.5}, "Multiplier"},
		{retry.Config{Multiplier: -2}, "Multiplier"},
		{retry.Config{Multiplier: posInf()}, "Multiplier"},
		{retry.Config{Multiplier: nan()}, "Multiplier"},
		{retry.Config{Initial: 10 * time.Second}, "Initial 10s must not exceed Max 5s"},
		{retry.Config{Initial: 2 * time.Second, Max: time.Second}, "Initial"},
		{retry.Config{Backoff: retry.Decorrelated, Jitter: retry.NoJitter}, "Jitter none"},
		{retry.Config{Backoff: retry.Decorrelated, Jitter: retry.EqualJitter}, "Jitter equal"},
		{retry.Config{Backoff: retry.Constant, Jitter: retry.DecorrelatedJitter}, "Backoff constant"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := retry.New(tt.cfg)
			if err == nil || !strings.HasPrefix(err.Error(), "retry: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%+v) = %v, want an error naming %q", tt.cfg, err, tt.want)
			}
			defer func() {
				if recover() == nil {
					t.Error("MustNew did not panic")
				}
			}()
			retry.MustNew(tt.cfg)
		})
	}
}

func TestWarnings(t *testing.T) {
	b := retry.MustNewBudget(retry.BudgetConfig{})
	tests := []struct {
		name string
		cfg  retry.Config
		want []string // substrings, one per warning
	}{
		{"defaults have a budget of their own", retry.Config{}, nil},
		{"NoBudget retries without a budget", retry.Config{NoBudget: true}, []string{"retries without a budget: while the downstream fails, the callers that share this policy send it up to 3 times"}},
		{"with a budget", retry.Config{Budget: b}, nil},
		{"no retries need no budget", retry.Config{MaxAttempts: 1}, nil},
		{"Multiplier with constant backoff", retry.Config{Budget: b, Backoff: retry.Constant, Multiplier: 3}, []string{"Multiplier is ignored"}},
		{"Multiplier with decorrelated jitter", retry.Config{Budget: b, Jitter: retry.DecorrelatedJitter, Multiplier: 3}, []string{"Multiplier is ignored"}},
		{"Multiplier with exponential backoff", retry.Config{Budget: b, Multiplier: 3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.cfg.Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("Warnings() = %q, want %d", got, len(tt.want))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("warning %q, want %q", got[i], tt.want[i])
				}
			}
		})
	}
}
