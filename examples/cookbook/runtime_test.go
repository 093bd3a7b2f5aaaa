package cookbook_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
)

// Policies change while calls go on, and keep what they have learnt: the
// breaker its state, open deadline and window (Update changes only the
// fields it sets; Reconfigure would replace the whole Config, resetting the
// fields it leaves out), the bulkhead its calls in flight and its queue
// (Resize), the retry policy its budget's counts (With, swapped in).
func Example_runtimeChanges() {
	cb := breaker.MustNew(breaker.Config{Name: "search", MinCalls: 4, OpenFor: time.Minute})
	bh := bulkhead.MustNew(bulkhead.Config{Name: "search", MaxConcurrent: 10})
	rp := &swappableRetry{}
	rp.p.Store(retry.MustNew(retry.Config{Name: "search", MaxAttempts: 2, Initial: time.Millisecond}))
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Retry: rp, Breaker: cb, Bulkhead: bh})

	// The downstream fails: two executions of two attempts trip the breaker.
	down := func(ctx context.Context) (string, error) { return "", errors.New("503 search unavailable") }
	for range 2 {
		_, _ = pl.Execute(context.Background(), down)
	}
	fmt.Println("breaker:", cb.State())

	// Lower the failure rate: the name, MinCalls, OpenFor and the state stay.
	if err := cb.Update(func(c *breaker.Config) { c.FailureRate = 0.25 }); err != nil {
		fmt.Println(err)
	}
	c := cb.Config()
	fmt.Println("breaker:", cb.State(), c.Name, c.MinCalls, c.OpenFor, c.FailureRate)

	// Double the bulkhead: calls in flight keep their slots.
	if err := bh.Resize(20, 5); err != nil {
		fmt.Println(err)
	}
	fmt.Println("bulkhead:", bh.Limit(), bh.MaxWaiting())

	// More attempts: a new policy with the same budget, swapped in.
	budget := rp.p.Load().Config().Budget
	if err := rp.Update(func(c *retry.Config) { c.MaxAttempts = 4 }); err != nil {
		fmt.Println(err)
	}
	r := rp.p.Load().Config()
	fmt.Println("retry:", r.Name, r.MaxAttempts, "same budget:", r.Budget == budget)

	// The breaker is still open: the next call fails fast.
	_, err := pl.Execute(context.Background(), down)
	fmt.Println(spillway.ReasonOf(err))
	// Output:
	// breaker: open
	// breaker: open search 4 1m0s 0.25
	// bulkhead: 20 5
	// retry: search 4 same budget: true
	// breaker_open
}

// swappableRetry is a spillway.Retrier whose retry policy can be replaced
// while calls go on; each decision uses the policy in place at that moment.
// A retry.Policy is immutable: Update swaps in p.With(fn), which keeps every
// setting fn does not change and shares the old policy's budget.
type swappableRetry struct{ p atomic.Pointer[retry.Policy] }

func (s *swappableRetry) Begin() spillway.RetryState { return s.p.Load().Begin() }

func (s *swappableRetry) Next(ctx context.Context, st spillway.RetryState, err error) (spillway.RetryState, time.Duration, error) {
	return s.p.Load().Next(ctx, st, err)
}

// Update applies fn to the current policy's Config; concurrent Updates
// each see the other's change.
func (s *swappableRetry) Update(fn func(*retry.Config)) error {
	for {
		old := s.p.Load()
		next, err := old.With(fn)
		if err != nil {
			return err
		}
		if s.p.CompareAndSwap(old, next) {
			return nil
		}
	}
}
