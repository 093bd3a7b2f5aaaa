package breaker

import (
	"fmt"
	"math"
	"time"

	"github.com/spillway-dev/spillway"
)

// WindowType selects how the breaker remembers recent outcomes.
type WindowType uint8

// The window types.
const (
	// CountWindow remembers the last WindowSize recorded calls. It is the default.
	CountWindow WindowType = iota
	// TimeWindow remembers the calls recorded in the last WindowDuration, in
	// Buckets buckets: the current bucket and the Buckets-1 before it.
	TimeWindow
)

// String returns "count" or "time", the gateway configuration's names.
func (t WindowType) String() string {
	switch t {
	case CountWindow:
		return "count"
	case TimeWindow:
		return "time"
	}
	return fmt.Sprintf("window(%d)", uint8(t))
}

// Limits that keep a configuration's memory bounded.
const (
	// MaxWindowSize is the largest count window (4 bytes per call).
	MaxWindowSize = 1 << 20
	// MaxBuckets is the largest number of time-window buckets.
	MaxBuckets = 1000
)

// The defaults of the brief's table, in one place.
const (
	defaultWindowSize     = 100
	defaultWindowDuration = 10 * time.Second
	defaultBuckets        = 10
	defaultMinCalls       = 20
	defaultFailureRate    = 0.5
	defaultSlowCallRate   = 1.0
	defaultOpenFor        = 30 * time.Second
	defaultMaxOpenFor     = 5 * time.Minute
	defaultOpenBackoff    = 2
	defaultOpenJitter     = 0.1
	defaultHalfOpenProbes = 5
	defaultProbeTimeout   = 5 * time.Second
)

// Config configures a Breaker. Its zero value is a valid configuration: every
// zero field means the default written in its comment.
type Config struct {
	// Name identifies the breaker in errors and events.
	Name string

	// Window selects the kind of window: CountWindow (the default) or TimeWindow.
	Window WindowType
	// WindowSize is the number of calls a count window remembers. Default 100,
	// at most MaxWindowSize.
	WindowSize int
	// WindowDuration is how far back a time window remembers. Default 10s.
	WindowDuration time.Duration
	// Buckets is the number of buckets a time window is divided into: each
	// lasts WindowDuration/Buckets (rounded down to the nanosecond) and
	// expires as a whole. Default 10, at most MaxBuckets.
	Buckets int

	// MinCalls is the number of calls the window must hold before its rates
	// are judged. Default 20.
	MinCalls int
	// FailureRate opens the breaker when the share of failed calls in the
	// window reaches it (>=). In (0,1]; default 0.5.
	FailureRate float64
	// SlowCallDuration is the duration from which a call counts as slow,
	// whether it succeeded or failed. Default 0: slow-call detection is off
	// and the closed path reads no clock.
	SlowCallDuration time.Duration
	// SlowCallRate opens the breaker when the share of slow calls in the
	// window reaches it (>=). In (0,1]; default 1.0 (every call slow).
	SlowCallRate float64
	// ConsecutiveFailures also opens the breaker after that many failures in
	// a row, whatever the window holds. Default 0: off.
	ConsecutiveFailures int

	// OpenFor is how long the breaker stays open after it trips. Default 30s.
	OpenFor time.Duration
	// MaxOpenFor caps the open duration as it grows on repeated opens.
	// Default 5m, or OpenFor if that is longer.
	MaxOpenFor time.Duration
	// OpenBackoff multiplies the open duration each time a failed probe
	// opens the breaker again; it is back to OpenFor once the breaker closes.
	// Default 2; 1 keeps the open duration fixed at OpenFor.
	OpenBackoff float64
	// OpenJitter spreads the grown open durations (never the first one) by
	// ±OpenJitter of their length, so that many breakers that opened together
	// do not probe together. In [0,1); default 0.1; a negative value turns
	// jitter off.
	OpenJitter float64

	// HalfOpenProbes is both the number of concurrent probe calls a
	// half-open breaker admits and the number of successful probes that
	// close it. Default 5.
	HalfOpenProbes int
	// ProbeTimeout is how long a probe may run: one that has not been
	// released by then counts as failed, so a leaked permit cannot keep the
	// breaker half-open. Default 5s (the attempt timeout's default).
	ProbeTimeout time.Duration

	// SlowStart ramps the traffic up after the breaker closes from
	// half-open: for SlowStart, a share of the calls is admitted that grows
	// linearly from SlowStartFloor (10 %) to all of them, and the others are
	// rejected with ErrOpen and a RetryAfter of SlowStart/10 (by then the
	// share has grown by 9 points), so that a downstream that has just
	// recovered is not hit by the whole load at once (Envoy's slow start).
	// A manual close (Reset, TransitionTo) does not ramp. Default 0: off,
	// the breaker admits every call as soon as it closes.
	SlowStart time.Duration

	// Classify decides how an outcome counts; nil means DefaultClassify. It
	// is never called for a nil error, which is always a success, nor for the
	// caller's own end (spillway.ErrCallerDone), which is always ignored.
	Classify func(err error) spillway.Outcome
	// Clock is the breaker's clock; default spillway.SystemClock. It is fixed
	// by New: Reconfigure ignores this field.
	Clock spillway.Clock
	// Observer receives the breaker's transitions and rejections; default
	// none. It is called synchronously, outside the breaker's lock: wrap a
	// slow consumer in spillway.NewChannelObserver so a call never waits.
	// A spillway.Pipeline's Observer receives them too, without this field
	// (Breaker.AttachObserver).
	Observer spillway.Observer
	// Rand returns the random numbers in [0,1) of the jitter (drawn under
	// the breaker's lock) and of a slow start's admissions (drawn by
	// concurrent calls without it: with SlowStart set, Rand must be safe
	// for concurrent use); nil means math/rand/v2.Float64.
	Rand func() float64
}

