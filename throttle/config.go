package throttle

import (
	"fmt"
	"math"
	"time"

	"github.com/spillway-dev/spillway"
)

// The defaults that a zero Config field stands for.
const (
	// DefaultK is the SRE book's multiplier: the client sends up to twice
	// what the downstream accepts before it starts refusing locally.
	DefaultK = 2.0
	// DefaultWindow is how long requests and accepts are remembered.
	DefaultWindow = 2 * time.Minute
	// DefaultMaxRejectionRate caps the rejection probability, as
	// failsafe-go's adaptive throttler does: one call in ten still goes
	// through, so that the throttle learns when the downstream recovers.
	DefaultMaxRejectionRate = 0.9
)

// MaxBuckets bounds Config.Buckets, and with it the work of the rare
// bucket rotation, which sums every bucket.
const MaxBuckets = 1000

// minBuckets is the fewest buckets a default Config.Buckets makes: a short
// window still slides in tenths.
const minBuckets = 10

// minBucketWidth is the narrowest bucket: finer buckets would measure the
// clock's cost rather than traffic.
const minBucketWidth = time.Millisecond

// Config configures a Throttler. The zero value of every field means its
// default: K 2 over a 2-minute window in 1-second buckets, at most 90 % of
// the calls refused.
type Config struct {
	// Name identifies the throttler in errors and events. Default "".
	Name string
	// K is the multiplier of the formula: the throttler starts refusing
	// once the requests of the window exceed K times its accepts. Default
	// 2; it must be at least 1 — below 1 a downstream that accepts every
	// call is throttled too. A lower K (1.1) throttles sooner and wastes
	// less of the downstream's work on rejections; a higher one lets more
	// through. At 1 the first failure throttles (see Config.Warnings).
	K float64
	// Window is how long requests and accepts are counted. Default 2m.
	Window time.Duration
	// Buckets is how many buckets the window slides by: it is accurate to
	// one bucket (Window / Buckets, at least 1ms). Default 0: one per
	// second of Window, at least 10 and at most MaxBuckets.
	Buckets int
	// MaxRejectionRate caps the probability of refusing a call, in (0,1].
	// Default 0.9. At 1 a downstream that accepts nothing is called
	// hardly ever again while calls keep coming (see Config.Warnings).
	MaxRejectionRate float64
	// Classify decides how a call's error counts: Success is an accept
	// (the downstream accepted the request, even if it answered with an
	// error of the caller's making), Failure is a request the downstream
	// did not accept (overloaded, unavailable, too slow), Ignored takes
	// the request out of the window. Default spillway.OutcomeOf: every
	// error but the caller's own end and a local rejection is a Failure.
	// It is never called for a nil error (an accept) nor for what
	// spillway.OutcomeOf ignores (the caller's end, another guard's
	// refusal): those are never counted.
	Classify func(err error) spillway.Outcome
	// Clock times the window; default spillway.SystemClock. It is fixed
	// by New: Update ignores this field.
	Clock spillway.Clock
	// Observer receives an EventRejection (Reason throttled) for every
	// refused call. Default nil (no events). A spillway.Pipeline's Observer
	// receives them too, without this field (Throttler.AttachObserver).
	Observer spillway.Observer
	// Rand returns the random numbers in [0,1) that the rejection
	// probability is drawn against; nil means math/rand/v2.Float64, which
	// is safe for concurrent use and takes no lock. It is called only
	// while the probability is above 0. Tests pass a seeded source.
	Rand func() float64
}

// withDefaults validates c and returns it with every zero field set to its
// default. The error names the first field that is wrong.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.K == 0:
		c.K = DefaultK
	case !(c.K >= 1) || math.IsInf(c.K, 1): // NaN fails too
		return c, fmt.Errorf("throttle: K must be a finite number of at least 1 (0 means %v), got %v: "+
			"below 1 a downstream that accepts every call is throttled too", DefaultK, c.K)
	}
	switch {
	case c.Window == 0:
		c.Window = DefaultWindow
	case c.Window < 0:
		return c, fmt.Errorf("throttle: Window must not be negative, got %v", c.Window)
	}
	switch {
	case c.Buckets == 0:
		c.Buckets = defaultBuckets(c.Window)
	case c.Buckets < 0 || c.Buckets > MaxBuckets:
		return c, fmt.Errorf("throttle: Buckets must be in [1,%d] (0 means one per second), got %d", MaxBuckets, c.Buckets)
	}
	if c.Window/time.Duration(c.Buckets) < minBucketWidth {
		return c, fmt.Errorf("throttle: Window %v is too short for %d Buckets: each bucket must span at least %v", c.Window, c.Buckets, minBucketWidth)
	}
	switch {
	case c.MaxRejectionRate == 0:
		c.MaxRejectionRate = DefaultMaxRejectionRate
	case !(c.MaxRejectionRate > 0 && c.MaxRejectionRate <= 1):
		return c, fmt.Errorf("throttle: MaxRejectionRate must be in (0,1] (0 means %v), got %v", DefaultMaxRejectionRate, c.MaxRejectionRate)
	}
	c.Clock = spillway.ClockOrSystem(c.Clock)
	return c, nil
}

// Warnings lists the settings of a valid c that cannot work as intended. It
// returns nil for a configuration New rejects; New's error explains that one.
func (c Config) Warnings() []string {
	c, err := c.withDefaults()
	if err != nil {
		return nil
	}
	var w []string
	if c.K == 1 {
		w = append(w, "throttle: K is 1: the first failed call in the window starts refusing calls "+
			"(the SRE book suggests 2, or 1.1 to throttle sooner)")
	}
	if c.MaxRejectionRate == 1 {
		w = append(w, "throttle: MaxRejectionRate is 1: once the downstream accepts nothing, all but one call in "+
			"requests+1 is refused for as long as calls keep coming, so the throttle hardly learns that it recovered")
	}
	return w
}

// defaultBuckets is the Buckets of a zero Config.Buckets: one per second of
// window, at least 10 and at most MaxBuckets.
func defaultBuckets(window time.Duration) int {
	return min(max(int(window/time.Second), minBuckets), MaxBuckets)
}
