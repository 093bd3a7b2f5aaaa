package bench

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/cenkalti/backoff/v5"
	resbreaker "github.com/eapache/go-resiliency/breaker"
	"github.com/eapache/go-resiliency/retrier"
	"github.com/eapache/go-resiliency/semaphore"
	"github.com/failsafe-go/failsafe-go"
	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	fsbreaker "github.com/failsafe-go/failsafe-go/circuitbreaker"
	fsfallback "github.com/failsafe-go/failsafe-go/fallback"
	fsretry "github.com/failsafe-go/failsafe-go/retrypolicy"
	fstimeout "github.com/failsafe-go/failsafe-go/timeout"
	"github.com/sony/gobreaker/v2"
)

// The peers' sides of each comparison. Every function runs b.N operations
// of one scenario with the peer configured as close to Spillway's scenario
// as its model allows; the Benchmark functions in spillway_test.go put the
// two sides next to each other.

var errFail = errors.New("downstream failed")

func okAny() (any, error)   { return nil, nil }
func okErr() error          { return nil }
func failErr() error        { return errFail }
func failAny() (any, error) { return nil, errFail }

// alternate fails every other call: the 50 % failure scenario.
func alternate(i int) error {
	if i&1 == 1 {
		return errFail
	}
	return nil
}

// gobreaker

func gobreakerClosed() *gobreaker.CircuitBreaker[any] {
	return gobreaker.NewCircuitBreaker[any](gobreaker.Settings{Name: "bench",
		ReadyToTrip: func(gobreaker.Counts) bool { return false }})
}

func benchGobreakerClosedSuccess(b *testing.B) {
	cb := gobreakerClosed()
	for b.Loop() {
		_, _ = cb.Execute(okAny)
	}
}

func benchGobreakerClosedSuccessParallel(b *testing.B) {
	cb := gobreakerClosed()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = cb.Execute(okAny)
		}
	})
}

func benchGobreakerOpen(b *testing.B) {
	cb := gobreaker.NewCircuitBreaker[any](gobreaker.Settings{Name: "bench", Timeout: time.Hour,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 }})
	_, _ = cb.Execute(failAny)
	if cb.State() != gobreaker.StateOpen {
		b.Fatal("gobreaker did not open")
	}
	for b.Loop() {
		_, _ = cb.Execute(okAny)
	}
}

func benchGobreakerHalfFailures(b *testing.B) {
	cb := gobreakerClosed()
	i := 0
	for b.Loop() {
		i++
		_, _ = cb.Execute(func() (any, error) { return nil, alternate(i) })
	}
}

// failsafe-go

func failsafeClosed() failsafe.Executor[any] {
	// A failure threshold no run reaches: the breaker stays closed while it records.
	cb := fsbreaker.NewBuilder[any]().WithFailureThresholdRatio(1000, 1000).Build()
	return failsafe.With[any](cb)
}

func benchFailsafeClosedSuccess(b *testing.B) {
	ex := failsafeClosed()
	for b.Loop() {
		_ = ex.Run(okErr)
	}
}

func benchFailsafeClosedSuccessParallel(b *testing.B) {
	ex := failsafeClosed()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = ex.Run(okErr)
		}
	})
}

func benchFailsafeOpen(b *testing.B) {
	cb := fsbreaker.NewBuilder[any]().WithDelay(time.Hour).Build()
	cb.Open()
	ex := failsafe.With[any](cb)
	for b.Loop() {
		_ = ex.Run(okErr)
	}
}

func benchFailsafeHalfFailures(b *testing.B) {
	ex := failsafeClosed()
	i := 0
	for b.Loop() {
		i++
		_ = ex.Run(func() error { return alternate(i) })
	}
}

func benchFailsafeRetryFirstSuccess(b *testing.B) {
	rp := fsretry.NewBuilder[any]().WithMaxAttempts(3).WithBackoff(100*time.Millisecond, 5*time.Second).Build()
	ex := failsafe.With[any](rp)
	for b.Loop() {
		_ = ex.Run(okErr)
	}
}

