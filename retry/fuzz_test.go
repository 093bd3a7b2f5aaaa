package retry_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/retry"
)

// FuzzConfig checks that New and NewBudget either refuse a configuration
// with an error naming a field, or accept it and then behave: the filled-in
// configuration is valid and stable, and delays and allowances stay in bounds.
func FuzzConfig(f *testing.F) {
	f.Add(0, uint8(0), int64(0), int64(0), 0.0, uint8(0), int64(0), 0.0, int64(0), 0.0, 0, 0.5)
	f.Add(5, uint8(1), int64(time.Millisecond), int64(time.Second), 3.0, uint8(1), int64(time.Minute), 0.1, int64(time.Minute), 1.0, 60, 0.9)
	f.Add(3, uint8(2), int64(time.Second), int64(time.Hour), 0.0, uint8(3), int64(0), -1.0, int64(time.Second), 5.0, 1000, 0.0)
	f.Add(-1, uint8(9), int64(-1), int64(-1), math.NaN(), uint8(7), int64(-1), math.Inf(1), int64(-1), math.NaN(), -1, 2.0)
	f.Add(1, uint8(0), int64(10*time.Second), int64(0), 0.5, uint8(2), int64(1), -1.0, int64(5*time.Millisecond), -1.0, 10, -1.0)
	f.Add(math.MaxInt, uint8(0), int64(1), int64(math.MaxInt64), math.MaxFloat64, uint8(2), int64(math.MaxInt64), math.MaxFloat64, int64(math.MaxInt64), math.MaxFloat64, 1, 0.999)
	f.Fuzz(func(t *testing.T, maxAttempts int, backoff uint8, initial, maxD int64, mult float64, jitter uint8, maxElapsed int64,
		ratio float64, window int64, minPerSecond float64, buckets int, r float64) {
		cfg := retry.Config{
			MaxAttempts: maxAttempts, Backoff: retry.BackoffKind(backoff), Initial: time.Duration(initial), Max: time.Duration(maxD),
			Multiplier: mult, Jitter: retry.JitterKind(jitter), MaxElapsed: time.Duration(maxElapsed), Rand: fixed(r),
		}
		if p, err := retry.New(cfg); err != nil {
			if p != nil || !strings.HasPrefix(err.Error(), "retry: ") {
				t.Fatalf("New(%+v) = %v, %v", cfg, p, err)
			}
		} else {
			checkPolicy(t, p)
		}

		clock := spillway.NewManualClock(0)
		bcfg := retry.BudgetConfig{Ratio: ratio, Window: time.Duration(window), MinPerSecond: minPerSecond, Buckets: buckets, Clock: clock}
		if b, err := retry.NewBudget(bcfg); err != nil {
			if b != nil || !strings.HasPrefix(err.Error(), "retry budget: ") {
				t.Fatalf("NewBudget(%+v) = %v, %v", bcfg, b, err)
			}
		} else {
			checkBudget(t, b, clock)
		}
	})
}

func checkPolicy(t *testing.T, p *retry.Policy) {
	c := p.Config()
	if c.MaxAttempts < 1 || c.Initial <= 0 || c.Max < c.Initial || c.MaxElapsed < 0 ||
		!(c.Multiplier >= 1) || math.IsInf(c.Multiplier, 0) || c.Clock == nil || c.Rand == nil ||
		(c.Backoff == retry.Decorrelated) != (c.Jitter == retry.DecorrelatedJitter) {
		t.Fatalf("accepted configuration filled in as %+v", c)
	}
	again, err := retry.New(c)
	if err != nil {
		t.Fatalf("New(Config()) = %v", err)
	}
	if c2 := again.Config(); c2.MaxAttempts != c.MaxAttempts || c2.Backoff != c.Backoff || c2.Jitter != c.Jitter ||
		c2.Initial != c.Initial || c2.Max != c.Max || c2.Multiplier != c.Multiplier || c2.MaxElapsed != c.MaxElapsed {
		t.Fatalf("Config() is not stable: %+v then %+v", c, c2)
	}
	for _, s := range []string{c.Backoff.String(), c.Jitter.String()} {
		if strings.Contains(s, "(") {
			t.Fatalf("accepted an unnamed kind %q", s)
		}
	}
	var prev time.Duration
	for _, attempt := range []int{1, 2, 3, 10, 63, 64, 1000} {
		d := p.Delay(attempt, prev)
		if d < 0 || d > c.Max || (c.Backoff == retry.Decorrelated && d < c.Initial) {
			t.Fatalf("Delay(%d, %v) = %v outside [0, %v]", attempt, prev, d, c.Max)
		}
		prev = d
	}
}

func checkBudget(t *testing.T, b *retry.Budget, clock *spillway.ManualClock) {
	c := b.Config()
	if c.Buckets < 1 || c.Buckets > retry.MaxBudgetBuckets || c.Window < time.Duration(c.Buckets)*time.Millisecond ||
		c.Ratio == 0 || c.MinPerSecond == 0 || (c.Ratio < 0 && c.MinPerSecond < 0) || c.Clock == nil {
		t.Fatalf("accepted budget configuration filled in as %+v", c)
	}
	if _, err := retry.NewBudget(c); err != nil {
		t.Fatalf("NewBudget(Config()) = %v", err)
	}
	for range 20 {
		b.Request()
	}
	r := b.Remaining()
	if r < 0 || math.IsNaN(r) {
		t.Fatalf("Remaining() = %v", r)
	}
	if b.TryRetry() != (r >= 1) {
		t.Fatalf("TryRetry disagrees with Remaining() = %v", r)
	}
	clock.Advance(c.Window * 2)
	if got, floor := b.Remaining(), max(c.MinPerSecond, 0)*c.Window.Seconds(); got != floor {
		t.Fatalf("after two windows Remaining() = %v, want the floor %v", got, floor)
	}
}
