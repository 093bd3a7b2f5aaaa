package spillway_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

// The README's pipeline, line for line (TestReadmePipelineIsTheExample holds
// the README to it).
func Example() {
	type Item string
	ctx := context.Background()
	cachedItems := []Item{"lamp (cached)"}
	fetchItems := func(context.Context) ([]Item, error) { return []Item{"lamp", "sofa"}, nil }

	br := breaker.MustNew(breaker.Config{Name: "catalog"})                       // 50 % of the last 100 calls, 20 calls minimum
	rp := retry.MustNew(retry.Config{Name: "catalog"})                           // 3 attempts, 100 ms ×2 ≤ 5 s, full jitter, 20 % retry budget
	bh := bulkhead.MustNew(bulkhead.Config{Name: "catalog", MaxConcurrent: 100}) // 100 calls at a time, no queue
	fb := fallback.MustNew(fallback.Config{Name: "catalog"}, fallback.Value("cached", cachedItems))

	pipeline, err := spillway.NewPipeline(spillway.Policies[[]Item]{
		Fallback: fb,
		Total:    timeout.MustNew(timeout.Config{Name: "catalog-total", Duration: 15 * time.Second}),
		Retry:    rp,
		Breaker:  br,
		Bulkhead: bh,
		Attempt:  timeout.MustNew(timeout.Config{Name: "catalog-attempt", Duration: 5 * time.Second}),
	})
	if err != nil {
		log.Fatal(err) // a typed nil policy, swapped guards, timeouts of one name, an attempt timeout not below the total
	}
	items, err := pipeline.Execute(ctx, fetchItems) // func(context.Context) ([]Item, error)
	if err != nil {
		log.Printf("catalog failed: %s", spillway.ReasonOf(err)) // breaker_open, bulkhead_full, ...
	}

	fmt.Println(items)
	// Output:
	// [lamp sofa]
}

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

// When every attempt fails, the fallback chain serves a degraded answer:
// Result.Fallback says which one, Result.Replaced the error it replaced.
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
	fmt.Println("replaced:", res.Replaced)
	// Output:
	// value={"items":[]} fallback=static attempts=2 err=<nil>
	// replaced: spillway: retry: retries exhausted: 503 Service Unavailable
}

// A fallback that needs the call's input — the item whose cached copy to
// serve — gets it typed, from ExecuteKeyed, with no context.WithValue of
// the caller's own.
func ExampleExecuteKeyed() {
	cache := map[string]string{"lamp": "lamp (cached yesterday)"}
	fb := fallback.MustNew(fallback.Config{Name: "catalog"},
		fallback.Keyed("stale-cache", func(ctx context.Context, id string, err error) (string, error) {
			if v, ok := cache[id]; ok {
				return v, nil
			}
			return "", errors.New("not cached")
		}),
	)
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Fallback: fb})
	fetch := func(ctx context.Context, id string) (string, error) {
		return "", errors.New("catalog: connection refused")
	}

	for _, id := range []string{"lamp", "sofa"} {
		res := spillway.ExecuteKeyed(context.Background(), pl, id, fetch)
		fmt.Printf("%s: %q served by %q, err %v\n", id, res.Value, res.Fallback, res.Err)
	}
	// Output:
	// lamp: "lamp (cached yesterday)" served by "stale-cache", err <nil>
	// sofa: "" served by "", err catalog: connection refused (fallback failed: "stale-cache": not cached)
}