// withDefaults validates c and returns it with every zero field set to its
// default. The error names the first field that is wrong.
func (c Config) withDefaults() (Config, error) {
	if c.Window != CountWindow && c.Window != TimeWindow {
		return c, fmt.Errorf("breaker: Window must be CountWindow or TimeWindow, got %d", uint8(c.Window))
	}
	if err := intField("WindowSize", &c.WindowSize, defaultWindowSize, MaxWindowSize); err != nil {
		return c, err
	}
	if err := durationField("WindowDuration", &c.WindowDuration, defaultWindowDuration); err != nil {
		return c, err
	}
	if err := intField("Buckets", &c.Buckets, defaultBuckets, MaxBuckets); err != nil {
		return c, err
	}
	if c.WindowDuration < time.Duration(c.Buckets) {
		return c, fmt.Errorf("breaker: WindowDuration must be at least 1ns per bucket, got %v for %d buckets", c.WindowDuration, c.Buckets)
	}
	if err := intField("MinCalls", &c.MinCalls, defaultMinCalls, math.MaxInt); err != nil {
		return c, err
	}
	if err := rateField("FailureRate", &c.FailureRate, defaultFailureRate); err != nil {
		return c, err
	}
	if c.SlowCallDuration < 0 {
		return c, fmt.Errorf("breaker: SlowCallDuration must not be negative, got %v", c.SlowCallDuration)
	}
	if err := rateField("SlowCallRate", &c.SlowCallRate, defaultSlowCallRate); err != nil {
		return c, err
	}
	if c.ConsecutiveFailures < 0 {
		return c, fmt.Errorf("breaker: ConsecutiveFailures must not be negative, got %d", c.ConsecutiveFailures)
	}
	if err := durationField("OpenFor", &c.OpenFor, defaultOpenFor); err != nil {
		return c, err
	}
	if c.MaxOpenFor == 0 {
		c.MaxOpenFor = max(defaultMaxOpenFor, c.OpenFor)
	}
	if c.MaxOpenFor < c.OpenFor {
		return c, fmt.Errorf("breaker: MaxOpenFor must be at least OpenFor (%v), got %v", c.OpenFor, c.MaxOpenFor)
	}
	switch {
	case c.OpenBackoff == 0:
		c.OpenBackoff = defaultOpenBackoff
	case !(c.OpenBackoff >= 1) || math.IsInf(c.OpenBackoff, 1):
		return c, fmt.Errorf("breaker: OpenBackoff must be a finite number >= 1, got %v", c.OpenBackoff)
	}
	switch {
	case c.OpenJitter == 0:
		c.OpenJitter = defaultOpenJitter
	case math.IsNaN(c.OpenJitter) || c.OpenJitter >= 1 || math.IsInf(c.OpenJitter, -1):
		return c, fmt.Errorf("breaker: OpenJitter must be in [0,1) (negative: no jitter), got %v", c.OpenJitter)
	}
	if c.SlowStart < 0 {
		return c, fmt.Errorf("breaker: SlowStart must not be negative, got %v", c.SlowStart)
	}
	if err := intField("HalfOpenProbes", &c.HalfOpenProbes, defaultHalfOpenProbes, math.MaxInt); err != nil {
		return c, err
	}
	if err := durationField("ProbeTimeout", &c.ProbeTimeout, defaultProbeTimeout); err != nil {
		return c, err
	}
	c.Clock = spillway.ClockOrSystem(c.Clock)
	return c, nil
}

