package spillway

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Engine runs the attempts of a call under its guards: the one
// implementation of "guards → attempt timeout → call → classify → release"
// that Pipeline and the HTTP and gRPC integrations share, so that they
// acquire, classify, release and report an attempt the same way. Retry, the
// one retry loop (retry.Do's too), drives the attempts of one execution.
// See docs/architecture.md for how each integration plugs in.
//
// An Engine is built once (NewEngine) and is safe for concurrent use; its
// guards live in a fixed array and each attempt's permits on the stack, so an
// attempt allocates nothing of its own.
type Engine[R any] struct {
	guards [maxGuards]Guard
	n      int
	// keep has bit i set when the permit of guards[i] outlives a call that
	// returned no error (EngineConfig.Keep).
	keep          uint8
	timeout       Timeouter
	chaos         Injectors[R]
	classify      func(R, error) (Outcome, error)
	deadlineCount bool
	obs           Observer
	clock         Clock
	policy, name  string
}

// EngineConfig configures an Engine. Every field is optional.
type EngineConfig[R any] struct {
	// Guards are acquired in order before every attempt and released in
	// reverse order after it, exactly once, a panic included. Nil entries
	// are skipped. At most 8.
	Guards []Guard
	// Keep lists guards, among Guards, whose permits outlive an attempt
	// whose call returned no error: Attempt hands them to its caller, which
	// releases them exactly once (a response body that holds a bulkhead slot
	// until it is read, a stream that holds one while it lives).
	Keep []Guard
	// Timeout bounds each call: started after the guards admitted it,
	// finished when it returns, its context cancelled however it ends.
	Timeout Timeouter
	// Chaos are injectors run in order inside each attempt, under Timeout,
	// before the call; the first that replaces the call ends the attempt
	// with its result. Nil entries are skipped.
	Chaos []Injector[R]
	// Classify says how an attempt's result r and error err count, when the
	// caller's context did not end the attempt: Success, Failure with the
	// error the guards record and the retry policy sees (err itself, or an
	// error standing for a failing result such as an HTTP 503), or Ignored
	// (released marked with CallerDone, which breakers never count). Default:
	// err is the failure, and the guards classify it themselves (a breaker
	// by its Config.Classify).
	Classify func(r R, err error) (Outcome, error)
	// CallerDeadlineCounts lets an attempt that the caller's deadline (not
	// its cancellation) ended be classified like any other: gRPC sets it, as
	// the caller's deadline is the only timeout most gRPC calls have.
	// Default false: the caller's deadline is the caller's doing.
	CallerDeadlineCounts bool
	// Observer receives one EventAttempt per attempt made, with Policy and
	// Name as given here.
	Observer Observer
	// Clock times attempts for the Observer; SystemClock when nil.
	Clock  Clock
	Policy string
	Name   string
}

// NewEngine returns the Engine configured by cfg. It panics if cfg has more
// than 8 guards or keeps a guard it does not have, a programming error.
func NewEngine[R any](cfg EngineConfig[R]) Engine[R] {
	if len(cfg.Guards) > maxGuards {
		panic(fmt.Sprintf("spillway: an engine takes at most %d guards, got %d", maxGuards, len(cfg.Guards)))
	}
	e := Engine[R]{timeout: cfg.Timeout, classify: cfg.Classify, deadlineCount: cfg.CallerDeadlineCounts,
		obs: cfg.Observer, clock: ClockOrSystem(cfg.Clock), policy: cfg.Policy, name: cfg.Name}
	for _, g := range cfg.Guards {
		if g != nil {
			e.guards[e.n] = g
			e.n++
		}
	}
	e.chaos = NewInjectors(cfg.Chaos...)
	for _, k := range cfg.Keep {
		i := e.index(k)
		if i < 0 {
			panic("spillway: an engine keeps the permits of a guard it does not have")
		}
		e.keep |= 1 << i
	}
	return e
}

func (e *Engine[R]) index(g Guard) int {
	for i := range e.n {
		if e.guards[i] == g {
			return i
		}
	}
	return -1
}

// Permits are the permits an attempt holds, in the order their guards were
// acquired. A Permits value is small enough to live on the stack (a fixed
// array, no allocation).
type Permits struct {
	p [maxGuards]Permit
	n int
}

// Release releases every permit still held, in reverse order of
// acquisition, with err; the permits are then gone, so a second Release
// releases nothing.
func (ps *Permits) Release(err error) {
	for i := ps.n - 1; i >= 0; i-- {
		ps.p[i].Release(err)
	}
	ps.n = 0
}

