package ratelimit

import (
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"pgregory.net/rapid"
)

// TestAdmittedWithinTheRate: over any sequence of calls in fake time, the
// calls admitted in any span [a, b] number at most Burst + (b-a)·Limit/Per,
// and the limiter admits exactly what a plain token bucket of integer
// credit would (so it is not merely strict: it refuses only when empty).
func TestAdmittedWithinTheRate(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		limit := rapid.IntRange(1, 1000).Draw(t, "limit")
		per := time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(time.Hour)).Draw(t, "per"))
		burst := rapid.IntRange(1, 20).Draw(t, "burst")
		clock := spillway.NewManualClock(time.Duration(rapid.Int64Range(0, 1<<40).Draw(t, "start")))
		l := MustNew(Config{Limit: limit, Per: per, Burst: burst, Clock: clock})
		keyed := MustNewKeyed(KeyedConfig{Config: Config{Limit: limit, Per: per, Burst: burst, Clock: clock}})
		interval := (int64(per) + int64(limit) - 1) / int64(limit)
		span := int64(burst) * interval
		credit := span // the model: a token costs interval credit, refilled 1 per ns up to span
		var admitted []int64
		last := clock.Nanotime()
		steps := rapid.IntRange(1, 200).Draw(t, "steps")
		for range steps {
			clock.Advance(time.Duration(rapid.Int64Range(0, 3*interval).Draw(t, "gap")))
			now := clock.Nanotime()
			credit = min(span, credit+(now-last))
			last = now
			ok, wait := l.Allow()
			kok, kwait := keyed.AllowKey("k")
			if ok != kok || wait != kwait {
				t.Fatalf("Limiter says %v, %v; Keyed says %v, %v", ok, wait, kok, kwait)
			}
			if want := credit >= interval; ok != want {
				t.Fatalf("at %d: Allow = %v, the token bucket with credit %d of %d per token says %v", now, ok, credit, interval, want)
			}
			if ok {
				credit -= interval
				admitted = append(admitted, now)
			} else if want := time.Duration(interval - credit); wait != want {
				t.Fatalf("retryAfter = %v, want %v", wait, want)
			}
		}
		for i := range admitted {
			for j := i; j < len(admitted); j++ {
				elapsed := float64(admitted[j]-admitted[i]) / float64(per)
				if n := float64(j - i + 1); n > float64(burst)+elapsed*float64(limit) {
					t.Fatalf("%v calls admitted in %v: more than burst %d + %d per %v", n, time.Duration(admitted[j]-admitted[i]), burst, limit, per)
				}
			}
		}
	})
}
