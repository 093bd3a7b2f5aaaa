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
