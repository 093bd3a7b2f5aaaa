package spillway

import (
	"context"
	"fmt"
	"time"
)

// maxGuards bounds the guards of one pipeline so that their permits live in
// a fixed array on the stack instead of a slice on the heap.
const maxGuards = 8

// Policies lists the policies of a Pipeline. Every field is optional; a nil
// field is skipped. Pass untyped nil, not a typed nil pointer, for a policy
// you do not want.
type Policies[T any] struct {
	// Fallback serves a substitute when the execution fails.
	Fallback Fallbacker[T]
	// Total bounds the whole execution, retries and backoff included.
	Total Timeouter
	// Retry re-runs failed attempts.
	Retry Retrier
	// Guards are acquired in order before every attempt and released in
	// reverse order after it: the standard pipeline has the breaker, then the
	// bulkhead. At most 8.
	Guards []Guard
	// Attempt bounds each attempt.
	Attempt Timeouter
	// Observer receives one EventAttempt per attempt (with its duration).
	// The policies report their own events to their own observers.
	Observer Observer
	// Clock times attempts for the Observer; SystemClock when nil.
	Clock Clock
	// Name is reported in events.
	Name string
}

// Pipeline composes policies around calls that return a T, in the fixed
// order fallback → total timeout → retry → guards → attempt timeout → call.
// It is built once and is safe for concurrent use; the policies in it may be
// shared with other pipelines. An execution that succeeds on its first attempt
// allocates nothing beyond what its timeouts' contexts need.
type Pipeline[T any] struct {
	p      Policies[T]
	guards [maxGuards]Guard
	n      int
	clock  Clock
}

// NewPipeline returns a Pipeline over p. It panics if p has more than 8 guards.
func NewPipeline[T any](p Policies[T]) *Pipeline[T] {
	if len(p.Guards) > maxGuards {
		panic(fmt.Sprintf("spillway: a pipeline takes at most %d guards, got %d", maxGuards, len(p.Guards)))
	}
	pl := &Pipeline[T]{p: p, clock: ClockOrSystem(p.Clock)}
	for _, g := range p.Guards {
		if g != nil {
			pl.guards[pl.n] = g
			pl.n++
		}
	}
	return pl
}

// NewStandard returns the standard pipeline: fallback, total timeout, retry
// (with its budget), breaker, bulkhead, attempt timeout. Any of them may be
// nil (untyped).
func NewStandard[T any](fb Fallbacker[T], total Timeouter, r Retrier, breaker, bulkhead Guard, attempt Timeouter) *Pipeline[T] {
	return NewPipeline(Policies[T]{Fallback: fb, Total: total, Retry: r, Guards: []Guard{breaker, bulkhead}, Attempt: attempt})
}

// Result is the outcome of one execution.
type Result[T any] struct {
	Value T
	Err   error
	// Attempts is the number of attempts made (0 when a guard refused the
	// first one before it started, or the context was done).
	Attempts int
	// Fallback names the fallback that served Value, "" when the call itself did.
	Fallback string
}

// Execute runs fn through the pipeline and returns its value or the final error.
func (pl *Pipeline[T]) Execute(ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var r Result[T]
	pl.run(ctx, fn, nil, &r)
	return r.Value, r.Err
}

// ExecuteResult runs fn through the pipeline and reports the whole outcome.
func (pl *Pipeline[T]) ExecuteResult(ctx context.Context, fn func(context.Context) (T, error)) Result[T] {
	var r Result[T]
	pl.run(ctx, fn, nil, &r)
	return r
}

// Run runs fn, which returns no value, through the pipeline.
func (pl *Pipeline[T]) Run(ctx context.Context, fn func(context.Context) error) error {
	var r Result[T]
	pl.run(ctx, nil, fn, &r)
	return r.Err
}

// run fills res; the Result travels by pointer so that its fields are not
// copied through every level.
func (pl *Pipeline[T]) run(ctx context.Context, fn func(context.Context) (T, error), fnE func(context.Context) error, res *Result[T]) {
	if pl.p.Total != nil {
		ectx, cancel := pl.p.Total.Start(ctx)
		// Deferred so that a panicking call does not leave the timer running.
		defer cancel()
		pl.retryLoop(ctx, ectx, fn, fnE, res)
		res.Err = pl.p.Total.Finish(ectx, res.Err)
	} else {
		pl.retryLoop(ctx, ctx, fn, fnE, res)
	}
	if res.Err != nil && pl.p.Fallback != nil {
		v, served, ferr := pl.p.Fallback.Fallback(ctx, res.Err)
		if served != "" {
			res.Value, res.Err, res.Fallback = v, nil, served
		} else {
			res.Err = ferr
		}
	}
}

