package spillway

import (
	"context"
	"errors"
)

// Guard admits or refuses a call before it runs and learns its outcome
// afterwards: a circuit breaker, a bulkhead, a rate limiter. A Pipeline
// acquires its guards in order before each attempt and releases them in
// reverse order after it, whatever happens (a panic included).
type Guard interface {
	// Acquire admits the call and returns a Permit that must be released
	// exactly once, or refuses it with an error that carries a Reason.
	Acquire(ctx context.Context) (Permit, error)
}

// Releaser takes back the permits its Guard handed out.
type Releaser interface {
	// ReleasePermit records the outcome err of the call that held p (nil
	// for success). It must never block.
	ReleasePermit(p Permit, err error)
}

// Permit is the proof that a Guard admitted a call. It is a small value (no
// allocation): the issuing guard's Releaser and two words of the guard's own
// bookkeeping (a breaker keeps its generation and the start time there).
// The zero Permit releases nothing.
type Permit struct {
	r    Releaser
	a, b uint64
}

// NewPermit returns a Permit that r will take back; a and b are r's own words.
func NewPermit(r Releaser, a, b uint64) Permit { return Permit{r: r, a: a, b: b} }

// Words returns the issuing guard's two words.
func (p Permit) Words() (a, b uint64) { return p.a, p.b }

// Releaser returns the guard that issued p (nil for the zero Permit).
func (p Permit) Releaser() Releaser { return p.r }

// Release hands p back to its guard with the call's outcome.
func (p Permit) Release(err error) {
	if p.r != nil {
		p.r.ReleasePermit(p, err)
	}
}

// Outcome is how a breaker counts a call's result.
type Outcome uint8

const (
	// Success counts as a successful call.
	Success Outcome = iota
	// Failure counts as a failed call.
	Failure
	// Ignored is not recorded at all.
	Ignored
)

func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Ignored:
		return "ignored"
	}
	return "unknown"
}

// OutcomeOf is how a guard that learns from outcomes (a breaker, a
// client-side throttle) counts a call that ended with err, unless its own
// Classify says otherwise:
//   - nil is a Success;
//   - the caller's own end is Ignored: ErrCallerDone (CallerDone), which the
//     engine attaches when the caller's context was cancelled or reached its
//     deadline, and any context.Canceled;
//   - a local rejection (IsRejection: another guard's refusal) is Ignored:
//     the downstream was never called;
//   - everything else is a Failure, a deadline that is not the caller's and
//     a *PanicError included.
func OutcomeOf(err error) Outcome {
	switch err.(type) {
	case nil:
		return Success
	case *Error, interface{ Unwrap() error }, interface{ Unwrap() []error }, interface{ Is(error) bool }, interface{ As(any) bool }:
		// A chain to walk.
	default:
		// A plain error, the common failure: neither errors.Is nor
		// errors.As could match anything but err itself.
		if err == context.Canceled || err == ErrCallerDone {
			return Ignored
		}
		return Failure
	}
	if errors.Is(err, ErrCallerDone) || errors.Is(err, context.Canceled) || IsRejection(err) {
		return Ignored
	}
	return Failure
}

// Guarded runs fn under one permit of g: it returns g's refusal without
// calling fn, or fn's result, and releases the permit with fn's error —
// marked CallerDone when it is ctx's own end (IsCallerDone), a
// *PanicError when fn panics or calls runtime.Goexit (the panic goes on).
// It is the Execute and Do of a single guard (breaker.Do, throttle.Do).
func Guarded[T any](ctx context.Context, g Guard, fn func(context.Context) (T, error)) (T, error) {
	p, err := g.Acquire(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	done := false
	defer func() {
		if !done {
			Unwind(recover(), p.Release)
		}
	}()
	v, err := fn(ctx)
	done = true
	if err != nil && IsCallerDone(ctx, err) {
		p.Release(CallerDone(err))
	} else {
		p.Release(err)
	}
	return v, err
}
