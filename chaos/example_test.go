package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/chaos"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
)

// A fault injected inside the attempts is retried, counted by the breaker
// and replaced by the fallback exactly as a real one would be.
func ExampleNewFault() {
	fault := chaos.Must(chaos.NewFault[string](chaos.Config{Name: "catalog", Rate: 1}, nil))
	pl := spillway.MustNewPipeline(spillway.Policies[string]{
		Fallback: fallback.MustNew(fallback.Config{}, fallback.Value("cache", "yesterday's catalog")),
		Retry:    retry.MustNew(retry.Config{MaxAttempts: 2, Initial: time.Millisecond, NoBudget: true}),
		Breaker:  breaker.MustNew(breaker.Config{Name: "catalog", ConsecutiveFailures: 2}),
		Chaos:    []spillway.Injector[string]{fault},
	})
	call := func(context.Context) (string, error) { return "today's catalog", nil }

	r := pl.ExecuteResult(context.Background(), call)
	fmt.Println("disabled:", r.Value, r.Attempts)

	fault.SetEnabled(true) // at run time, from an admin endpoint for instance
	r = pl.ExecuteResult(context.Background(), call)
	fmt.Println("enabled:", r.Value, r.Attempts, "served by", r.Fallback)
	fmt.Println(r.Replaced, errors.Is(r.Replaced, chaos.ErrInjected), spillway.ReasonOf(r.Replaced))
	r = pl.ExecuteResult(context.Background(), call)
	fmt.Println("then:", r.Value, r.Attempts, spillway.ReasonOf(r.Replaced))
	// Output:
	// disabled: today's catalog 1
	// enabled: yesterday's catalog 2 served by cache
	// spillway: retry: retries exhausted: spillway: chaos "catalog": injected fault true upstream_error
	// then: yesterday's catalog 0 breaker_open
}

type tenantCtxKey struct{}

// An outcome policy answers in the call's stead with a value of the
// pipeline's type; EnabledFunc limits it to one tenant's calls.
func ExampleNewOutcome() {
	type reply struct {
		Status int
		Body   string
	}
	unavailable := chaos.Must(chaos.NewOutcome(chaos.Config{
		Enabled:     true,
		Rate:        1,
		EnabledFunc: func(ctx context.Context) bool { return ctx.Value(tenantCtxKey{}) == "acme" },
	}, func(context.Context) (reply, error) {
		return reply{Status: 503, Body: "injected"}, nil
	}))
	pl := spillway.MustNewPipeline(spillway.Policies[reply]{Chaos: []spillway.Injector[reply]{unavailable}})
	call := func(context.Context) (reply, error) { return reply{Status: 200, Body: "real"}, nil }

	for _, tenant := range []string{"acme", "globex"} {
		v, err := pl.Execute(context.WithValue(context.Background(), tenantCtxKey{}, tenant), call)
		fmt.Println(tenant, v.Status, v.Body, err)
	}
	// Output:
	// acme 503 injected <nil>
	// globex 200 real <nil>
}
