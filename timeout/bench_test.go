package timeout_test

import (
	"context"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/timeout"
)

func noop(context.Context) error { return nil }

// BenchmarkBareWithTimeout is the floor Run is measured against: what a
// caller pays to bound a call with the standard library alone.
func BenchmarkBareWithTimeout(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = noop(c)
		cancel()
	}
}

func BenchmarkRun(b *testing.B) {
	to := timeout.MustNew(timeout.Config{Name: "bench", Duration: 5 * time.Second})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = to.Run(ctx, noop)
	}
}

func BenchmarkDo(b *testing.B) {
	to := timeout.MustNew(timeout.Config{Name: "bench", Duration: 5 * time.Second})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		_, _ = timeout.Do(ctx, to, fn)
	}
}