// Take removes the permit that r issued from ps and returns it, the zero
// Permit when ps holds none: its new holder releases it, once.
func (ps *Permits) Take(r Releaser) Permit {
	for i := range ps.n {
		if ps.p[i].r != nil && ps.p[i].r == r {
			p := ps.p[i]
			ps.p[i] = Permit{}
			return p
		}
	}
	return Permit{}
}

// Attempt makes attempt n of a call: it acquires the guards under ctx, runs
// the chaos injectors and fn under the attempt timeout, classifies the
// outcome, releases the guards with it and reports an EventAttempt. caller is the caller's own context
// (ctx is caller, or a context derived from it by a total timeout): an
// attempt that fails once caller has ended is the caller's doing, released
// marked with CallerDone, never counted against the downstream.
//
// It returns fn's result and error, and failure, the attempt's failure as
// the retry policy sees it (nil when the attempt counts as a success or is
// ignored). started is false when fn did not run: ctx was done (err is its
// cause) or a guard refused (err is the refusal).
//
// kept, when not nil, receives the permits of EngineConfig.Keep after a call
// that returned no error; the caller releases them. If fn panics or calls
// runtime.Goexit, every permit is released with a *PanicError and the
// attempt timeout's context is cancelled before the panic goes on.
func (e *Engine[R]) Attempt(caller, ctx context.Context, n int, fn func(context.Context) (R, error), kept *Permits) (r R, started bool, failure, err error) {
	if ctx.Err() != nil {
		err = context.Cause(ctx)
		return r, false, err, err
	}
	// The guards are acquired and released in loops written out here, not
	// in calls: this is the hot path of every pipeline and transport.
	var ps Permits
	for i := range e.n {
		p, err := e.guards[i].Acquire(ctx)
		if err != nil {
			// The refusal releases the permits already taken; breakers
			// ignore it.
			for j := i - 1; j >= 0; j-- {
				ps.p[j].Release(err)
			}
			return r, false, err, err
		}
		ps.p[i] = p
	}
	ps.n = e.n
	var t0 int64
	if e.obs != nil {
		t0 = e.clock.Nanotime()
	}
	r, err = e.call(ctx, fn, &ps)
	if err == nil && e.keep != 0 && kept != nil {
		e.hand(&ps, kept)
	}
	var release error
	if err != nil || e.classify != nil {
		release, failure = e.Judge(caller, r, err)
	}
	for i := ps.n - 1; i >= 0; i-- {
		ps.p[i].Release(release)
	}
	if e.obs != nil {
		e.obs.Observe(Event{Kind: EventAttempt, Context: ctx, Policy: e.policy, Name: e.name, Attempt: n,
			Duration: time.Duration(e.clock.Nanotime() - t0), Err: failure})
	}
	return r, true, failure, err
}

// hand moves the kept permits from ps to kept.
func (e *Engine[R]) hand(ps, kept *Permits) {
	for i := range ps.n {
		if e.keep&(1<<i) != 0 {
			kept.p[kept.n] = ps.p[i]
			kept.n++
			ps.p[i] = Permit{}
		}
	}
}

// call runs fn under the attempt timeout while ps is held.
func (e *Engine[R]) call(ctx context.Context, fn func(context.Context) (R, error), ps *Permits) (r R, err error) {
	done := false
	var cancel context.CancelFunc
	defer func() {
		if cancel != nil {
			cancel()
		}
		if !done {
			// fn panicked, or called runtime.Goexit (recover returns nil then).
			Unwind(recover(), ps.Release)
		}
	}()
	if e.timeout != nil {
		ctx, cancel = e.timeout.Start(ctx)
	}
	if e.chaos.off() {
		// Checked here, not in Run (which the compiler does not inline): a
		// pipeline without chaos, or with chaos switched off, calls fn
		// directly.
		r, err = fn(ctx)
	} else {
		r, err = e.chaos.run(ctx, fn)
	}
	if e.timeout != nil {
		err = e.timeout.Finish(ctx, err)
	}
	done = true
	return r, err
}

// Unwind ends a call that panicked or called runtime.Goexit while it held
// something that must be given back: r is what recover returned in the
// deferred function that saw the call end without returning (nil after
// Goexit). release is called with a *PanicError, then the panic goes on.
// Engine.Attempt uses it for the permits of an attempt; an integration that
// holds permits past an attempt (a stream) uses it around its own calls.
func Unwind(r any, release func(error)) {
	release(&PanicError{Value: r})
	if r != nil {
		panic(r)
	}
}

