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
// Its attempts run on an Engine, the same one the HTTP and gRPC integrations
// use. It is built once and is safe for concurrent use; the policies in it
// may be shared with other pipelines. An execution that succeeds on its first
// attempt allocates nothing beyond what its timeouts' contexts need.
type Pipeline[T any] struct {
	p   Policies[T]
	eng Engine[T]
}

// NewPipeline returns a Pipeline over p. It panics if p has more than 8 guards.
func NewPipeline[T any](p Policies[T]) *Pipeline[T] {
	if len(p.Guards) > maxGuards {
		panic(fmt.Sprintf("spillway: a pipeline takes at most %d guards, got %d", maxGuards, len(p.Guards)))
	}
	return &Pipeline[T]{p: p, eng: NewEngine(EngineConfig[T]{Guards: p.Guards, Timeout: p.Attempt,
		Observer: p.Observer, Clock: p.Clock, Policy: "pipeline", Name: p.Name})}
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
	pl.run(ctx, fn, &r)
	return r.Value, r.Err
}

// ExecuteResult runs fn through the pipeline and reports the whole outcome.
func (pl *Pipeline[T]) ExecuteResult(ctx context.Context, fn func(context.Context) (T, error)) Result[T] {
	var r Result[T]
	pl.run(ctx, fn, &r)
	return r
}

// Run runs fn, which returns no value, through the pipeline.
func (pl *Pipeline[T]) Run(ctx context.Context, fn func(context.Context) error) error {
	var r Result[T]
	pl.run(ctx, func(ctx context.Context) (v T, err error) { return v, fn(ctx) }, &r)
	return r.Err
}

// run fills res; the Result travels by pointer so that its fields are not
// copied through every level.
func (pl *Pipeline[T]) run(ctx context.Context, fn func(context.Context) (T, error), res *Result[T]) {
	if pl.p.Total != nil {
		ectx, cancel := pl.p.Total.Start(ctx)
		// Deferred so that a panicking call does not leave the timer running.
		defer cancel()
		pl.attempts(ctx, ectx, fn, res)
		res.Err = pl.p.Total.Finish(ectx, res.Err)
	} else {
		pl.attempts(ctx, ctx, fn, res)
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

// attempts runs the attempts under ctx (the caller's context, bounded by the
// total timeout) on the engine, retried by Retry; caller is the caller's own
// context, which tells whether an ended call was the caller's doing.
func (pl *Pipeline[T]) attempts(caller, ctx context.Context, fn func(context.Context) (T, error), res *Result[T]) {
	attempt := func(n int) (bool, error) {
		var started bool
		res.Value, started, _, res.Err = pl.eng.Attempt(caller, ctx, n, fn, nil)
		if started {
			res.Attempts++
		}
		return true, res.Err
	}
	if pl.p.Retry == nil {
		attempt(1)
		return
	}
	s := pl.p.Retry.Begin()
	if _, err := attempt(1); err != nil {
		_, res.Err = Retry(ctx, pl.p.Retry, &s, err, attempt, nil)
	}
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