func intField(name string, v *int, def, limit int) error {
	switch {
	case *v == 0:
		*v = def
	case *v < 0 || *v > limit:
		if limit == math.MaxInt {
			return fmt.Errorf("breaker: %s must not be negative, got %d", name, *v)
		}
		return fmt.Errorf("breaker: %s must be in [1,%d], got %d", name, limit, *v)
	}
	return nil
}

func durationField(name string, v *time.Duration, def time.Duration) error {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		return fmt.Errorf("breaker: %s must not be negative, got %v", name, *v)
	}
	return nil
}

func rateField(name string, v *float64, def float64) error {
	switch {
	case *v == 0:
		*v = def
	case !(*v > 0 && *v <= 1): // NaN fails too
		return fmt.Errorf("breaker: %s must be in (0,1], got %v", name, *v)
	}
	return nil
}

// Warnings lists the settings of a valid c that cannot work as intended:
// a breaker that can never open on its rates, one that opens on the first
// error, knobs that have no effect. It returns nil for a configuration New
// rejects; New's error explains that one.
func (c Config) Warnings() []string {
	c, err := c.withDefaults()
	if err != nil {
		return nil
	}
	var w []string
	if c.Window == CountWindow && c.MinCalls > c.WindowSize {
		w = append(w, fmt.Sprintf("breaker: MinCalls (%d) is larger than WindowSize (%d): the failure and slow-call rates can never open the breaker", c.MinCalls, c.WindowSize))
	}
	switch {
	case c.MinCalls == 1:
		w = append(w, "breaker: MinCalls is 1: the breaker opens on the first failed call")
	case 1/float64(c.MinCalls) >= c.FailureRate:
		w = append(w, fmt.Sprintf("breaker: FailureRate %v with MinCalls %d: a single failed call among %d opens the breaker", c.FailureRate, c.MinCalls, c.MinCalls))
	}
	if c.ConsecutiveFailures == 1 {
		w = append(w, "breaker: ConsecutiveFailures is 1: the breaker opens on the first failed call")
	}
	if c.Window == TimeWindow && c.WindowDuration < 2*c.ProbeTimeout {
		w = append(w, fmt.Sprintf("breaker: WindowDuration (%v) is shorter than twice ProbeTimeout (%v), the attempt timeout: slow calls leave the window before they are judged", c.WindowDuration, c.ProbeTimeout))
	}
	if c.Window == TimeWindow && c.WindowDuration%time.Duration(c.Buckets) != 0 {
		w = append(w, fmt.Sprintf("breaker: WindowDuration (%v) is not a multiple of Buckets (%d): the window is %v long", c.WindowDuration, c.Buckets, c.WindowDuration/time.Duration(c.Buckets)*time.Duration(c.Buckets)))
	}
	if c.SlowCallDuration == 0 && c.SlowCallRate != defaultSlowCallRate {
		w = append(w, "breaker: SlowCallRate is set but SlowCallDuration is 0: slow-call detection is off")
	}
	if c.OpenBackoff > 1 && c.MaxOpenFor == c.OpenFor {
		w = append(w, "breaker: MaxOpenFor equals OpenFor: OpenBackoff has no effect")
	}
	return w
}
