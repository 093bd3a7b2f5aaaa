package retry_test

import (
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/spillway-dev/spillway/retry"
)

const ms = time.Millisecond

// fixed returns a Rand that always draws r.
func fixed(r float64) func() float64 { return func() float64 { return r } }

func TestDelay(t *testing.T) {
	tests := []struct {
		name string
		cfg  retry.Config
		// want[i] is the delay after attempt i+1 fails, the previous delay
		// being want[i-1] (0 for the first).
		want []time.Duration
	}{
		{
			name: "exponential without jitter doubles from Initial up to Max",
			cfg:  retry.Config{Jitter: retry.NoJitter},
			want: []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms},
		},
		{
			name: "exponential honours Initial, Multiplier and Max",
			cfg:  retry.Config{Jitter: retry.NoJitter, Initial: 10 * ms, Multiplier: 3, Max: time.Second},
			want: []time.Duration{10 * ms, 30 * ms, 90 * ms, 270 * ms, 810 * ms, 1000 * ms},
		},
		{
			name: "Multiplier 1 is constant",
			cfg:  retry.Config{Jitter: retry.NoJitter, Multiplier: 1},
			want: []time.Duration{100 * ms, 100 * ms, 100 * ms},
		},
		{
			name: "full jitter (the default) scales the base delay by rand",
			cfg:  retry.Config{Rand: fixed(0.5)},
			want: []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2500 * ms},
		},
		{
			name: "full jitter can draw zero",
			cfg:  retry.Config{Rand: fixed(0)},
			want: []time.Duration{0, 0, 0},
		},
		{
			name: "equal jitter keeps half the base delay",
			cfg:  retry.Config{Jitter: retry.EqualJitter, Rand: fixed(0.5)},
			want: []time.Duration{75 * ms, 150 * ms, 300 * ms, 600 * ms, 1200 * ms, 2400 * ms, 3750 * ms},
		},
		{
			name: "equal jitter at rand 0 is half the base delay",
			cfg:  retry.Config{Jitter: retry.EqualJitter, Rand: fixed(0)},
			want: []time.Duration{50 * ms, 100 * ms, 200 * ms},
		},
		{
			name: "constant without jitter",
			cfg:  retry.Config{Backoff: retry.Constant, Jitter: retry.NoJitter, Initial: 250 * ms},
			want: []time.Duration{250 * ms, 250 * ms, 250 * ms},
		},
		{
			name: "constant with full jitter",
			cfg:  retry.Config{Backoff: retry.Constant, Initial: 200 * ms, Rand: fixed(0.25)},
			want: []time.Duration{50 * ms, 50 * ms, 50 * ms},
		},
		{
			name: "decorrelated draws from [Initial, 3 x prev], capped at Max",
			cfg:  retry.Config{Backoff: retry.Decorrelated, Rand: fixed(0.5)},
			// 100+0.5*(300-100)=200, 100+0.5*(600-100)=350, 100+0.5*(1050-100)=575, ...
			want: []time.Duration{200 * ms, 350 * ms, 575 * ms, 912500 * time.Microsecond, 1418750 * time.Microsecond, 2178125 * time.Microsecond, 3317187500, 5 * time.Second},
		},
		{
			name: "decorrelated jitter selects the same scheme",
			cfg:  retry.Config{Jitter: retry.DecorrelatedJitter, Rand: fixed(0)},
			want: []time.Duration{100 * ms, 100 * ms, 100 * ms},
		},
		{
			name: "out-of-range Rand values are clamped",
			cfg:  retry.Config{Rand: fixed(-3), Jitter: retry.EqualJitter},
			want: []time.Duration{50 * ms, 100 * ms},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := retry.MustNew(tt.cfg)
			var prev time.Duration
			for i, want := range tt.want {
				got := p.Delay(i+1, prev)
				if got != want {
					t.Errorf("Delay(%d, %v) = %v, want %v", i+1, prev, got, want)
				}
				prev = got
			}
		})
	}
}

func TestDelayLargeAttemptSaturatesAtMax(t *testing.T) {
	p := retry.MustNew(retry.Config{Jitter: retry.NoJitter, Multiplier: 10})
	for _, attempt := range []int{64, 1000, math.MaxInt} {
		if got := p.Delay(attempt, 0); got != 5*time.Second {
			t.Errorf("Delay(%d) = %v, want the 5s cap", attempt, got)
		}
	}
}

