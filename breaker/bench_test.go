package breaker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

// The speed targets of the package, measured with
//
//	go test -run='^$' -bench=. -benchmem ./breaker
//
// (and -cpu 1,2 for the parallel case). bench/ compares the same scenarios
// with the peer libraries.

var (
	benchCtx = context.Background()
	errBench = errors.New("downstream failed")
)

func benchOK(context.Context) error   { return nil }
func benchFail(context.Context) error { return errBench }

// closedForBench records every call and never trips on these workloads.
func closedForBench(b *testing.B, cfg Config) *Breaker {
	cfg.FailureRate = 0.99
	br, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return br
}

func BenchmarkClosedSuccess(b *testing.B) {
	b.Run("execute", func(b *testing.B) {
		br := closedForBench(b, Config{})
		for b.Loop() {
			_ = br.Execute(benchCtx, benchOK)
		}
	})
	b.Run("acquire-release", func(b *testing.B) {
		br := closedForBench(b, Config{})
		for b.Loop() {
			p, err := br.Acquire(benchCtx)
			if err != nil {
				b.Fatal(err)
			}
			p.Release(nil)
		}
	})
	b.Run("do", func(b *testing.B) {
		br := closedForBench(b, Config{})
		fn := func(context.Context) (int, error) { return 1, nil }
		for b.Loop() {
			_, _ = Do(benchCtx, br, fn)
		}
	})
	b.Run("time-window", func(b *testing.B) {
		br := closedForBench(b, Config{Window: TimeWindow})
		for b.Loop() {
			_ = br.Execute(benchCtx, benchOK)
		}
	})
	b.Run("slow-call-detection", func(b *testing.B) {
		br := closedForBench(b, Config{SlowCallDuration: time.Second})
		for b.Loop() {
			_ = br.Execute(benchCtx, benchOK)
		}
	})
}

func BenchmarkClosedSuccessParallel(b *testing.B) {
	b.Run("execute", func(b *testing.B) {
		br := closedForBench(b, Config{})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = br.Execute(benchCtx, benchOK)
			}
		})
	})
	b.Run("time-window", func(b *testing.B) {
		br := closedForBench(b, Config{Window: TimeWindow})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = br.Execute(benchCtx, benchOK)
			}
		})
	})
}

func BenchmarkOpenFailFast(b *testing.B) {
	b.Run("open", func(b *testing.B) {
		br := MustNew(Config{OpenFor: time.Hour})
		br.TransitionTo(Open)
		for b.Loop() {
			if err := br.Execute(benchCtx, benchOK); err == nil {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("forced-open", func(b *testing.B) {
		br := MustNew(Config{})
		br.ForceOpen()
		for b.Loop() {
			if err := br.Execute(benchCtx, benchOK); err == nil {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("clock-reference", func(b *testing.B) {
		var n int64
		for b.Loop() {
			n += spillway.SystemClock.Nanotime()
		}
		_ = n
	})
}

// failPattern fails about half of the calls in an irregular order (a
// xorshift generator), so that the ring's slots keep changing: an
// alternating pattern over an even window would leave every slot as it is.
type failPattern uint64

func (p *failPattern) next() bool {
	x := uint64(*p)
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*p = failPattern(x)
	return x&1 == 1
}

func BenchmarkHalfFailuresClosed(b *testing.B) {
	run := func(b *testing.B, cfg Config) {
		br := closedForBench(b, cfg)
		p := failPattern(88172645463325252)
		for b.Loop() {
			if p.next() {
				_ = br.Execute(benchCtx, benchFail)
			} else {
				_ = br.Execute(benchCtx, benchOK)
			}
		}
		if br.State() != Closed {
			b.Fatal("breaker opened")
		}
	}
	b.Run("count-window", func(b *testing.B) { run(b, Config{}) })
	b.Run("count-window-consecutive", func(b *testing.B) { run(b, Config{ConsecutiveFailures: 1000}) })
	b.Run("time-window", func(b *testing.B) { run(b, Config{Window: TimeWindow}) })
	b.Run("alternating", func(b *testing.B) {
		br := closedForBench(b, Config{})
		i := 0
		for b.Loop() {
			i++
			if i&1 == 1 {
				_ = br.Execute(benchCtx, benchFail)
			} else {
				_ = br.Execute(benchCtx, benchOK)
			}
		}
	})
}