// errIgnored stands for an outcome that a classifier ignored without an
// error of its own (a response, not a failure).
var errIgnored = errors.New("spillway: outcome ignored by the classifier")

// Judge returns how an attempt that ended with result r and error err is
// released to its guards (release) and the failure the retry policy sees:
//   - the caller's own end: once caller is done, an error is the caller's
//     doing, released marked with CallerDone (the caller's deadline is
//     classified like any other error when CallerDeadlineCounts is set);
//   - otherwise Classify's verdict: nil for a Success, its error for a
//     Failure, CallerDone-marked for Ignored (no failure).
//
// Attempt uses it for every attempt; an integration whose call outlives the
// attempt (a stream) uses it for the permits it kept.
func (e *Engine[R]) Judge(caller context.Context, r R, err error) (release, failure error) {
	if e.callerEnded(caller, err) {
		return CallerDone(err), err
	}
	if e.classify == nil {
		return err, err
	}
	o, f := e.classify(r, err)
	switch o {
	case Success:
		return nil, nil
	case Ignored:
		if f == nil {
			f = errIgnored
		}
		return CallerDone(f), nil
	}
	if f == nil {
		f = err
	}
	return f, f
}

// callerEnded reports whether err ended an attempt because the caller's
// context ended: err is set and caller is done. Whatever err is — the
// context's error, a transport's error for a cancelled request, a timeout
// whose deadline the caller's own was — the caller gave up first, which says
// nothing about the downstream.
func (e *Engine[R]) callerEnded(caller context.Context, err error) bool {
	if err == nil {
		return false
	}
	cerr := caller.Err()
	return cerr != nil && !(e.deadlineCount && cerr == context.DeadlineExceeded)
}

// Retry goes on with an execution whose latest attempt failed with failure:
// it asks r whether to retry (s is the execution's state, from r.Begin, its
// Attempts counting the attempts before the failed one), sleeps the backoff
// under ctx and makes the next attempt with attempt, until an attempt
// succeeds, r stops, or ctx ends during a backoff. It is the one retry loop
// of Pipeline, retry.Do and the HTTP and gRPC integrations.
//
// attempt makes attempt n and returns its failure as r sees it (nil: the
// attempt succeeded) and whether r may consider it (false ends the
// execution with that failure as it is). pause, when not nil, is called
// before each backoff: the failed attempt will not be the execution's result
// (an HTTP response is drained then). A nil r never retries.
//
// The error is nil or the final failure, and end says which rule ended the
// execution.
func Retry(ctx context.Context, r Retrier, s *RetryState, failure error, attempt func(n int) (retry bool, failure error), pause func()) (end RetryEnd, err error) {
	for failure != nil && r != nil {
		s.Attempts++
		var delay time.Duration
		var stop error
		if *s, delay, stop = r.Next(ctx, *s, failure); stop != nil {
			return RetryStopped, stop
		}
		if pause != nil {
			pause()
		}
		// Sleep may see its timer fire and ctx end at once and pick the
		// timer: ctx is checked again so that no attempt starts on a done
		// context.
		if Sleep(ctx, delay) != nil || ctx.Err() != nil {
			return RetryCut, stopDuringBackoff(context.Cause(ctx), failure)
		}
		var again bool
		if again, failure = attempt(s.Attempts + 1); !again {
			return RetryDone, failure
		}
	}
	return RetryDone, failure
}

// RetryEnd says which rule ended a Retry loop.
type RetryEnd uint8

const (
	// RetryDone: the last attempt succeeded, or its failure was not to be
	// retried; the execution ends with that attempt's own outcome.
	RetryDone RetryEnd = iota
	// RetryStopped: the Retrier stopped; the error is its stop error.
	RetryStopped
	// RetryCut: ctx ended during a backoff; the error is ctx's cause, a
	// policy error cause (a total timeout) carrying the last failure as its
	// Cause.
	RetryCut
)

// stopDuringBackoff returns the error of an execution whose backoff was cut
// short: a policy error (a total timeout) as a copy whose Cause is the last
// attempt's failure, or the caller's context error as it is.
func stopDuringBackoff(ctxErr, last error) error {
	if e, ok := ctxErr.(*Error); ok && e.Cause == nil && last != nil {
		c := *e
		c.Cause = last
		return &c
	}
	return ctxErr
}
