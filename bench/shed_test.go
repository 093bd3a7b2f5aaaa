package bench

import (
	"context"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/shed"
)

// Priority shedding and slow start have no direct equivalent in
// failsafe-go v0.9.8 (its adaptive limiter has no priority classes, its
// breaker no slow start): the shedder is compared with its own bulkhead
// and with failsafe-go's bulkhead, the nearest admission check, and the
// breaker with SlowStart configured with the same breaker without it.

// BenchmarkShedAdmit: a call of each class at 50 % utilization (a default
// and a critical one are admitted, a sheddable one is shed), then the
// shedder in front of a bulkhead.
func BenchmarkShedAdmit(b *testing.B) {
	bh := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 100})
	for range 50 {
		if _, ok := bh.TryAcquire(); !ok {
			b.Fatal("bulkhead full")
		}
	}
	s := shed.MustNew(shed.Config{Limiter: bh})
	for _, p := range []spillway.Priority{spillway.PriorityDefault, spillway.PriorityCritical, spillway.PrioritySheddable} {
		c := spillway.WithPriority(ctx, p)
		b.Run("spillway-"+p.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = s.Acquire(c)
			}
		})
	}
	// The shedder in front of a free bulkhead: compare with
	// BenchmarkBulkheadAcquireRelease (the bulkhead alone, and
	// failsafe-go's) in the same run.
	b.Run("spillway-shed+bulkhead", func(b *testing.B) {
		free := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 100})
		s := shed.MustNew(shed.Config{Limiter: free})
		b.ReportAllocs()
		for b.Loop() {
			ps, err := s.Acquire(ctx)
			pb, err2 := free.Acquire(ctx)
			if err != nil || err2 != nil {
				b.Fatal(err, err2)
			}
			pb.Release(nil)
			ps.Release(nil)
		}
	})
}

// BenchmarkBreakerSlowStart: a closed breaker's permit with SlowStart
// configured and not ramping costs what it costs without; while ramping,
// each call reads the clock and draws.
func BenchmarkBreakerSlowStart(b *testing.B) {
	run := func(b *testing.B, br *breaker.Breaker) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := br.Acquire(ctx)
			if err == nil {
				p.Release(nil)
			}
		}
	}
	b.Run("without", func(b *testing.B) { run(b, breaker.MustNew(breaker.Config{})) })
	b.Run("configured-not-ramping", func(b *testing.B) {
		run(b, breaker.MustNew(breaker.Config{SlowStart: 30 * time.Second}))
	})
	b.Run("ramping", func(b *testing.B) {
		// At the ramp's start (10 % admitted) on an explicit clock: the
		// cost of the ramp's own reads and draw, most calls rejected.
		clock := spillway.NewManualClock(0)
		br := breaker.MustNew(breaker.Config{ConsecutiveFailures: 1, HalfOpenProbes: 1, OpenFor: time.Second, SlowStart: time.Hour, Clock: clock})
		_ = br.Execute(ctx, func(context.Context) error { return errFail })
		clock.Advance(time.Second)
		_ = br.Execute(ctx, ok) // the probe closes it: an hour of ramp
		if br.Snapshot().SlowStartLeft == 0 {
			b.Fatal("not ramping")
		}
		run(b, br)
	})
}
