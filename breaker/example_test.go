package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
)

var errUnavailable = errors.New("503 service unavailable")

// A breaker trips on the failure rate of its window and then fails fast.
func ExampleBreaker_Execute() {
	b := breaker.MustNew(breaker.Config{Name: "catalog", MinCalls: 4, FailureRate: 0.5, OpenFor: 30 * time.Second})
	ctx := context.Background()

	for i := range 5 {
		err := b.Execute(ctx, func(ctx context.Context) error {
			if i%2 == 1 {
				return nil
			}
			return errUnavailable // the downstream is failing
		})
		fmt.Printf("call %d: %v\n", i, err)
	}

	err := b.Execute(ctx, func(ctx context.Context) error { return nil })
	fmt.Println(errors.Is(err, breaker.ErrOpen), spillway.ReasonOf(err))
	// Output:
	// call 0: 503 service unavailable
	// call 1: <nil>
	// call 2: 503 service unavailable
	// call 3: <nil>
	// call 4: spillway: breaker "catalog": circuit breaker is open (retry after 30s)
	// true breaker_open
}

// Do runs a function that returns a value.
func ExampleDo() {
	b := breaker.MustNew(breaker.Config{Name: "prices"})
	price, err := breaker.Do(context.Background(), b, func(ctx context.Context) (float64, error) {
		return 9.99, nil
	})
	fmt.Println(price, err)
	// Output: 9.99 <nil>
}

// State and Snapshot report what the breaker sees; State is time-aware.
func ExampleBreaker_Snapshot() {
	clock := spillway.NewManualClock(0)
	b := breaker.MustNew(breaker.Config{MinCalls: 10, ConsecutiveFailures: 3, OpenFor: 10 * time.Second, Clock: clock})
	ctx := context.Background()
	fail := func(context.Context) error { return errUnavailable }

	_ = b.Execute(ctx, func(context.Context) error { return nil })
	_ = b.Execute(ctx, fail)
	s := b.Snapshot()
	fmt.Printf("%v: %d calls, failure rate %.2f\n", s.State, s.Calls, s.FailureRate)

	_ = b.Execute(ctx, fail)
	_ = b.Execute(ctx, fail) // the third failure in a row
	clock.Advance(4 * time.Second)
	s = b.Snapshot()
	fmt.Printf("%v: retry after %v\n", s.State, s.RetryAfter)

	clock.Advance(6 * time.Second)
	fmt.Println(b.State())
	// Output:
	// closed: 2 calls, failure rate 0.50
	// open: retry after 6s
	// half_open
}

// A Breaker is a spillway.Guard: a Pipeline acquires and releases it
// around each attempt.
func ExampleBreaker_Acquire() {
	b := breaker.MustNew(breaker.Config{Name: "search"})
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Guards: []spillway.Guard{b}})
	v, err := pl.Execute(context.Background(), func(ctx context.Context) (string, error) { return "results", nil })
	fmt.Println(v, err, b.Snapshot().Calls)
	// Output: results <nil> 1
}

// The admin API's transitions, and the metrics-only dry run.
func ExampleBreaker_MetricsOnly() {
	b := breaker.MustNew(breaker.Config{MinCalls: 2})
	b.MetricsOnly()
	for range 4 {
		_ = b.Execute(context.Background(), func(context.Context) error { return errUnavailable })
	}
	s := b.Snapshot()
	fmt.Println(s.State, s.WouldReject, s.Rejected)
	// Output: metrics_only 2 0
}

// Warnings lists settings that cannot work, for spillway validate.
func ExampleConfig_Warnings() {
	for _, w := range (breaker.Config{WindowSize: 10}).Warnings() {
		fmt.Println(w)
	}
	// Output:
	// breaker: MinCalls (20) is larger than WindowSize (10): the failure and slow-call rates can never open the breaker
}

// Update changes only what it names: the name, MinCalls and OpenFor stay,
// and so do the state and the window. Reconfigure, by contrast, replaces the
// whole configuration (a zero field there means its default).
func ExampleBreaker_Update() {
	b := breaker.MustNew(breaker.Config{Name: "payments", MinCalls: 4, OpenFor: time.Minute})
	if err := b.Update(func(c *breaker.Config) { c.FailureRate = 0.3 }); err != nil {
		fmt.Println(err)
	}
	c := b.Config()
	fmt.Println(c.Name, c.MinCalls, c.OpenFor, c.FailureRate, b.State())

	var s breaker.State
	fmt.Println(s.UnmarshalText([]byte("closd")))
	// Output:
	// payments 4 1m0s 0.3 closed
	// breaker: unknown state "closd" (did you mean "closed"?): want one of closed, open, half_open, forced_open, disabled, metrics_only
}

// After a probe closes the breaker, SlowStart ramps the traffic back up:
// a share of the calls that grows from 10 % to 100 % over the window is
// admitted, the others are rejected with a short RetryAfter.
func ExampleConfig_slowStart() {
	clock := spillway.NewManualClock(0)
	b := breaker.MustNew(breaker.Config{Name: "catalog", ConsecutiveFailures: 2, OpenFor: time.Second, HalfOpenProbes: 1,
		SlowStart: 10 * time.Second, Clock: clock})
	ctx := context.Background()
	fail := func(context.Context) error { return errUnavailable }
	ok := func(context.Context) error { return nil }
	_, _ = b.Execute(ctx, fail), b.Execute(ctx, fail) // trips
	clock.Advance(time.Second)
	fmt.Println("probe:", b.Execute(ctx, ok), b.State())

	for _, at := range []time.Duration{0, 5 * time.Second, 10 * time.Second} {
		clock.Set(time.Second + at)
		if s := b.Snapshot(); s.SlowStartLeft > 0 {
			fmt.Printf("%v after closing: %.0f %% admitted, %v to go\n", at, 100*s.SlowStartShare, s.SlowStartLeft)
		} else {
			fmt.Printf("%v after closing: every call admitted\n", at)
		}
	}
	// Output:
	// probe: <nil> closed
	// 0s after closing: 10 % admitted, 10s to go
	// 5s after closing: 55 % admitted, 5s to go
	// 10s after closing: every call admitted
}
