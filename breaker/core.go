package breaker

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// core is one immutable configuration snapshot with the window it records
// into. The hot path reads it through one atomic pointer; Reconfigure and
// the transitions that start a new window swap in a new one.
type core struct {
	cfg          Config
	classify     func(error) spillway.Outcome
	rand         func() float64
	slowDur      int64
	probeTimeout int64
	slowStart    int64
	minCalls     uint64
	consecLimit  int64
	failRate     float64
	slowRate     float64
	// fullCalls is the count window's size: at exactly that many calls the
	// rates are judged by integer thresholds precomputed from the rates.
	fullCalls          uint64
	fullFail, fullSlow int64

	count *countWindow // exactly one of count and time is set
	time  *timeWindow

	// The preallocated rejections (the open one lives in Breaker.openErr,
	// since its RetryAfter changes with each opening).
	forcedErr, halfOpenErr *spillway.Error
	// rampErr rejects the calls a slow start leaves out.
	rampErr *spillway.Error
}

// SlowStartFloor is the share of calls a breaker admits as its slow start
// begins (Config.SlowStart); it grows linearly to 1 over the window.
const SlowStartFloor = 0.1

// rampShare is the share of calls admitted elapsed nanoseconds into a slow
// start; it requires c.slowStart > 0.
func (c *core) rampShare(elapsed int64) float64 {
	if elapsed >= c.slowStart {
		return 1
	}
	return SlowStartFloor + (1-SlowStartFloor)*float64(max(elapsed, 0))/float64(c.slowStart)
}

func newCore(cfg Config, count *countWindow, tw *timeWindow) *core {
	if count == nil && tw == nil {
		count, tw = newWindow(cfg)
	}
	c := &core{
		cfg:          cfg,
		classify:     DefaultClassify,
		rand:         rand.Float64,
		slowDur:      int64(cfg.SlowCallDuration),
		probeTimeout: int64(cfg.ProbeTimeout),
		slowStart:    int64(cfg.SlowStart),
		minCalls:     uint64(cfg.MinCalls),
		consecLimit:  int64(cfg.ConsecutiveFailures),
		failRate:     cfg.FailureRate,
		slowRate:     cfg.SlowCallRate,
		count:        count,
		time:         tw,
		forcedErr:    rejection(cfg.Name, 0),
		halfOpenErr:  rejection(cfg.Name, 0),
		rampErr:      rejection(cfg.Name, cfg.SlowStart/10),
	}
	if cfg.Classify != nil {
		c.classify = ignoringCallerDone(cfg.Classify)
	}
	if cfg.Rand != nil {
		c.rand = cfg.Rand
	}
	if count != nil {
		c.fullCalls = count.size
		c.fullFail = minCount(c.failRate, count.size)
		c.fullSlow = minCount(c.slowRate, count.size)
	}
	return c
}

func newWindow(cfg Config) (*countWindow, *timeWindow) {
	if cfg.Window == TimeWindow {
		return nil, newTimeWindow(bucketWidth(cfg), cfg.Buckets)
	}
	return newCountWindow(cfg.WindowSize), nil
}

func bucketWidth(cfg Config) int64 { return int64(cfg.WindowDuration) / int64(cfg.Buckets) }

// withNewWindow returns c recording into an empty window.
func (c *core) withNewWindow() *core { return newCore(c.cfg, nil, nil) }

// rejection builds the error an open breaker returns; retryAfter is 0 when
// no time is known (forced open, half-open with every probe taken).
func rejection(name string, retryAfter time.Duration) *spillway.Error {
	return &spillway.Error{Code: spillway.ReasonBreakerOpen, Policy: "breaker", Name: name, RetryAfter: retryAfter, Err: ErrOpen}
}

// minCount is the smallest count k with k/calls >= rate, computed the way
// tripsAt divides so that both agree to the last bit.
func minCount(rate float64, calls uint64) int64 {
	fc := float64(calls)
	k := int64(math.Ceil(rate * fc))
	for k > 0 && float64(k-1)/fc >= rate {
		k--
	}
	for float64(k)/fc < rate {
		k++
	}
	return k
}

// tripsAt reports whether a window of calls with f failures and s slow
// calls opens the breaker.
func (c *core) tripsAt(calls uint64, f, s int64) bool {
	if calls < c.minCalls || calls == 0 {
		return false
	}
	if calls == c.fullCalls {
		return f >= c.fullFail || s >= c.fullSlow
	}
	return c.overRates(int64(calls), f, s)
}

// overRates reports whether the failure or slow-call rate of a window of
// calls reaches its threshold, whatever MinCalls says.
func (c *core) overRates(calls, f, s int64) bool {
	if calls <= 0 {
		return false
	}
	fc := float64(calls)
	return float64(f)/fc >= c.failRate || float64(s)/fc >= c.slowRate
}

// consecutive updates the run of failures with outcome o and reports
// whether it reached the limit. It costs nothing when the limit is off.
func (c *core) consecutive(run *atomic.Int64, o uint32) bool {
	if c.consecLimit == 0 {
		return false
	}
	if o&outFailure != 0 {
		return run.Add(1) >= c.consecLimit
	}
	if run.Load() != 0 {
		run.Store(0)
	}
	return false
}

// flags are the state word's flags for state s under c.
func (c *core) flags(s State) uint64 {
	if c.slowDur > 0 && (s == Closed || s == MetricsOnly) {
		return flagTimed
	}
	return 0
}

// jitter spreads a grown open duration by ±OpenJitter, never past MaxOpenFor.
func (c *core) jitter(d time.Duration) time.Duration {
	if c.cfg.OpenJitter <= 0 {
		return d
	}
	r := c.rand()
	if !(r >= 0) { // NaN too: a Rand outside [0,1) must not break the duration
		r = 0
	}
	return c.capped(float64(d) * (1 + c.cfg.OpenJitter*(2*min(r, 1)-1)))
}

// grow is the open duration after d when a probe fails.
func (c *core) grow(d time.Duration) time.Duration {
	return c.capped(float64(d) * c.cfg.OpenBackoff)
}

// capped converts f to a duration in [1ns, MaxOpenFor], comparing before
// converting: a float at or past 2⁶³ has no int64 value.
func (c *core) capped(f float64) time.Duration {
	switch {
	case f >= float64(c.cfg.MaxOpenFor):
		return c.cfg.MaxOpenFor
	case f < 1:
		return 1
	}
	return time.Duration(f)
}
