package bench

import (
	"context"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

// Each Benchmark compares Spillway with the peers on one scenario; run with
//
//	go test -run='^$' -bench=. -benchmem -count=6 ./... | tee bench.txt
//
// and summarise with benchstat. docs/benchmarks.md has the figures.

var ctx = context.Background()

func ok(context.Context) error             { return nil }
func okValue(context.Context) (int, error) { return 1, nil }

// closedBreaker records every call and never trips on the workloads here.
func closedBreaker(b *testing.B) *breaker.Breaker {
	br, err := breaker.New(breaker.Config{Name: "bench", FailureRate: 0.99})
	if err != nil {
		b.Fatal(err)
	}
	return br
}

func BenchmarkBreakerClosedSuccess(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		br := closedBreaker(b)
		for b.Loop() {
			_ = br.Execute(ctx, ok)
		}
	})
	b.Run("spillway-permit", func(b *testing.B) {
		br := closedBreaker(b)
		for b.Loop() {
			p, err := br.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			p.Release(nil)
		}
	})
	b.Run("gobreaker", benchGobreakerClosedSuccess)
	b.Run("failsafe-go", benchFailsafeClosedSuccess)
	b.Run("go-resiliency", benchResiliencyClosedSuccess)
	b.Run("hystrix-go", benchHystrixClosedSuccess)
}

func BenchmarkBreakerClosedSuccessParallel(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		br := closedBreaker(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = br.Execute(ctx, ok)
			}
		})
	})
	b.Run("gobreaker", benchGobreakerClosedSuccessParallel)
	b.Run("failsafe-go", benchFailsafeClosedSuccessParallel)
	b.Run("go-resiliency", benchResiliencyClosedSuccessParallel)
}

func BenchmarkBreakerOpen(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		br, err := breaker.New(breaker.Config{Name: "bench", ConsecutiveFailures: 1, OpenFor: time.Hour, MaxOpenFor: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		_ = br.Execute(ctx, func(context.Context) error { return errFail })
		if br.State() != breaker.Open {
			b.Fatalf("state %v, want open", br.State())
		}
		for b.Loop() {
			_ = br.Execute(ctx, ok)
		}
	})
	b.Run("gobreaker", benchGobreakerOpen)
	b.Run("failsafe-go", benchFailsafeOpen)
	b.Run("go-resiliency", benchResiliencyOpen)
}

func BenchmarkBreakerHalfFailuresClosed(b *testing.B) {
	b.Run("spillway-count", func(b *testing.B) {
		br := closedBreaker(b)
		i := 0
		fail := func(context.Context) error { return errFail }
		for b.Loop() {
			i++
			if i&1 == 1 {
				_ = br.Execute(ctx, fail)
			} else {
				_ = br.Execute(ctx, ok)
			}
		}
		if br.State() != breaker.Closed {
			b.Fatal("breaker opened")
		}
	})
	b.Run("spillway-time", func(b *testing.B) {
		br, err := breaker.New(breaker.Config{Name: "bench", Window: breaker.TimeWindow, FailureRate: 0.99})
		if err != nil {
			b.Fatal(err)
		}
		i := 0
		fail := func(context.Context) error { return errFail }
		for b.Loop() {
			i++
			if i&1 == 1 {
				_ = br.Execute(ctx, fail)
			} else {
				_ = br.Execute(ctx, ok)
			}
		}
	})
	b.Run("gobreaker", benchGobreakerHalfFailures)
	b.Run("failsafe-go", benchFailsafeHalfFailures)
	b.Run("go-resiliency", benchResiliencyHalfFailures)
}

func BenchmarkRetryFirstSuccess(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		rp := retry.MustNew(retry.Config{}) // with the budget it gets by default
		for b.Loop() {
			_, _ = retry.Do(ctx, rp, okValue)
		}
	})
	b.Run("spillway-nobudget", func(b *testing.B) {
		rp := retry.MustNew(retry.Config{NoBudget: true})
		for b.Loop() {
			_, _ = retry.Do(ctx, rp, okValue)
		}
	})
	b.Run("failsafe-go", benchFailsafeRetryFirstSuccess)
	b.Run("go-resiliency", benchResiliencyRetryFirstSuccess)
	b.Run("cenkalti-backoff", benchBackoffRetryFirstSuccess)
}

func BenchmarkBulkheadAcquireRelease(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		acquireRelease(b, bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 100}))
	})
	b.Run("failsafe-go", benchFailsafeBulkhead)
	b.Run("go-resiliency", benchResiliencySemaphore)
}

func BenchmarkBulkheadAcquireReleaseParallel(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		acquireReleaseParallel(b, bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1 << 20}))
	})
	b.Run("failsafe-go", benchFailsafeBulkheadParallel)
}

// standardPipeline is Spillway's standard pipeline with the brief's
// defaults: fallback, retry with budget, breaker, bulkhead and, when asked,
// an attempt timeout (no total timeout: the comparison with failsafe-go's
// composition of the same policies).
func standardPipeline(withTimeout bool) *spillway.Pipeline[int] {
	fb := fallback.MustNew(fallback.Config{}, fallback.Value("static", 0))
	rp := retry.MustNew(retry.Config{}) // with its default budget
	br := breaker.MustNew(breaker.Config{})
	bh := bulkhead.MustNew(bulkhead.Config{})
	if withTimeout {
		return spillway.MustNewPipeline(spillway.Policies[int]{Fallback: fb, Retry: rp, Breaker: br, Bulkhead: bh, Attempt: timeout.MustNew(timeout.Config{Duration: 5 * time.Second})})
	}
	return spillway.MustNewPipeline(spillway.Policies[int]{Fallback: fb, Retry: rp, Breaker: br, Bulkhead: bh})
}

func BenchmarkPipeline(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		pl := standardPipeline(false)
		for b.Loop() {
			_, _ = pl.Execute(ctx, okValue)
		}
	})
	b.Run("failsafe-go", func(b *testing.B) { benchFailsafePipeline(b, false) })
}

func BenchmarkPipelineAttemptTimeout(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		pl := standardPipeline(true)
		for b.Loop() {
			_, _ = pl.Execute(ctx, okValue)
		}
	})
	b.Run("failsafe-go", func(b *testing.B) { benchFailsafePipeline(b, true) })
	b.Run("bare-context-with-timeout", benchBareWithTimeout)
}

func BenchmarkPipelineParallel(b *testing.B) {
	pl := standardPipeline(false)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = pl.Execute(ctx, okValue)
		}
	})
}

func BenchmarkReference(b *testing.B) {
	b.Run("atomic-add", benchAtomicAdd)
	b.Run("time-now", benchTimeNow)
	b.Run("clock-nanotime", func(b *testing.B) {
		var n int64
		for b.Loop() {
			n += spillway.SystemClock.Nanotime()
		}
		_ = n
	})
	b.Run("context-with-timeout", benchBareWithTimeout)
}
