package overload

import (
	"math/rand/v2"
	"time"

	fslimiter "github.com/failsafe-go/failsafe-go/adaptivelimiter"
	fsthrottler "github.com/failsafe-go/failsafe-go/adaptivethrottler"
	"github.com/spillway-dev/spillway"
)

// FailsafeLimiter is failsafe-go v0.9.8's adaptive limiter with its
// defaults (limits 1..200, initial 20, no queueing), used as
// failsafe.With(limiter).Get(call) uses it: a refused permit is a rejection,
// every admitted call's duration is recorded, a timed-out one included (the
// call returns the client's timeout error; failsafe-go drops the sample only
// when its own execution is cancelled).
func FailsafeLimiter() Row {
	return Row{Name: "failsafe-go adaptivelimiter", WallClock: true,
		New: func(spillway.Clock, *rand.Rand) Strategy {
			return fsLimiter{fslimiter.NewWithDefaults[any]()}
		}}
}

type fsLimiter struct {
	l fslimiter.AdaptiveLimiter[any]
}

func (s fsLimiter) Acquire() (Ticket, bool) {
	p, ok := s.l.TryAcquirePermit()
	return Ticket{fs: p}, ok
}
func (s fsLimiter) Release(t Ticket, _ bool) { t.fs.Record() }
func (s fsLimiter) Limit() int               { return s.l.Limit() }

// FailsafeThrottler is failsafe-go v0.9.8's adaptive throttler set to the
// same rule as spillway's throttler row: reject once requests exceed k times
// the successes over window (failure rate threshold 1−1/k), its default
// maximum rejection rate of 0.9. It draws from math/rand/v2's global source,
// which cannot be seeded: its row varies a little from run to run.
func FailsafeThrottler(k float64, window time.Duration) Row {
	return Row{Name: "failsafe-go adaptivethrottler", WallClock: true,
		New: func(spillway.Clock, *rand.Rand) Strategy {
			t := fsthrottler.NewBuilder[any]().
				WithFailureRateThreshold(1-1/k, 0, window).Build()
			return fsThrottler{t}
		}}
}

type fsThrottler struct {
	t fsthrottler.AdaptiveThrottler[any]
}

func (s fsThrottler) Acquire() (Ticket, bool) { return Ticket{}, s.t.TryAcquirePermit() }
func (s fsThrottler) Release(_ Ticket, failed bool) {
	if failed {
		s.t.RecordFailure()
		return
	}
	s.t.RecordSuccess()
}
func (s fsThrottler) Limit() int { return 0 }
