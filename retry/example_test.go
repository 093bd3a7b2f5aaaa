package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/retry"
)

// Do retries a call with exponential backoff until it succeeds.
func ExampleDo() {
	p := retry.MustNew(retry.Config{
		Name:        "catalog",
		MaxAttempts: 4, // the first call included
		Initial:     10 * time.Millisecond,
		Max:         40 * time.Millisecond,
		Jitter:      retry.NoJitter, // for a predictable output; keep the default full jitter in production
	})
	for attempt := 1; attempt <= 4; attempt++ {
		fmt.Printf("after attempt %d fails: wait %v\n", attempt, p.Delay(attempt, 0))
	}

	calls := 0
	items, err := retry.Do(context.Background(), p, func(ctx context.Context) ([]string, error) {
		calls++
		if calls < 3 {
			return nil, errors.New("connection refused")
		}
		return []string{"lamp", "desk"}, nil
	})
	fmt.Println(items, err, "after", calls, "calls")

	_, err = retry.Do(context.Background(), p, func(ctx context.Context) (int, error) {
		return 0, errors.New("connection refused")
	})
	fmt.Println(err)
	fmt.Println(errors.Is(err, retry.ErrExhausted), spillway.ReasonOf(err))
	// Output:
	// after attempt 1 fails: wait 10ms
	// after attempt 2 fails: wait 20ms
	// after attempt 3 fails: wait 40ms
	// after attempt 4 fails: wait 40ms
	// [lamp desk] <nil> after 3 calls
	// spillway: retry "catalog": retries exhausted: connection refused
	// true upstream_error
}

// Two policies calling the same downstream share one Budget, so that their
// retries together stay a fraction of the traffic.
func ExampleBudget() {
	budget := retry.MustNewBudget(retry.BudgetConfig{
		Ratio:        0.5, // a retry for every two requests...
		MinPerSecond: -1,  // ...and no floor, to show the ratio alone
	})
	read := retry.MustNew(retry.Config{Name: "inventory-read", Budget: budget, Initial: time.Millisecond})
	search := retry.MustNew(retry.Config{Name: "inventory-search", Budget: budget, Initial: time.Millisecond})
	down := func(ctx context.Context) error { return errors.New("503 Service Unavailable") }

	// The first request earns half a retry: not enough.
	err := read.Run(context.Background(), down)
	fmt.Println(errors.Is(err, retry.ErrBudgetExhausted), spillway.ReasonOf(err))

	// The second, through the other policy, completes one retry; the policy
	// spends it and is refused the next.
	err = search.Run(context.Background(), down)
	fmt.Println(err)
	fmt.Println("remaining:", budget.Remaining())
	// Output:
	// true budget_exhausted
	// spillway: budget "inventory-search": retry budget exhausted: 1 retry in the last 10s, all that 50% of 2 requests allow (raise BudgetConfig.Ratio or MinPerSecond; a caller that calls sequentially needs no budget: Config.NoBudget): 503 Service Unavailable
	// remaining: 0
}

// A server's Retry-After, attached with spillway.WithRetryAfter, is honoured
// up to the policy's maximum delay.
func ExamplePolicy_retryAfter() {
	p := retry.MustNew(retry.Config{
		Initial: time.Millisecond,
		Max:     20 * time.Millisecond,
		Jitter:  retry.NoJitter,
		Observer: spillway.ObserverFunc(func(e spillway.Event) {
			if e.Kind == spillway.EventRetry {
				fmt.Printf("attempt %d failed (%v): retry in %v\n", e.Attempt, e.Err, e.Delay)
			}
		}),
	})
	errBusy := errors.New("429 Too Many Requests")
	hints := []time.Duration{5 * time.Millisecond, time.Hour}
	calls := 0
	err := p.Run(context.Background(), func(ctx context.Context) error {
		calls++
		if calls <= len(hints) {
			return spillway.WithRetryAfter(errBusy, hints[calls-1])
		}
		return nil
	})
	fmt.Println(err)
	// Output:
	// attempt 1 failed (429 Too Many Requests): retry in 5ms
	// attempt 2 failed (429 Too Many Requests): retry in 20ms
	// <nil>
}
