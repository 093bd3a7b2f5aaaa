package overload

import (
	"context"
	"math/rand/v2"

	fslimiter "github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
)

// Strategy is the protection a client puts in front of the downstream: it
// admits or refuses each call, then learns how the call went. Strategies
// measure latency themselves, on the clock they were built with.
type Strategy interface {
	// Acquire admits a call (ok) or refuses it.
	Acquire() (t Ticket, ok bool)
	// Release returns an admitted call's ticket; failed is true when the
	// call timed out.
	Release(t Ticket, failed bool)
	// Limit is the current concurrency limit, or 0 when there is none.
	Limit() int
}

// Ticket is what Acquire hands out and Release takes back.
type Ticket struct {
	permit spillway.Permit
	fs     fslimiter.Permit
}

// Row is one protection strategy of the comparison.
type Row struct {
	Name string
	// New builds a fresh strategy for one run: clock is the run's time (the
	// simulation's, or the system's in the real run) and rng a seeded source
	// for strategies that draw random numbers (nil in the real run, whose
	// calls are concurrent: such a strategy then uses its default source).
	New func(clock spillway.Clock, rng *rand.Rand) Strategy
	// WallClock marks a strategy that reads time.Now itself (failsafe-go's):
	// the simulation can run it only inside a testing/synctest bubble, whose
	// fake time it advances along with its own.
	WallClock bool
}

// errTimeout is how a timed-out call is reported to spillway's guards: the
// error an attempt timeout would give them.
var errTimeout = &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "timeout",
	Err: context.DeadlineExceeded}

// Unprotected admits every call.
func Unprotected() Row {
	return Row{Name: "no protection", New: func(spillway.Clock, *rand.Rand) Strategy { return none{} }}
}

type none struct{}

func (none) Acquire() (Ticket, bool) { return Ticket{}, true }
func (none) Release(Ticket, bool)    {}
func (none) Limit() int              { return 0 }

// Static is spillway's bulkhead with a fixed limit and no queue.
func Static(name string, limit int) Row {
	return Row{Name: name, New: func(spillway.Clock, *rand.Rand) Strategy {
		return Guard(bulkhead.MustNew(bulkhead.Config{MaxConcurrent: limit}))
	}}
}

// LimitedGuard is a spillway guard that has a concurrency limit (a bulkhead,
// static or adaptive).
type LimitedGuard interface {
	spillway.Guard
	Limit() int
}

// Guard adapts a spillway guard. A guard with a Limit method reports it.
func Guard(g spillway.Guard) Strategy { return guard{g} }

type guard struct{ g spillway.Guard }

func (s guard) Acquire() (Ticket, bool) {
	p, err := s.g.Acquire(context.Background())
	return Ticket{permit: p}, err == nil
}

func (s guard) Release(t Ticket, failed bool) {
	if failed {
		t.permit.Release(errTimeout)
		return
	}
	t.permit.Release(nil)
}

func (s guard) Limit() int {
	if l, ok := s.g.(LimitedGuard); ok {
		return l.Limit()
	}
	return 0
}
