package retry

import (
	"fmt"
	"math"
	"time"
)

// BackoffKind selects how the base delay grows from one retry to the next.
// Its zero value is Exponential, the default.
type BackoffKind uint8

const (
	// Exponential waits Initial × Multiplier^(n-1) after the n-th failed
	// attempt, capped at Max. It is the default.
	Exponential BackoffKind = iota
	// Constant waits Initial after every failed attempt.
	Constant
	// Decorrelated is AWS's "decorrelated jitter": sleep = min(Max,
	// rand(Initial, 3 × previous sleep)). It carries its own randomness, so it
	// goes with the DecorrelatedJitter jitter kind only; each implies the other.
	Decorrelated
)

var backoffNames = [...]string{Exponential: "exponential", Constant: "constant", Decorrelated: "decorrelated"}

// String returns the kind's configuration name: "exponential", "constant" or
// "decorrelated".
func (k BackoffKind) String() string {
	if int(k) < len(backoffNames) {
		return backoffNames[k]
	}
	return fmt.Sprintf("BackoffKind(%d)", uint8(k))
}

// ParseBackoffKind parses a configuration name: "constant", "exponential" or
// "decorrelated".
func ParseBackoffKind(s string) (BackoffKind, error) {
	for k, name := range backoffNames {
		if s == name {
			return BackoffKind(k), nil
		}
	}
	return 0, fmt.Errorf("retry: unknown backoff %q (want constant, exponential or decorrelated)", s)
}

// MarshalText implements encoding.TextMarshaler with the configuration name.
func (k BackoffKind) MarshalText() ([]byte, error) {
	if int(k) >= len(backoffNames) {
		return nil, fmt.Errorf("retry: unknown backoff %s", k)
	}
	return []byte(backoffNames[k]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseBackoffKind, so
// configuration decoders accept the names.
func (k *BackoffKind) UnmarshalText(b []byte) error {
	v, err := ParseBackoffKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// JitterKind selects how randomness spreads the base delay, so that clients
// that failed together do not retry together. Its zero value is FullJitter,
// the default.
type JitterKind uint8

const (
	// FullJitter waits rand[0, d) for a base delay d: the least contention of
	// AWS's comparison, and the default.
	FullJitter JitterKind = iota
	// NoJitter waits exactly the base delay.
	NoJitter
	// EqualJitter waits d/2 + rand[0, d/2): never less than half the base delay.
	EqualJitter
	// DecorrelatedJitter is the Decorrelated backoff seen from the jitter side
	// (the configuration's "jitter: decorrelated"); each implies the other.
	DecorrelatedJitter
)

var jitterNames = [...]string{FullJitter: "full", NoJitter: "none", EqualJitter: "equal", DecorrelatedJitter: "decorrelated"}

// String returns the kind's configuration name: "full", "none", "equal" or
// "decorrelated".
func (k JitterKind) String() string {
	if int(k) < len(jitterNames) {
		return jitterNames[k]
	}
	return fmt.Sprintf("JitterKind(%d)", uint8(k))
}

// ParseJitterKind parses a configuration name: "none", "full", "equal" or
// "decorrelated".
func ParseJitterKind(s string) (JitterKind, error) {
	for k, name := range jitterNames {
		if s == name {
			return JitterKind(k), nil
		}
	}
	return 0, fmt.Errorf("retry: unknown jitter %q (want none, full, equal or decorrelated)", s)
}

// MarshalText implements encoding.TextMarshaler with the configuration name.
func (k JitterKind) MarshalText() ([]byte, error) {
	if int(k) >= len(jitterNames) {
		return nil, fmt.Errorf("retry: unknown jitter %s", k)
	}
	return []byte(jitterNames[k]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseJitterKind, so
// configuration decoders accept the names.
func (k *JitterKind) UnmarshalText(b []byte) error {
	v, err := ParseJitterKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// decorrelatedGrowth is AWS's factor: each sleep is drawn up to three times
// the previous one.
const decorrelatedGrowth = 3

// Delay returns the backoff to wait after the attempt-th attempt failed
// (attempt counts from 1), jitter included; prev is the previous delay, which
// only the decorrelated scheme uses (0 for the first retry). It ignores
// Retry-After hints, deadlines and MaxElapsed: Next applies those.
func (p *Policy) Delay(attempt int, prev time.Duration) time.Duration {
	if p.cfg.Backoff == Decorrelated {
		return p.decorrelated(prev)
	}
	d := p.base(attempt)
	switch p.cfg.Jitter {
	case FullJitter:
		return scale(d, p.random())
	case EqualJitter:
		half := d / 2
		return half + scale(d-half, p.random())
	}
	return d
}

// base is the delay before jitter: Initial for Constant, the capped
// exponential otherwise.
func (p *Policy) base(attempt int) time.Duration {
	if p.cfg.Backoff == Constant || attempt <= 1 {
		return p.cfg.Initial
	}
	// In float64, so that a large attempt number saturates at +Inf (then at
	// Max) instead of overflowing a Duration.
	f := float64(p.cfg.Initial) * math.Pow(p.cfg.Multiplier, float64(attempt-1))
	if f >= float64(p.cfg.Max) {
		return p.cfg.Max
	}
	return time.Duration(f)
}

// decorrelated draws min(Max, rand(Initial, 3 × prev)), prev defaulting to
// Initial for the first retry.
func (p *Policy) decorrelated(prev time.Duration) time.Duration {
	lo := p.cfg.Initial
	hi := float64(max(prev, lo)) * decorrelatedGrowth
	f := float64(lo) + p.random()*(hi-float64(lo))
	if f >= float64(p.cfg.Max) {
		return p.cfg.Max
	}
	return max(time.Duration(f), lo)
}

// random draws from the configured source, clamped to [0, 1) so that a
// faulty injected Rand cannot push a delay out of its bounds.
func (p *Policy) random() float64 {
	r := p.rand()
	if !(r >= 0) { // also catches NaN
		return 0
	}
	return min(r, math.Nextafter(1, 0))
}

// scale returns a fraction r in [0, 1) of d, never more than d (a float64
// product can round up for delays beyond 2^53 ns).
func scale(d time.Duration, r float64) time.Duration {
	return min(time.Duration(r*float64(d)), d)
}
