package spillway_test

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
	"github.com/spillway-dev/spillway/hedge"
)

// hangFirst is a call whose first attempt hangs until it is cancelled and
// whose later attempts answer "hedge" at once.
func hangFirst(calls *atomic.Int32) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if calls.Add(1) == 1 {
			<-ctx.Done()
			return "", ctx.Err()
		}
		return "hedge", nil
	}
}

func TestPipelineHedgesASlowAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bh := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 2})
		discarded := make(chan string, 1)
		pl := spillway.MustNewPipeline(spillway.Policies[string]{
			Hedge:    hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond}),
			Bulkhead: bh,
			Discard:  func(v string) { discarded <- v },
		})
		var calls atomic.Int32
		r := pl.ExecuteHedged(t.Context(), hangFirst(&calls))
		if r.Value != "hedge" || r.Err != nil || r.Attempts != 2 {
			t.Fatalf("result = %+v; want the hedge's answer after 2 attempts", r)
		}
		if got := <-discarded; got != "" {
			t.Errorf("discarded %q, want the cancelled primary's zero value", got)
		}
		synctest.Wait()
		if bh.InFlight() != 0 {
			t.Errorf("%d bulkhead slots held after the call", bh.InFlight())
		}
	})
}

func TestAFullBulkheadStopsHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond})
		pl := spillway.MustNewPipeline(spillway.Policies[string]{
			Hedge:    h,
			Bulkhead: bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1}),
		})
		var calls atomic.Int32
		r := pl.ExecuteHedged(t.Context(), func(ctx context.Context) (string, error) {
			calls.Add(1)
			time.Sleep(50 * time.Millisecond)
			return "primary", nil
		})
		v, err := r.Value, r.Err
		if v != "primary" || err != nil || calls.Load() != 1 || h.Sent() != 1 {
			t.Fatalf("ExecuteHedged = %q, %v after %d calls, %d hedges sent; want the primary's answer, the hedge refused by the bulkhead", v, err, calls.Load(), h.Sent())
		}
	})
}

func TestAnOpenBreakerStopsHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The first hedge fails and opens the breaker: the second is
		// refused, the primary answers.
		pl := spillway.MustNewPipeline(spillway.Policies[string]{
			Hedge:   hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond, Max: 2}),
			Breaker: breaker.MustNew(breaker.Config{ConsecutiveFailures: 1}),
		})
		var calls atomic.Int32
		r := pl.ExecuteHedged(t.Context(), func(ctx context.Context) (string, error) {
			if calls.Add(1) == 1 {
				time.Sleep(50 * time.Millisecond)
				return "primary", nil
			}
			return "", errors.New("down")
		})
		v, err := r.Value, r.Err
		if v != "primary" || err != nil || calls.Load() != 2 {
			t.Fatalf("Execute = %q, %v after %d calls; want the primary's answer, the second hedge refused", v, err, calls.Load())
		}
	})
}

func TestAHedgedPipelineRejectsATypedNilHedger(t *testing.T) {
	var h *hedge.Policy
	if _, err := spillway.NewPipeline(spillway.Policies[int]{Hedge: h}); err == nil {
		t.Fatal("NewPipeline accepted a nil *hedge.Policy")
	}
}

// TestALosingAttemptIsNotABreakerFailure: the primary, cancelled because the
// hedge answered first, is released to the breaker as the caller's doing.
func TestALosingAttemptIsNotABreakerFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		br := breaker.MustNew(breaker.Config{ConsecutiveFailures: 1})
		pl := spillway.MustNewPipeline(spillway.Policies[string]{
			Hedge:   hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond}),
			Breaker: br,
		})
		var calls atomic.Int32
		var cause error
		r := pl.ExecuteHedged(t.Context(), func(ctx context.Context) (string, error) {
			if calls.Add(1) == 1 {
				<-ctx.Done()
				cause = context.Cause(ctx)
				// Not ctx.Err(): what a transport cut short returns.
				return "", errors.New("connection closed")
			}
			return "hedge", nil
		})
		if r.Value != "hedge" || r.Err != nil {
			t.Fatalf("ExecuteHedged = %q, %v", r.Value, r.Err)
		}
		if cause != spillway.ErrHedgeLost {
			t.Errorf("the primary's context ended with cause %v, want ErrHedgeLost", cause)
		}
		if s := br.State(); s != breaker.Closed {
			t.Errorf("breaker %v after a lost race, want closed", s)
		}
	})
}

func TestHooksSeeHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sent, won atomic.Int32
		h := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond, Observer: &spillway.Hooks{
			OnHedge:    func(spillway.Event) { sent.Add(1) },
			OnHedgeWon: func(spillway.Event) { won.Add(1) },
		}})
		var calls atomic.Int32
		if _, err := hedge.Do(t.Context(), h, hangFirst(&calls)); err != nil {
			t.Fatal(err)
		}
		if sent.Load() != 1 || won.Load() != 1 {
			t.Errorf("OnHedge %d, OnHedgeWon %d; want 1, 1", sent.Load(), won.Load())
		}
		if spillway.EventHedge.String() != "hedge" || spillway.EventHedgeWon.String() != "hedge_won" {
			t.Errorf("kinds: %v, %v", spillway.EventHedge, spillway.EventHedgeWon)
		}
	})
}

// TestOnlyExecuteHedgedHedges: Execute never hedges, so that its callers'
// closures stay off the heap (TestExecuteVariantsAllocateNothingOnSuccess).
func TestOnlyExecuteHedgedHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond})
		pl := spillway.MustNewPipeline(spillway.Policies[string]{Hedge: h})
		v, err := pl.Execute(t.Context(), func(ctx context.Context) (string, error) {
			time.Sleep(50 * time.Millisecond)
			return "primary", nil
		})
		if v != "primary" || err != nil || h.Sent() != 0 {
			t.Fatalf("Execute = %q, %v with %d hedges; want no hedge", v, err, h.Sent())
		}
	})
}