// A value can be a failure: here a response whose status means "try again"
// is retried (and counted by the breaker) like an error, and the execution
// ends with the classifier's error once the retries are spent.
func ExamplePolicies_classify() {
	type response struct{ status int }
	errUnavailable := errors.New("503 Service Unavailable")
	pl := spillway.MustNewPipeline(spillway.Policies[response]{
		Retry: retry.MustNew(retry.Config{MaxAttempts: 3, Initial: time.Millisecond, Jitter: retry.NoJitter}),
		Classify: func(r response) error {
			if r.status == 503 {
				return errUnavailable
			}
			return nil
		},
	})

	statuses := []int{503, 503, 200}
	res := pl.ExecuteResult(context.Background(), func(ctx context.Context) (response, error) {
		r := response{statuses[0]}
		statuses = statuses[1:]
		return r, nil
	})
	fmt.Println(res.Value.status, res.Attempts, res.Err)

	res = pl.ExecuteResult(context.Background(), func(ctx context.Context) (response, error) {
		return response{503}, nil
	})
	fmt.Println(res.Value.status, res.Attempts, errors.Is(res.Err, errUnavailable))
	// Output:
	// 200 3 <nil>
	// 503 3 true
}

// The call can see which attempt it is and how long the execution has taken:
// here it logs both (a ManualClock stands for the time the attempts take).
func ExamplePipeline_ExecuteAttempt() {
	clock := spillway.NewManualClock(0)
	pl := spillway.MustNewPipeline(spillway.Policies[string]{
		Retry: retry.MustNew(retry.Config{MaxAttempts: 3, Initial: time.Millisecond, Jitter: retry.NoJitter}),
		Clock: clock,
	})
	res := pl.ExecuteAttempt(context.Background(), func(ctx context.Context, a spillway.AttemptInfo) (string, error) {
		fmt.Printf("attempt %d, %v into the execution\n", a.Attempt, a.Elapsed)
		clock.Advance(250 * time.Millisecond) // the downstream's time
		if a.Attempt < 3 {
			return "", errors.New("connection reset by peer")
		}
		return "ok", nil
	})
	fmt.Println(res.Value, res.Err)
	// Output:
	// attempt 1, 0s into the execution
	// attempt 2, 250ms into the execution
	// attempt 3, 500ms into the execution
	// ok <nil>
}

// Hooks turns the events of every policy into one function per decision.
// As a pipeline's Observer it gets the events of the pipeline's policies,
// which need no Observer of their own.
func ExampleHooks() {
	hooks := &spillway.Hooks{
		OnOpen:  func(e spillway.Event) { fmt.Printf("breaker %q opened\n", e.Name) },
		OnRetry: func(e spillway.Event) { fmt.Printf("retry after attempt %d\n", e.Attempt) },
	}
	cb := breaker.MustNew(breaker.Config{Name: "payments", MinCalls: 2})
	r := retry.MustNew(retry.Config{MaxAttempts: 2, Initial: time.Millisecond, Jitter: retry.NoJitter})
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Retry: r, Breaker: cb, Observer: hooks})

	_, err := pl.Execute(context.Background(), func(ctx context.Context) (string, error) {
		return "", errors.New("502 Bad Gateway")
	})
	fmt.Println(spillway.ReasonOf(err))
	// Output:
	// retry after attempt 1
	// breaker "payments" opened
	// upstream_error
}

// Compose runs policies in an order of your own: here a bulkhead outside the
// retry, so that an execution holds one slot through all its attempts and
// their backoffs (a job that must not run twice at once), and the attempt
// timeout innermost.
func ExampleCompose() {
	bh := bulkhead.MustNew(bulkhead.Config{Name: "reports", MaxConcurrent: 1})
	pl := spillway.MustCompose(spillway.Composition[string]{
		Layers: []any{
			bh,
			retry.MustNew(retry.Config{MaxAttempts: 3, Initial: time.Millisecond, Jitter: retry.NoJitter}),
			timeout.MustNew(timeout.Config{Name: "attempt", Duration: time.Second}),
		},
	})
	calls := 0
	res := pl.ExecuteResult(context.Background(), func(ctx context.Context) (string, error) {
		calls++
		fmt.Printf("attempt %d holds the slot: %v\n", calls, bh.InFlight() == 1)
		if calls < 2 {
			return "", errors.New("connection reset by peer")
		}
		return "report", nil
	})
	fmt.Println(res.Value, res.Attempts, res.Err, bh.InFlight())
	// Output:
	// attempt 1 holds the slot: true
	// attempt 2 holds the slot: true
	// report 2 <nil> 0
}