func benchFailsafeBulkhead(b *testing.B) {
	bh := fsbulkhead.New[any](100)
	for b.Loop() {
		if !bh.TryAcquirePermit() {
			b.Fatal("bulkhead full")
		}
		bh.ReleasePermit()
	}
}

func benchFailsafeBulkheadParallel(b *testing.B) {
	bh := fsbulkhead.New[any](1 << 20)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !bh.TryAcquirePermit() {
				panic("bulkhead full")
			}
			bh.ReleasePermit()
		}
	})
}

// failsafePipeline is failsafe-go's composition of the same policies as
// Spillway's standard pipeline: fallback, retry, breaker, bulkhead and
// optionally an attempt timeout.
func failsafePipeline(withTimeout bool) failsafe.Executor[any] {
	fb := fsfallback.NewWithResult[any]("fallback")
	rp := fsretry.NewBuilder[any]().WithMaxAttempts(3).WithBackoff(100*time.Millisecond, 5*time.Second).Build()
	cb := fsbreaker.NewBuilder[any]().WithFailureThresholdRatio(10, 20).WithDelay(30 * time.Second).Build()
	bh := fsbulkhead.New[any](100)
	if withTimeout {
		return failsafe.With[any](fb, rp, cb, bh, fstimeout.New[any](5*time.Second))
	}
	return failsafe.With[any](fb, rp, cb, bh)
}

func benchFailsafePipeline(b *testing.B, withTimeout bool) {
	ex := failsafePipeline(withTimeout)
	ctx := context.Background()
	ex = ex.WithContext(ctx)
	for b.Loop() {
		_, _ = ex.Get(okAny)
	}
}

// hystrix-go runs every command on a goroutine of its own.

func benchHystrixClosedSuccess(b *testing.B) {
	hystrix.ConfigureCommand("bench", hystrix.CommandConfig{Timeout: 5000, MaxConcurrentRequests: 1 << 20,
		RequestVolumeThreshold: 1 << 30, ErrorPercentThreshold: 100})
	for b.Loop() {
		_ = hystrix.Do("bench", okErr, nil)
	}
}

// eapache/go-resiliency: a consecutive-failure breaker that records nothing
// on success, a retrier and a semaphore.

func benchResiliencyClosedSuccess(b *testing.B) {
	cb := resbreaker.New(1<<30, 1, time.Hour)
	for b.Loop() {
		_ = cb.Run(okErr)
	}
}

func benchResiliencyClosedSuccessParallel(b *testing.B) {
	cb := resbreaker.New(1<<30, 1, time.Hour)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = cb.Run(okErr)
		}
	})
}

func benchResiliencyOpen(b *testing.B) {
	cb := resbreaker.New(1, 1, time.Hour)
	_ = cb.Run(failErr)
	for b.Loop() {
		_ = cb.Run(okErr)
	}
}

func benchResiliencyHalfFailures(b *testing.B) {
	cb := resbreaker.New(1<<30, 1, time.Hour)
	i := 0
	for b.Loop() {
		i++
		_ = cb.Run(func() error { return alternate(i) })
	}
}

func benchResiliencyRetryFirstSuccess(b *testing.B) {
	r := retrier.New(retrier.ExponentialBackoff(2, 100*time.Millisecond), nil)
	for b.Loop() {
		_ = r.Run(okErr)
	}
}

func benchResiliencySemaphore(b *testing.B) {
	s := semaphore.New(100, time.Second) // a zero timeout makes Acquire race its own expired timer
	for b.Loop() {
		if err := s.Acquire(); err != nil {
			b.Fatal(err)
		}
		s.Release()
	}
}

// cenkalti/backoff

func benchBackoffRetryFirstSuccess(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		_, _ = backoff.Retry(ctx, okAny, backoff.WithMaxTries(3))
	}
}

// References: what the machine's primitives cost in the same run.

var sink atomic.Int64

func benchAtomicAdd(b *testing.B) {
	for b.Loop() {
		sink.Add(1)
	}
}

func benchTimeNow(b *testing.B) {
	var t time.Time
	for b.Loop() {
		t = time.Now()
	}
	_ = t
}

func benchBareWithTimeout(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = okErrCtx(c)
		cancel()
	}
}

func okErrCtx(context.Context) error { return nil }
