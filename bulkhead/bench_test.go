package bulkhead_test

import (
	"context"
	"testing"

	"github.com/spillway-dev/spillway/bulkhead"
)

// BenchmarkAcquireRelease is the hot path: a free slot, nobody waiting.
func BenchmarkAcquireRelease(b *testing.B) {
	acquireRelease(b, bulkhead.MustNew(bulkhead.Config{}))
}

// acquireRelease admits a call under bh and releases it, b.N times.
func acquireRelease(b *testing.B, bh *bulkhead.Bulkhead) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := bh.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(nil)
	}
}

// BenchmarkAcquireReleaseParallel contends on the counter from every P; run
// it with -cpu 2 (or more). The limit is high enough never to be reached.
func BenchmarkAcquireReleaseParallel(b *testing.B) {
	acquireReleaseParallel(b, bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1 << 20}))
}

// acquireReleaseParallel is acquireRelease from every P.
func acquireReleaseParallel(b *testing.B, bh *bulkhead.Bulkhead) {
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := bh.Acquire(ctx)
			if err != nil {
				panic(err)
			}
			p.Release(nil)
		}
	})
}

func BenchmarkExecute(b *testing.B) {
	bh := bulkhead.MustNew(bulkhead.Config{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		_ = bh.Execute(ctx, fn)
	}
}

// BenchmarkReject is a full bulkhead without a queue refusing a call.
func BenchmarkReject(b *testing.B) {
	bh := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1})
	ctx := context.Background()
	if _, err := bh.Acquire(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bh.Acquire(ctx); err == nil {
			b.Fatal("admitted")
		}
	}
}

// BenchmarkAdaptiveAcquireRelease is the hot path of an adaptive bulkhead:
// a free slot, the round trip sampled on release (a window closes every
// 100ms).
func BenchmarkAdaptiveAcquireRelease(b *testing.B) {
	acquireRelease(b, bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1 << 20, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.Gradient2}}))
}

// BenchmarkAdaptiveAcquireReleaseParallel contends on the window's counters
// from every P; run it with -cpu 2 (or more).
func BenchmarkAdaptiveAcquireReleaseParallel(b *testing.B) {
	acquireReleaseParallel(b, bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1 << 20, Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.Gradient2}}))
}