// retryLoop runs the attempts under ctx (the caller's context, bounded by the
// total timeout); caller is the caller's own context, which tells the guards
// whether an ended call was the caller's doing.
func (pl *Pipeline[T]) retryLoop(caller, ctx context.Context, fn func(context.Context) (T, error), fnE func(context.Context) error, res *Result[T]) {
	if pl.p.Retry == nil {
		res.Value, res.Err, res.Attempts = pl.attempt(caller, ctx, fn, fnE, 1)
		return
	}
	s := pl.p.Retry.Begin()
	for {
		var started int
		res.Value, res.Err, started = pl.attempt(caller, ctx, fn, fnE, s.Attempts+1)
		res.Attempts += started
		s.Attempts++
		if res.Err == nil {
			return
		}
		var delay time.Duration
		var stop error
		s, delay, stop = pl.p.Retry.Next(ctx, s, res.Err)
		if stop != nil {
			res.Err = stop
			return
		}
		if err := Sleep(ctx, delay); err != nil {
			// The caller's context or the total timeout ended the backoff: the
			// last attempt's error is kept as the cause.
			res.Err = stopDuringBackoff(err, res.Err)
			return
		}
	}
}

// stopDuringBackoff returns the error of an execution whose backoff was cut
// short: a policy error (a total timeout) as it is, with the last attempt's
// failure as its cause, or the caller's context error.
func stopDuringBackoff(ctxErr, last error) error {
	if e, ok := ctxErr.(*Error); ok && e.Cause == nil {
		c := *e
		c.Cause = last
		return &c
	}
	return ctxErr
}

// attempt runs one attempt under the guards and the attempt timeout. started
// is 1 when fn ran, 0 when a guard refused it or ctx was already done.
func (pl *Pipeline[T]) attempt(caller, ctx context.Context, fn func(context.Context) (T, error), fnE func(context.Context) error, n int) (v T, err error, started int) {
	if err := ctx.Err(); err != nil {
		return v, context.Cause(ctx), 0
	}
	var permits [maxGuards]Permit
	for i := 0; i < pl.n; i++ {
		p, err := pl.guards[i].Acquire(ctx)
		if err != nil {
			for j := i - 1; j >= 0; j-- {
				permits[j].Release(err)
			}
			return v, err, 0
		}
		permits[i] = p
	}
	var t0 int64
	if pl.p.Observer != nil {
		t0 = pl.clock.Nanotime()
	}
	v, err = pl.call(ctx, fn, fnE, &permits)
	outcome := err
	if IsCallerDone(caller, err) {
		// The caller gave up; the downstream is not to blame.
		outcome = CallerDone(err)
	}
	for j := pl.n - 1; j >= 0; j-- {
		permits[j].Release(outcome)
	}
	if pl.p.Observer != nil {
		pl.p.Observer.Observe(Event{Kind: EventAttempt, Context: ctx, Policy: "pipeline", Name: pl.p.Name, Attempt: n,
			Duration: time.Duration(pl.clock.Nanotime() - t0), Err: err})
	}
	return v, err, 1
}

// call runs fn under the attempt timeout. If fn panics (or calls
// runtime.Goexit), every permit is released with a *PanicError before the
// panic goes on.
func (pl *Pipeline[T]) call(ctx context.Context, fn func(context.Context) (T, error), fnE func(context.Context) error, permits *[maxGuards]Permit) (v T, err error) {
	done := false
	actx := ctx
	var cancel context.CancelFunc
	defer func() {
		if cancel != nil {
			cancel()
		}
		if !done {
			// fn panicked, or called runtime.Goexit (recover returns nil then).
			r := recover()
			perr := &PanicError{Value: r}
			for j := pl.n - 1; j >= 0; j-- {
				permits[j].Release(perr)
			}
			if r != nil {
				panic(r)
			}
		}
	}()
	if pl.p.Attempt != nil {
		actx, cancel = pl.p.Attempt.Start(ctx)
	}
	if fn != nil {
		v, err = fn(actx)
	} else {
		err = fnE(actx)
	}
	if pl.p.Attempt != nil {
		err = pl.p.Attempt.Finish(actx, err)
	}
	done = true
	return v, err
}

// limiter is implemented by timeouts that can tell their limit, such as
// timeout.Timeout.
type limiter interface{ Duration() time.Duration }

// Warnings returns the settings of the pipeline that are valid but cannot
// work as meant, in the words of `spillway validate`: an attempt timeout at
// or above the total timeout (no retry could ever start). It reads the limits
// of timeouts that implement Duration() time.Duration.
func (pl *Pipeline[T]) Warnings() []string {
	var w []string
	a, aok := pl.p.Attempt.(limiter)
	t, tok := pl.p.Total.(limiter)
	if aok && tok && pl.p.Retry != nil && a.Duration() >= t.Duration() {
		w = append(w, fmt.Sprintf("attempt timeout %s >= total timeout %s: a timed-out attempt leaves no time for a retry", a.Duration(), t.Duration()))
	}
	return w
}
