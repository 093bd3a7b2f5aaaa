package bulkhead_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
)

func ExampleBulkhead_Execute() {
	b := bulkhead.MustNew(bulkhead.Config{Name: "reports", MaxConcurrent: 1})
	ctx := context.Background()

	err := b.Execute(ctx, func(ctx context.Context) error {
		// The only slot is taken: a second call is refused at once.
		err := b.Execute(ctx, func(context.Context) error { return nil })
		fmt.Println(err)
		fmt.Println(errors.Is(err, bulkhead.ErrFull), spillway.ReasonOf(err))
		return nil
	})
	fmt.Println(err, b.InFlight(), b.Rejected())
	// Output:
	// spillway: bulkhead "reports": bulkhead full
	// true bulkhead_full
	// <nil> 0 1
}

func ExampleBulkhead_Acquire() {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1, MaxWaiting: 10, MaxWait: time.Second})
	p, err := b.Acquire(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("in flight:", b.InFlight())
	p.Release(nil)
	fmt.Println("in flight:", b.InFlight())
	// Output:
	// in flight: 1
	// in flight: 0
}

func ExampleBulkhead_Resize() {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 10})
	if err := b.Resize(50, 5); err != nil {
		fmt.Println(err)
	}
	fmt.Println(b.Limit(), b.MaxWaiting())
	// Output:
	// 50 5
}

func ExampleBulkhead_Name() {
	b := bulkhead.MustNew(bulkhead.Config{Name: "reports"})
	fmt.Println(b.Name())
	// Output:
	// reports
}

func ExampleDo() {
	b := bulkhead.MustNew(bulkhead.Config{})
	v, err := bulkhead.Do(context.Background(), b, func(context.Context) (string, error) {
		return "report ready", nil
	})
	fmt.Println(v, err)
	// Output:
	// report ready <nil>
}

// An adaptive bulkhead's limit follows the downstream's latency. Here a
// manual clock stands in for time: calls that take 10ms let the limit grow,
// calls that take 50ms (queueing downstream) bring it down.
func ExampleAdaptive() {
	clock := spillway.NewManualClock(0)
	b := bulkhead.MustNew(bulkhead.Config{Name: "search", MaxConcurrent: 100,
		Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.Gradient2, MinConcurrent: 5, Clock: clock}})
	fmt.Println(b.Algorithm(), "starts at", b.Limit(), "in", b.MinConcurrent(), "..", b.MaxConcurrent())

	// round admits as many calls as the limit lets in, lets them run for
	// latency and releases them.
	round := func(latency time.Duration) {
		var held []spillway.Permit
		for {
			p, ok := b.TryAcquire()
			if !ok {
				break
			}
			held = append(held, p)
		}
		clock.Advance(latency)
		for _, p := range held {
			p.Release(nil)
		}
	}
	for range 200 {
		round(10 * time.Millisecond)
	}
	fmt.Println("after 2s at 10ms:", b.Limit())
	for range 40 {
		round(50 * time.Millisecond)
	}
	fmt.Println("after 2s at 50ms:", b.Limit())
	// Output:
	// gradient2 starts at 20 in 5 .. 100
	// after 2s at 10ms: 43
	// after 2s at 50ms: 5
}

// Update changes a running bulkhead in place: here from a fixed limit of 50
// to an AIMD limit between 10 and 40, which starts from the limit it had,
// clamped.
func ExampleBulkhead_Update() {
	b := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 50})
	err := b.Update(bulkhead.Config{MaxConcurrent: 40, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.AIMD, MinConcurrent: 10}})
	fmt.Println(err, b.Algorithm(), b.Limit(), b.MinConcurrent(), b.MaxConcurrent())
	// Output:
	// <nil> aimd 40 10 40
}