// TestDelayBounds checks that every scheme's delay stays within its bounds
// for every attempt, Initial, Max, Multiplier, previous delay and random draw.
func TestDelayBounds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		initial := time.Duration(rapid.Int64Range(1, int64(time.Hour)).Draw(t, "initial"))
		maxD := initial + time.Duration(rapid.Int64Range(0, int64(100*time.Hour)).Draw(t, "extra"))
		mult := rapid.Float64Range(1, 10).Draw(t, "multiplier")
		attempt := rapid.IntRange(-1, 200).Draw(t, "attempt")
		prev := time.Duration(rapid.Int64Range(-1, math.MaxInt64).Draw(t, "prev"))
		r := rapid.Float64Range(-0.5, 1.5).Draw(t, "rand")
		jitter := rapid.SampledFrom([]retry.JitterKind{retry.NoJitter, retry.FullJitter, retry.EqualJitter, retry.DecorrelatedJitter}).Draw(t, "jitter")
		backoff := retry.Exponential
		if jitter != retry.DecorrelatedJitter && rapid.Bool().Draw(t, "constant") {
			backoff = retry.Constant
		}
		cfg := retry.Config{Backoff: backoff, Initial: initial, Max: maxD, Multiplier: mult, Jitter: jitter, Rand: fixed(r)}
		d := retry.MustNew(cfg).Delay(attempt, prev)

		plain := cfg
		plain.Jitter = retry.NoJitter
		var base time.Duration
		if jitter != retry.DecorrelatedJitter {
			base = retry.MustNew(plain).Delay(attempt, prev)
			if base < initial || base > maxD {
				t.Fatalf("base delay %v outside [Initial %v, Max %v]", base, initial, maxD)
			}
			if backoff == retry.Constant && base != initial {
				t.Fatalf("constant base delay %v, want Initial %v", base, initial)
			}
			if next := retry.MustNew(plain).Delay(attempt+1, 0); next < base {
				t.Fatalf("base delay shrank from %v to %v", base, next)
			}
		}
		switch jitter {
		case retry.NoJitter:
			if d != base {
				t.Fatalf("no jitter: %v, want the base %v", d, base)
			}
		case retry.FullJitter:
			if d < 0 || d > base {
				t.Fatalf("full jitter: %v outside [0, %v]", d, base)
			}
		case retry.EqualJitter:
			if d < base/2 || d > base {
				t.Fatalf("equal jitter: %v outside [%v, %v]", d, base/2, base)
			}
		case retry.DecorrelatedJitter:
			hi := math.Min(float64(maxD), 3*float64(max(prev, initial)))
			if d < initial || d > maxD || float64(d) > hi+1 {
				t.Fatalf("decorrelated: %v outside [%v, %v]", d, initial, time.Duration(hi))
			}
		}
	})
}

func TestKindNames(t *testing.T) {
	backoffs := []struct {
		k    retry.BackoffKind
		name string
	}{{retry.Exponential, "exponential"}, {retry.Constant, "constant"}, {retry.Decorrelated, "decorrelated"}}
	for _, tt := range backoffs {
		if got := tt.k.String(); got != tt.name {
			t.Errorf("%d.String() = %q, want %q", tt.k, got, tt.name)
		}
		if got, err := retry.ParseBackoffKind(tt.name); err != nil || got != tt.k {
			t.Errorf("ParseBackoffKind(%q) = %v, %v", tt.name, got, err)
		}
		var k retry.BackoffKind
		if b, err := tt.k.MarshalText(); err != nil || k.UnmarshalText(b) != nil || k != tt.k {
			t.Errorf("text round trip of %v failed: %q, %v", tt.k, b, err)
		}
	}
	jitters := []struct {
		k    retry.JitterKind
		name string
	}{{retry.NoJitter, "none"}, {retry.FullJitter, "full"}, {retry.EqualJitter, "equal"}, {retry.DecorrelatedJitter, "decorrelated"}}
	for _, tt := range jitters {
		if got := tt.k.String(); got != tt.name {
			t.Errorf("%d.String() = %q, want %q", tt.k, got, tt.name)
		}
		if got, err := retry.ParseJitterKind(tt.name); err != nil || got != tt.k {
			t.Errorf("ParseJitterKind(%q) = %v, %v", tt.name, got, err)
		}
		var k retry.JitterKind
		if b, err := tt.k.MarshalText(); err != nil || k.UnmarshalText(b) != nil || k != tt.k {
			t.Errorf("text round trip of %v failed: %q, %v", tt.k, b, err)
		}
	}

	for _, s := range []string{"", "Full", "linear", "exp"} {
		if _, err := retry.ParseBackoffKind(s); err == nil {
			t.Errorf("ParseBackoffKind(%q) succeeded", s)
		}
		if _, err := retry.ParseJitterKind(s); err == nil {
			t.Errorf("ParseJitterKind(%q) succeeded", s)
		}
		var b retry.BackoffKind
		var j retry.JitterKind
		if b.UnmarshalText([]byte(s)) == nil || j.UnmarshalText([]byte(s)) == nil {
			t.Errorf("UnmarshalText(%q) succeeded", s)
		}
	}
	if got := retry.BackoffKind(9).String(); got != "BackoffKind(9)" {
		t.Errorf("unknown backoff String() = %q", got)
	}
	if got := retry.JitterKind(9).String(); got != "JitterKind(9)" {
		t.Errorf("unknown jitter String() = %q", got)
	}
	if _, err := retry.BackoffKind(9).MarshalText(); err == nil {
		t.Error("MarshalText of an unknown backoff succeeded")
	}
	if _, err := retry.JitterKind(9).MarshalText(); err == nil {
		t.Error("MarshalText of an unknown jitter succeeded")
	}
}
