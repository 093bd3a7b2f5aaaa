package throttle_test

import (
	"context"
	"testing"

	"github.com/spillway-dev/spillway/throttle"
)

// BenchmarkAcquireRelease is the hot path: a healthy downstream, an
// admitted call and its accept.
func BenchmarkAcquireRelease(b *testing.B) {
	th := throttle.MustNew(throttle.Config{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := th.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(nil)
	}
}

// BenchmarkAcquireReleaseParallel contends on the current bucket from
// every P; run it with -cpu 2 (or more).
func BenchmarkAcquireReleaseParallel(b *testing.B) {
	th := throttle.MustNew(throttle.Config{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := th.Acquire(ctx)
			if err != nil {
				panic(err)
			}
			p.Release(nil)
		}
	})
}

// BenchmarkThrottling is a degraded downstream: one call in three fails,
// so the probability is above 0 and every call draws a random number.
func BenchmarkThrottling(b *testing.B) {
	th := throttle.MustNew(throttle.Config{K: 1.1})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if p, err := th.Acquire(ctx); err == nil {
			if i%3 == 0 {
				p.Release(errDown)
			} else {
				p.Release(nil)
			}
		}
	}
}
