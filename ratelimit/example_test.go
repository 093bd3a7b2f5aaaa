package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/ratelimit"
)

// A bursty limiter: 5 calls at once after a quiet spell, 2 per second on
// average. The clock is explicit so that the example is exact.
func ExampleLimiter_Allow() {
	clock := spillway.NewManualClock(0)
	l := ratelimit.MustNew(ratelimit.Config{Limit: 2, Per: time.Second, Burst: 5, Clock: clock})
	for i := range 6 {
		ok, retryAfter := l.Allow()
		fmt.Println(i, ok, retryAfter)
	}
	clock.Advance(500 * time.Millisecond)
	fmt.Println(l.Allow())
	// Output:
	// 0 true 0s
	// 1 true 0s
	// 2 true 0s
	// 3 true 0s
	// 4 true 0s
	// 5 false 500ms
	// true 0s
}

// A smooth limiter (Burst 1) as a pipeline guard: the second call within
// the interval is refused with the throttled reason, before it runs.
func ExampleLimiter_Acquire() {
	l := ratelimit.MustNew(ratelimit.Config{Name: "search", Limit: 10, Clock: spillway.NewManualClock(0)})
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Guards: []spillway.Guard{l}})
	call := func(context.Context) (string, error) { return "ok", nil }
	for range 2 {
		v, err := pl.Execute(context.Background(), call)
		d, _ := spillway.RetryAfterOf(err)
		fmt.Println(v, errors.Is(err, ratelimit.ErrLimited), spillway.ReasonOf(err), d)
	}
	// Output:
	// ok false  0s
	//  true throttled 100ms
}

// One bucket per client, bounded to MaxKeys clients: one client's flood
// leaves the others their own limit.
func ExampleKeyed_AllowKey() {
	k := ratelimit.MustNewKeyed(ratelimit.KeyedConfig{
		Config:  ratelimit.Config{Limit: 100, Per: time.Minute, Burst: 2, Clock: spillway.NewManualClock(0)},
		MaxKeys: 10_000,
	})
	for _, client := range []string{"alice", "alice", "alice", "bob"} {
		ok, retryAfter := k.AllowKey(client)
		fmt.Println(client, ok, retryAfter)
	}
	fmt.Println("tracked:", k.Len())
	// Output:
	// alice true 0s
	// alice true 0s
	// alice false 600ms
	// bob true 0s
	// tracked: 2
}

// Update changes the rate in place: the bucket keeps the tokens it holds
// (none here) and refills at the new rate.
func ExampleLimiter_Update() {
	clock := spillway.NewManualClock(0)
	l := ratelimit.MustNew(ratelimit.Config{Limit: 1, Clock: clock})
	l.Allow()
	if err := l.Update(func(c *ratelimit.Config) { c.Limit = 4 }); err != nil {
		fmt.Println(err)
	}
	fmt.Println(l.Allow())
	clock.Advance(250 * time.Millisecond)
	fmt.Println(l.Allow())
	// Output:
	// false 250ms
	// true 0s
}
