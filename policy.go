package spillway

import (
	"context"
	"sync/atomic"
	"time"
)

// Retrier is the contract between a Pipeline and a retry policy;
// retry.Policy implements it. Its methods take and return RetryState by
// value, so an execution allocates nothing for its retry bookkeeping.
type Retrier interface {
	// Begin starts one execution (a retry budget records one request here)
	// and returns its state.
	Begin() RetryState
	// Next is called after an attempt failed with err. It returns the updated
	// state and the delay to wait before the next attempt, or a non-nil stop
	// error: the error the execution ends with (err itself when it is not
	// retryable, or a policy error wrapping it). Next reports the retries it
	// schedules and the refusals it makes to its observers (its own, and a
	// pipeline's when it is an ObserverAttacher).
	Next(ctx context.Context, s RetryState, err error) (next RetryState, delay time.Duration, stop error)
}

// RetryState is one execution's retry bookkeeping.
type RetryState struct {
	// Attempts is the number of attempts made so far.
	Attempts int
	// Start is the clock reading when the execution began (0 when the policy
	// needs no clock: no max elapsed time).
	Start int64
	// Prev is the previous backoff delay (decorrelated jitter needs it).
	Prev time.Duration
}

// Timeouter is the contract between a Pipeline and a timeout policy;
// timeout.Timeout implements it.
type Timeouter interface {
	// Start derives the context that bounds the call.
	Start(ctx context.Context) (context.Context, context.CancelFunc)
	// Finish is called with the derived context and the call's error. When the
	// policy's own deadline (not the caller's) cut the call short it returns
	// the policy's timeout error, which carries ReasonDeadlineExceeded and
	// still matches context.DeadlineExceeded; otherwise it returns err.
	Finish(ctx context.Context, err error) error
}

// Fallbacker is the contract between a Pipeline and a fallback policy;
// fallback.Fallback implements it.
type Fallbacker[T any] interface {
	// Fallback is called with the execution's final error (never nil). It
	// returns a substitute value and the name of the fallback that served it,
	// or served == "" and the error the execution ends with.
	Fallback(ctx context.Context, err error) (v T, served string, ferr error)
}

// Sleep waits for d or until ctx is done, whichever comes first, and returns
// ctx's error in the second case. It starts a timer, not a goroutine.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Injector is the contract between an Engine (every Pipeline, and the HTTP
// transport's attempts) and a chaos policy; the chaos package's Policy
// implements it. Inject runs inside every attempt, after the guards
// admitted it and under the attempt timeout, just before the call, so that
// the other policies react to an injected fault exactly as to a real one:
// the breaker counts it, the retry policy retries it, a fallback serves in
// its place, the attempt timeout cuts an injected latency short.
//
// Inject returns replaced == true and the result (v, err) to use in the
// call's stead (an injected error, a substitute value, or the context's
// cause when it ended during an injected latency), or false to let the call
// run (after a latency or a behaviour it injected). A disabled injector
// must cost no more than one atomic load.
type Injector[T any] interface {
	Inject(ctx context.Context) (v T, replaced bool, err error)
}

// Switched is implemented by injectors with an on/off switch that the
// Engine may read itself (chaos.Policy): a switched-off injector then costs
// the Engine one atomic load per attempt, not a call through the Injector
// interface. Storing true or false in it is the same as the injector's own
// SetEnabled.
type Switched interface {
	Switch() *atomic.Bool
}

// Injectors are chaos injectors made ready for the hot path: each one's
// switch (Switched) is read without a call. The Engine runs its own
// (EngineConfig.Chaos); an integration that runs its calls under a context
// of its own (spillwayhttp's attempt limit) runs them itself with Run. The
// zero value runs no injector.
type Injectors[T any] struct {
	list []injector[T]
}

// injector is an Injector with its switch, when it has one.
type injector[T any] struct {
	Injector[T]
	on *atomic.Bool
}

// NewInjectors returns the Injectors that run ins in order; nil entries
// are skipped.
func NewInjectors[T any](ins ...Injector[T]) Injectors[T] {
	var is Injectors[T]
	for _, c := range ins {
		if c == nil {
			continue
		}
		in := injector[T]{Injector: c}
		if s, ok := c.(Switched); ok {
			in.on = s.Switch()
		}
		is.list = append(is.list, in)
	}
	return is
}

// Run runs the injectors in order under ctx, then fn unless one of them
// replaced it, and returns the result that stands. When every injector is
// switched off, Run costs an atomic load per injector and calls fn.
func (is Injectors[T]) Run(ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	if is.off() {
		return fn(ctx)
	}
	return is.run(ctx, fn)
}

// off reports whether no injector can inject: none, or all switched off.
func (is Injectors[T]) off() bool {
	for i := range is.list {
		if on := is.list[i].on; on == nil || on.Load() {
			return false
		}
	}
	return true
}

func (is Injectors[T]) run(ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	for i := range is.list {
		c := &is.list[i]
		if c.on != nil && !c.on.Load() {
			continue
		}
		if v, replaced, err := c.Inject(ctx); replaced {
			return v, err
		}
	}
	return fn(ctx)
}
