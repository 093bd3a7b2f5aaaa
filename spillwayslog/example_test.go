package spillwayslog_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/spillwayslog"
)

// A breaker trips and then rejects a storm of calls: the transition is a
// Warn line, the rejections are limited to two lines a minute, and the first
// rejection of the next minute first says how many were suppressed.
func ExampleNew() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{} // deterministic output
			}
			return a
		},
	}))
	clock := spillway.NewManualClock(0)
	obs := spillwayslog.New(logger, spillwayslog.Options{MaxPerInterval: 2, Interval: time.Minute, Clock: clock})

	br := breaker.MustNew(breaker.Config{Name: "catalog", MinCalls: 2, WindowSize: 2, OpenFor: 5 * time.Minute,
		Clock: clock, Observer: obs})
	for range 100 {
		_ = br.Execute(context.Background(), func(context.Context) error { return errors.New("catalog is down") })
	}
	clock.Advance(time.Minute)
	_ = br.Execute(context.Background(), func(context.Context) error { return nil })
	// Output:
	// level=WARN msg="circuit breaker state changed" policy=breaker name=catalog from=closed to=open
	// level=DEBUG msg="call rejected" policy=breaker name=catalog reason=breaker_open
	// level=DEBUG msg="call rejected" policy=breaker name=catalog reason=breaker_open
	// level=DEBUG msg="rejections suppressed" policy=breaker name=catalog reason=breaker_open suppressed=96 interval=1m0s
	// level=DEBUG msg="call rejected" policy=breaker name=catalog reason=breaker_open
}
