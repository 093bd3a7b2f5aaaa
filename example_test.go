package spillway_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

// The standard pipeline over a downstream that fails twice, then answers:
// the retry policy absorbs the two failures.
func ExampleNewPipeline() {
	// Build the policies once per downstream and share them between calls.
	budget := retry.MustNewBudget(retry.BudgetConfig{})
	pl := spillway.MustNewPipeline(spillway.Policies[string]{
		Fallback: fallback.MustNew(fallback.Config{}, fallback.Value("static", `{"items":[]}`)),
		Total:    timeout.MustNew(timeout.Config{Name: "total", Duration: 15 * time.Second}),
		Retry: retry.MustNew(retry.Config{
			Name:    "catalog",
			Budget:  budget,
			Initial: time.Millisecond,
			Jitter:  retry.NoJitter, // for a predictable example; keep full jitter in production
		}),
		Breaker:  breaker.MustNew(breaker.Config{Name: "catalog"}),
		Bulkhead: bulkhead.MustNew(bulkhead.Config{Name: "catalog", MaxConcurrent: 10}),
		Attempt:  timeout.MustNew(timeout.Config{Name: "attempt", Duration: 5 * time.Second}),
	})

	calls := 0
	flaky := func(ctx context.Context) (string, error) {
		calls++
		if calls <= 2 {
			return "", errors.New("connection reset by peer")
		}
		return `{"items":["lamp"]}`, nil
	}
	res := pl.ExecuteResult(context.Background(), flaky)
	fmt.Println("value:", res.Value)
	fmt.Println("attempts:", res.Attempts)
	fmt.Printf("error: %v, fallback: %q\n", res.Err, res.Fallback)
	// Output:
	// value: {"items":["lamp"]}
	// attempts: 3
	// error: <nil>, fallback: ""
}

// ReasonOf explains a failure in one stable word: here an open breaker that
// refused the call before the downstream was reached.
func ExampleReasonOf() {
	cb := breaker.MustNew(breaker.Config{Name: "payments", OpenFor: 30 * time.Second})
	_ = cb.TransitionTo(breaker.Open) // as if the downstream had been failing
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Retry: retry.MustNew(retry.Config{}), Breaker: cb})

	_, err := pl.Execute(context.Background(), func(ctx context.Context) (string, error) {
		return "paid", nil // not called
	})
	fmt.Println(err)
	fmt.Println(spillway.ReasonOf(err))
	fmt.Println(errors.Is(err, breaker.ErrOpen), spillway.IsRejection(err))
	if d, ok := spillway.RetryAfterOf(err); ok {
		fmt.Println("retry after", d)
	}
	fmt.Println(spillway.ReasonOf(errors.New("502 Bad Gateway")), spillway.ReasonOf(context.Canceled))
	// Output:
	// spillway: breaker "payments": circuit breaker is open (retry after 30s)
	// breaker_open
	// true true
	// retry after 30s
	// upstream_error canceled
}

// When every attempt fails, the fallback chain serves a degraded answer, and
// Result.Fallback says which one.
func ExamplePipeline_ExecuteResult() {
	fb := fallback.MustNew(fallback.Config{},
		fallback.Func("replica", func(ctx context.Context, err error) (string, error) {
			return "", errors.New("replica unreachable")
		}),
		fallback.Value("static", `{"items":[]}`),
	)
	r := retry.MustNew(retry.Config{MaxAttempts: 2, Initial: time.Millisecond, Jitter: retry.NoJitter})
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Fallback: fb, Retry: r})

	res := pl.ExecuteResult(context.Background(), func(ctx context.Context) (string, error) {
		return "", errors.New("503 Service Unavailable")
	})
	fmt.Printf("value=%s fallback=%s attempts=%d err=%v\n", res.Value, res.Fallback, res.Attempts, res.Err)
	// Output:
	// value={"items":[]} fallback=static attempts=2 err=<nil>
}
