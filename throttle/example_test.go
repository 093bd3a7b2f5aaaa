package throttle_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/throttle"
)

// A downstream saturated at 20 calls a second, which refuses the rest, is
// sent 100 calls a second: with K = 2 the throttler lets through about
// K × 20 = 40 a second and refuses the other 60 % locally, before they cost
// the downstream anything.
func Example() {
	clock := spillway.NewManualClock(0)
	th := throttle.MustNew(throttle.Config{
		Name:   "search",
		Window: 10 * time.Second,
		Clock:  clock, // an explicit clock and a seeded source: the same output every run
		Rand:   seeded(42),
	})
	overloaded := errors.New("503 overloaded")
	var sent, refused int
	for second := range 30 {
		accepted := 0
		for range 100 {
			err := th.Execute(context.Background(), func(context.Context) error {
				if accepted == 20 {
					return overloaded
				}
				accepted++
				return nil
			})
			if second >= 20 { // the last 10 seconds
				if errors.Is(err, throttle.ErrThrottled) {
					refused++
				} else {
					sent++
				}
			}
			clock.Advance(10 * time.Millisecond)
		}
	}
	reqs, accs := th.Counts()
	fmt.Printf("window: %d requests, %d accepts\n", reqs, accs)
	fmt.Printf("rejection probability: %.2f\n", th.RejectionProbability())
	fmt.Printf("last 10 s: %d sent, %d refused locally\n", sent, refused)
	// Output:
	// window: 900 requests, 180 accepts
	// rejection probability: 0.60
	// last 10 s: 413 sent, 587 refused locally
}

// The throttler as a guard of a pipeline, beside a breaker: it sheds part
// of the load while the downstream is degraded, and the breaker still
// stops every call once the downstream is dead. Each ignores the other's
// refusals. (Rand 0 makes the refusal certain for the example.)
func Example_pipeline() {
	th := throttle.MustNew(throttle.Config{Name: "search", K: 1.5, Rand: func() float64 { return 0 }})
	br := breaker.MustNew(breaker.Config{Name: "search"})
	p, err := spillway.NewPipeline(spillway.Policies[string]{Breaker: br, Guards: []spillway.Guard{th}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	_, err = p.Execute(ctx, func(context.Context) (string, error) { return "", errors.New("503") })
	fmt.Println(err)
	_, err = p.Execute(ctx, func(context.Context) (string, error) { return "results", nil })
	fmt.Println(err)
	fmt.Println(errors.Is(err, throttle.ErrThrottled), spillway.ReasonOf(err))
	fmt.Println(br.State(), br.Snapshot().Calls) // the breaker saw the 503 alone
	// Output:
	// 503
	// spillway: throttle "search": throttled: the downstream accepts too few requests (retry after 1s)
	// true throttled
	// closed 1
}

func ExampleThrottler_Update() {
	th := throttle.MustNew(throttle.Config{})
	// Throttle sooner; the window and its counts are kept.
	if err := th.Update(func(c *throttle.Config) { c.K = 1.1 }); err != nil {
		fmt.Println(err)
	}
	c := th.Config()
	fmt.Println(c.K, c.Window, c.Buckets, c.MaxRejectionRate)
	fmt.Println(th.Update(func(c *throttle.Config) { c.K = 0.5 }))
	// Output:
	// 1.1 2m0s 120 0.9
	// throttle: K must be a finite number of at least 1 (0 means 2), got 0.5: below 1 a downstream that accepts every call is throttled too
}
