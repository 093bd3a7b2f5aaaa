package spillway

import (
	"sync/atomic"
	"time"
)

// Clock is a monotonic clock in nanoseconds. Policies read it only where
// their model needs time (an open breaker, a time window, a backoff), so the
// common path of a closed, count-window breaker reads no clock at all.
type Clock interface {
	// Nanotime returns monotonic nanoseconds since an arbitrary origin.
	Nanotime() int64
}

// SystemClock reads the process's monotonic clock. It is the default clock of
// every policy, and under testing/synctest it follows the bubble's fake time.
var SystemClock Clock = systemClock{}

var clockOrigin = time.Now()

type systemClock struct{}

// Nanotime reads only the monotonic clock (time.Since on a monotonic origin).
func (systemClock) Nanotime() int64 { return int64(time.Since(clockOrigin)) }

// ManualClock is a Clock that moves only when told to: the explicit clock for
// tests. Its zero value reads 0. It is safe for concurrent use.
type ManualClock struct{ now atomic.Int64 }

// NewManualClock returns a ManualClock reading start.
func NewManualClock(start time.Duration) *ManualClock {
	c := &ManualClock{}
	c.now.Store(int64(start))
	return c
}

// Nanotime returns the clock's current reading.
func (c *ManualClock) Nanotime() int64 { return c.now.Load() }

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

// Set moves the clock to t.
func (c *ManualClock) Set(t time.Duration) { c.now.Store(int64(t)) }

// ClockOrSystem returns c, or SystemClock when c is nil.
func ClockOrSystem(c Clock) Clock {
	if c == nil {
		return SystemClock
	}
	return c
}
