package bench

import (
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	fsratelimiter "github.com/failsafe-go/failsafe-go/ratelimiter"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/ratelimit"
)

// The rate limiters' allowed call: a limit of a billion calls a second
// (and a burst as large, for the bursty ones) admits every call of a
// benchmark, so each measures the bookkeeping of an admitted call.
// Smooth is one call per interval (Spillway's Burst 1, failsafe-go's
// NewSmooth); bursty a bucket of many (Burst, NewBursty).

const benchRate = 1_000_000_000

func spillwayLimiter(b *testing.B, burst int) *ratelimit.Limiter {
	l, err := ratelimit.New(ratelimit.Config{Name: "bench", Limit: benchRate, Per: time.Second, Burst: burst})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func BenchmarkRateLimiterAllowed(b *testing.B) {
	for _, mode := range []struct {
		name  string
		burst int
		fs    func() fsratelimiter.RateLimiter[any]
	}{
		{"smooth", 1, func() fsratelimiter.RateLimiter[any] { return fsratelimiter.NewSmooth[any](benchRate, time.Second) }},
		{"bursty", benchRate, func() fsratelimiter.RateLimiter[any] { return fsratelimiter.NewBursty[any](benchRate, time.Second) }},
	} {
		b.Run(mode.name+"/spillway-permit", func(b *testing.B) {
			l := spillwayLimiter(b, mode.burst)
			for b.Loop() {
				p, err := l.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				p.Release(nil)
			}
		})
		b.Run(mode.name+"/spillway-execute", func(b *testing.B) {
			l := spillwayLimiter(b, mode.burst)
			for b.Loop() {
				if err := l.Execute(ctx, ok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode.name+"/failsafe-go-permit", func(b *testing.B) {
			rl := mode.fs()
			for b.Loop() {
				if !rl.TryAcquirePermit() {
					b.Fatal("refused")
				}
			}
		})
		b.Run(mode.name+"/failsafe-go-execute", func(b *testing.B) {
			ex := failsafe.With[any](mode.fs())
			for b.Loop() {
				if err := ex.Run(okErr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRateLimiterAllowedParallel(b *testing.B) {
	b.Run("bursty/spillway-permit", func(b *testing.B) {
		l := spillwayLimiter(b, benchRate)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p, _ := l.Acquire(ctx)
				p.Release(nil)
			}
		})
	})
	b.Run("bursty/failsafe-go-permit", func(b *testing.B) {
		rl := fsratelimiter.NewBursty[any](benchRate, time.Second)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rl.TryAcquirePermit()
			}
		})
	})
}

// BenchmarkRateLimiterRefused is the refusal, the path a flood takes.
func BenchmarkRateLimiterRefused(b *testing.B) {
	b.Run("spillway-permit", func(b *testing.B) {
		l, err := ratelimit.New(ratelimit.Config{Limit: 1, Per: time.Hour, Clock: spillway.NewManualClock(0)})
		if err != nil {
			b.Fatal(err)
		}
		l.Allow()
		for b.Loop() {
			if _, err := l.Acquire(ctx); err == nil {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("failsafe-go-permit", func(b *testing.B) {
		rl := fsratelimiter.NewBursty[any](1, time.Hour)
		rl.TryAcquirePermit()
		for b.Loop() {
			if rl.TryAcquirePermit() {
				b.Fatal("admitted")
			}
		}
	})
	b.Run("failsafe-go-execute", func(b *testing.B) {
		rl := fsratelimiter.NewBursty[any](1, time.Hour)
		rl.TryAcquirePermit()
		ex := failsafe.With[any](rl)
		for b.Loop() {
			if ex.Run(okErr) == nil {
				b.Fatal("admitted")
			}
		}
	})
}

// BenchmarkRateLimiterPerKey is a tracked client's allowed call of
// Spillway's per-key limiter, over 10,000 clients (failsafe-go has no
// per-key limiter).
func BenchmarkRateLimiterPerKey(b *testing.B) {
	k, err := ratelimit.NewKeyed(ratelimit.KeyedConfig{Config: ratelimit.Config{Limit: benchRate, Burst: benchRate}})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = "client-" + time.Duration(i).String()
		k.AllowKey(keys[i])
	}
	i := 0
	for b.Loop() {
		if ok, _ := k.AllowKey(keys[i%len(keys)]); !ok {
			b.Fatal("refused")
		}
		i++
	}
}
