package timeout_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/timeout"
)

func ExampleTimeout_Run() {
	to := timeout.MustNew(timeout.Config{Name: "catalog", Duration: 10 * time.Millisecond})

	err := to.Run(context.Background(), func(ctx context.Context) error {
		// A downstream that is too slow; it honours its context.
		select {
		case <-time.After(time.Hour):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	fmt.Println(err)
	fmt.Println(spillway.ReasonOf(err))
	fmt.Println(errors.Is(err, timeout.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// spillway: timeout "catalog": timeout exceeded: context deadline exceeded
	// deadline_exceeded
	// true true
}

func ExampleTimeout_Run_callerCanceled() {
	to := timeout.MustNew(timeout.Config{Duration: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	// The caller gave up: its error is returned as it is, not as a timeout.
	err := to.Run(ctx, func(ctx context.Context) error { return ctx.Err() })
	fmt.Println(err, errors.Is(err, timeout.ErrTimeout))
	// Output:
	// context canceled false
}

func ExampleDo() {
	to := timeout.MustNew(timeout.Config{Duration: time.Second})
	v, err := timeout.Do(context.Background(), to, func(ctx context.Context) (string, error) {
		return "fresh", nil
	})
	fmt.Println(v, err)
	// Output:
	// fresh <nil>
}
