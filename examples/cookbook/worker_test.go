package cookbook_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

// A worker drains a queue of ledger writes one at a time, retrying the
// transient failures. It is the only caller of its retry policy and calls
// sequentially, so the policy has no budget: a budget bounds what many
// concurrent callers add to a failing downstream's load, and this caller
// sends one request at a time whatever it retries. With the default budget
// a worker whose writes often fail loses some of them to budget_exhausted.
func Example_worker() {
	ledger := &flakyLedger{failFirst: map[string]int{"b": 1, "c": 3, "e": 9}}
	writes := retry.MustNew(retry.Config{
		Name:        "ledger",
		MaxAttempts: 5,
		Initial:     time.Millisecond,      // 100ms (the default) or more in production
		Max:         20 * time.Millisecond, // caps every backoff
		NoBudget:    true,                  // one sequential caller: see above
	})
	attempt := timeout.MustNew(timeout.Config{Name: "ledger-write", Duration: time.Second})

	ctx := context.Background()
	for _, item := range []string{"a", "b", "c", "invalid", "d", "e"} {
		err := writes.Run(ctx, func(ctx context.Context) error {
			return attempt.Run(ctx, func(ctx context.Context) error { return ledger.Write(ctx, item) })
		})
		switch {
		case err == nil:
			fmt.Printf("%s: written, attempts %d\n", item, ledger.attempts[item])
		case errors.Is(err, retry.ErrExhausted):
			// Every attempt failed: park the item, e.g. on a dead-letter queue.
			fmt.Printf("%s: parked after %d attempts (%s)\n", item, ledger.attempts[item], spillway.ReasonOf(err))
		default:
			// Permanent, or the context ended: retrying cannot help.
			fmt.Printf("%s: dropped: %v\n", item, err)
		}
	}
	// Output:
	// a: written, attempts 1
	// b: written, attempts 2
	// c: written, attempts 4
	// invalid: dropped: invalid entry
	// d: written, attempts 1
	// e: parked after 5 attempts (upstream_error)
}

// flakyLedger fails the first failFirst[item] writes of an item with a
// transient error, and rejects "invalid" for good (spillway.Permanent: no
// policy retries it). It is called by one goroutine at a time.
type flakyLedger struct {
	failFirst map[string]int
	attempts  map[string]int
}

func (l *flakyLedger) Write(ctx context.Context, item string) error {
	if l.attempts == nil {
		l.attempts = make(map[string]int)
	}
	l.attempts[item]++
	switch {
	case item == "invalid":
		return spillway.Permanent(errors.New("invalid entry"))
	case l.attempts[item] <= l.failFirst[item]:
		return errors.New("503 ledger busy")
	}
	return ctx.Err()
}
