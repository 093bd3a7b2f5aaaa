package config

import (
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/shed"
	"github.com/spillway-dev/spillway/throttle"
)

// The translation of an upstream's keys into the policy packages' own
// configurations is written here, once: the gateway builds, checks and
// reconfigures its policies from these. None sets an Observer (the
// gateway's metrics): the caller sets it on what it builds.

// BreakerConfig is the breaker's configuration for u, without its mode:
// the mode (breaker.mode) is a manual transition of a running breaker, not
// a threshold. The breaker's half-open probe may last one attempt
// (timeouts.attempt).
func (u *Upstream) BreakerConfig() breaker.Config {
	b := u.Breaker
	bc := breaker.Config{
		Name: u.Name, MinCalls: b.MinCalls, FailureRate: b.FailureRate,
		SlowCallDuration: b.SlowCall.Duration, SlowCallRate: b.SlowCall.Rate,
		OpenFor: b.OpenFor, MaxOpenFor: b.MaxOpenFor, HalfOpenProbes: b.HalfOpenProbes,
		ProbeTimeout: u.Timeouts.Attempt, SlowStart: u.SlowStart.Window,
	}
	if b.Window.Type == "time" {
		bc.Window, bc.WindowDuration = breaker.TimeWindow, b.Window.Time
	} else {
		bc.WindowSize = b.Window.Size
	}
	return bc
}

// BudgetConfig is the configuration of u's retry budget. ok is false when
// the budget allows no retry (ratio 0 and min_per_second 0, see
// docs/configuration.md): the retry package cannot express it (both
// negative is an error there), so there is no budget and RetryConfig
// allows one attempt per request.
func (u *Upstream) BudgetConfig() (bc retry.BudgetConfig, ok bool) {
	b := u.Retry.Budget
	if b.Ratio == 0 && b.MinPerSecond == 0 {
		return retry.BudgetConfig{}, false
	}
	return retry.BudgetConfig{Ratio: noneIfZero(b.Ratio), Window: b.Window, MinPerSecond: noneIfZero(b.MinPerSecond)}, true
}

// noneIfZero maps the configuration's "0 means none" to the retry
// package's "negative means none" (its 0 means the default).
func noneIfZero(v float64) float64 {
	if v == 0 {
		return -1
	}
	return v
}

// RetryConfig is the configuration of u's retry policy, spending from
// budget (nil: none). The error is a backoff type or jitter the retry
// package does not know, which a Config from Parse never holds.
func (u *Upstream) RetryConfig(budget *retry.Budget) (retry.Config, error) {
	r := u.Retry
	rc := retry.Config{
		Name: u.Name, MaxAttempts: r.MaxAttempts, Initial: r.Backoff.Initial, Max: r.Backoff.Max,
		Multiplier: r.Backoff.Multiplier, Budget: budget,
		// The brief's gateway rule: an upstream's Retry-After is honoured up to
		// retry_after_max (300s by default), not the backoff cap.
		MaxRetryAfter: r.RetryAfterMax,
	}
	if _, ok := u.BudgetConfig(); !ok {
		rc.MaxAttempts = 1
	}
	var err error
	if r.Backoff.Type != "" {
		if rc.Backoff, err = retry.ParseBackoffKind(r.Backoff.Type); err != nil {
			return rc, err
		}
	}
	if rc.Backoff == retry.Decorrelated {
		// The decorrelated scheme brings its own jitter; any other kind is
		// an error in the retry package.
		rc.Jitter = retry.DecorrelatedJitter
	} else if r.Backoff.Jitter != "" {
		if rc.Jitter, err = retry.ParseJitterKind(r.Backoff.Jitter); err != nil {
			return rc, err
		}
	}
	return rc, nil
}

// BulkheadConfig is the configuration of u's bulkhead: with adaptive:, an
// adaptive limit of the algorithm's defaults between min_concurrent and
// max_concurrent.
func (u *Upstream) BulkheadConfig() bulkhead.Config {
	b := u.Bulkhead
	c := bulkhead.Config{Name: u.Name, MaxConcurrent: b.MaxConcurrent, MaxWaiting: b.MaxWaiting, MaxWait: b.MaxWait}
	if b.Adaptive != "" {
		c.Adaptive = bulkhead.Adaptive{Algorithm: bulkhead.Algorithm(b.Adaptive), MinConcurrent: b.MinConcurrent}
	}
	return c
}

// ThrottleConfig is the configuration of u's client-side throttle; ok is
// false when u has none (no throttle: key).
func (u *Upstream) ThrottleConfig() (tc throttle.Config, ok bool) {
	t := u.Throttle
	if t == nil {
		return throttle.Config{}, false
	}
	return throttle.Config{Name: u.Name, K: t.K, Window: t.Window, MaxRejectionRate: t.MaxRejection}, true
}

// HedgeConfig is the configuration of u's hedging policy, drawing its
// hedges from budget (the upstream's retry budget; nil: none). ok is false
// when u has no hedge:. A learned delay sends no hedge until the window
// holds hedge.DefaultMinSamples latencies.
func (u *Upstream) HedgeConfig(budget *retry.Budget) (hc hedge.Config, ok bool) {
	h := u.Hedge
	if h == nil {
		return hedge.Config{}, false
	}
	hc = hedge.Config{Name: u.Name, Delay: h.Delay, Quantile: h.Quantile, Max: h.Max}
	if budget != nil {
		// A nil *retry.Budget in the interface would not be a nil Budget.
		hc.Budget = budget
	}
	return hc, true
}

// ShedConfig is the configuration of u's load shedder against limiter (the
// upstream's bulkhead); ok is false when u sheds nothing (no shed:).
func (u *Upstream) ShedConfig(limiter shed.Limiter) (sc shed.Config, ok bool) {
	if u.Shed == nil {
		return shed.Config{}, false
	}
	return shed.Config{Name: u.Name, Limiter: limiter, SheddableBelow: u.Shed.SheddableAt, DefaultBelow: u.Shed.DefaultAt}, true
}
