package bench

import (
	"errors"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/adaptivethrottler"

	"github.com/spillway-dev/spillway/throttle"
)

// The client-side throttles, Spillway's throttle.Throttler and failsafe-go's
// adaptivethrottler (both the Google SRE book's formula), on three paths:
//
//	allowed     a healthy downstream: the probability is 0, every call goes through
//	throttling  one call in three fails (K 1.1, failure threshold 0.1): the
//	            probability is above 0, each call draws a random number
//	parallel    allowed, from every P
//
// Each side is measured both as the bare guard (acquire, record) and, for
// failsafe-go, through its executor (what a caller of failsafe.With writes).

var errThrottleBench = errors.New("503")

func BenchmarkThrottleAllowed(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		th := throttle.MustNew(throttle.Config{})
		b.ReportAllocs()
		for b.Loop() {
			p, err := th.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			p.Release(nil)
		}
	})
	b.Run("spillway-execute", func(b *testing.B) {
		th := throttle.MustNew(throttle.Config{})
		b.ReportAllocs()
		for b.Loop() {
			_ = th.Execute(ctx, ok)
		}
	})
	b.Run("failsafe-go", func(b *testing.B) {
		at := adaptivethrottler.NewWithDefaults[any]()
		b.ReportAllocs()
		for b.Loop() {
			if err := at.AcquirePermit(); err != nil {
				b.Fatal(err)
			}
			at.RecordSuccess()
		}
	})
	b.Run("failsafe-go-executor", func(b *testing.B) {
		ex := failsafe.With[any](adaptivethrottler.NewWithDefaults[any]())
		b.ReportAllocs()
		for b.Loop() {
			_ = ex.Run(okErr)
		}
	})
}

func BenchmarkThrottleAllowedParallel(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		th := throttle.MustNew(throttle.Config{})
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
	})
	b.Run("failsafe-go", func(b *testing.B) {
		at := adaptivethrottler.NewWithDefaults[any]()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := at.AcquirePermit(); err != nil {
					panic(err)
				}
				at.RecordSuccess()
			}
		})
	})
}

func BenchmarkThrottleThrottling(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		th := throttle.MustNew(throttle.Config{K: 1.1})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if p, err := th.Acquire(ctx); err == nil {
				if i%3 == 0 {
					p.Release(errThrottleBench)
				} else {
					p.Release(nil)
				}
			}
		}
	})
	b.Run("failsafe-go", func(b *testing.B) {
		at := adaptivethrottler.NewBuilder[any]().WithFailureRateThreshold(0.1, 0, time.Minute).Build()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if at.AcquirePermit() == nil {
				if i%3 == 0 {
					at.RecordFailure()
				} else {
					at.RecordSuccess()
				}
			}
		}
	})
}
