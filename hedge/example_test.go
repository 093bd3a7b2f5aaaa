package hedge_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/retry"
)

// A replica that hangs is hedged after 10ms; the hedge answers, and the
// hanging attempt is cancelled.
func ExampleDo() {
	p := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond})
	var calls atomic.Int32
	v, err := hedge.Do(context.Background(), p, func(ctx context.Context) (string, error) {
		if calls.Add(1) == 1 {
			<-ctx.Done() // the primary hangs until it loses
			return "", ctx.Err()
		}
		return "from the hedge", nil
	})
	fmt.Println(v, err)
	fmt.Println("hedges sent:", p.Sent(), "won:", p.Won())
	// Output:
	// from the hedge <nil>
	// hedges sent: 1 won: 1
}

// Hedging inside a pipeline (ExecuteHedged), learning its delay from the
// latency's 95th percentile and drawing its hedges from the retry policy's
// budget: each hedge passes the guards on its own.
func ExamplePolicy_pipeline() {
	budget := retry.MustNewBudget(retry.BudgetConfig{})
	pl := spillway.MustNewPipeline(spillway.Policies[string]{
		Retry: retry.MustNew(retry.Config{Budget: budget}),
		Hedge: hedge.MustNew(hedge.Config{Quantile: 0.95, InitialDelay: 10 * time.Millisecond, Budget: budget}),
	})
	var calls atomic.Int32
	r := pl.ExecuteHedged(context.Background(), func(ctx context.Context) (string, error) {
		if calls.Add(1) == 1 {
			<-ctx.Done()
			return "", ctx.Err()
		}
		return "from the hedge", nil
	})
	fmt.Println(r.Value, r.Err, r.Attempts)
	// Output: from the hedge <nil> 2
}
