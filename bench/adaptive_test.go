package bench

import (
	"testing"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"

	"github.com/spillway-dev/spillway/bulkhead"
)

// The hot path of an adaptive concurrency limit: a call admitted under the
// limit and released as a success, its round trip sampled. Spillway's
// limit is a bulkhead mode (bulkhead.Config.Adaptive); failsafe-go's is
// adaptivelimiter. Both start at their defaults with an upper bound the
// benchmark never reaches, so every call is admitted; both read the
// system clock twice per call.

func adaptiveBulkhead(b *testing.B, alg bulkhead.Algorithm) *bulkhead.Bulkhead {
	bh, err := bulkhead.New(bulkhead.Config{Name: "bench", MaxConcurrent: 1 << 20, Adaptive: bulkhead.Adaptive{Algorithm: alg, InitialLimit: 1 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	return bh
}

func failsafeAdaptiveLimiter() adaptivelimiter.AdaptiveLimiter[any] {
	return adaptivelimiter.NewBuilder[any]().WithLimits(1, 1<<20, 1<<20).Build()
}

func BenchmarkAdaptiveAcquireRelease(b *testing.B) {
	for _, alg := range []bulkhead.Algorithm{bulkhead.Static, bulkhead.Gradient2, bulkhead.AIMD, bulkhead.Vegas} {
		name := "spillway-" + string(alg)
		if alg == bulkhead.Static {
			name = "spillway-static"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			acquireRelease(b, adaptiveBulkhead(b, alg))
		})
	}
	b.Run("failsafe-go", func(b *testing.B) {
		l := failsafeAdaptiveLimiter()
		b.ReportAllocs()
		for b.Loop() {
			p, ok := l.TryAcquirePermit()
			if !ok {
				b.Fatal("refused")
			}
			p.Record()
		}
	})
}

func BenchmarkAdaptiveAcquireReleaseParallel(b *testing.B) {
	b.Run("spillway-gradient2", func(b *testing.B) {
		b.ReportAllocs()
		acquireReleaseParallel(b, adaptiveBulkhead(b, bulkhead.Gradient2))
	})
	b.Run("failsafe-go", func(b *testing.B) {
		l := failsafeAdaptiveLimiter()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p, ok := l.TryAcquirePermit()
				if !ok {
					panic("refused")
				}
				p.Record()
			}
		})
	})
}

// acquireRelease admits a call under bh and releases it as a success, b.N
// times.
func acquireRelease(b *testing.B, bh *bulkhead.Bulkhead) {
	for b.Loop() {
		p, err := bh.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(nil)
	}
}

// acquireReleaseParallel is acquireRelease from every P.
func acquireReleaseParallel(b *testing.B, bh *bulkhead.Bulkhead) {
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
