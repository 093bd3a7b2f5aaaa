package spillway

import (
	"context"
	"time"
)

// Result is the outcome of one execution.
type Result[T any] struct {
	Value T
	Err   error
	// Attempts is the number of attempts made (0 when a guard refused the
	// first one before it started, or the context was done).
	Attempts int
	// Fallback names the fallback that served Value, "" when the call itself did.
	Fallback string
	// Replaced is the error the fallback replaced (the execution's error
	// before the fallback served), nil when the call itself served.
	Replaced error
}

// AttemptInfo tells a call which attempt it is (ExecuteAttempt).
type AttemptInfo struct {
	// Attempt is the attempt's number, from 1.
	Attempt int
	// Elapsed is the time since the execution began, backoffs included.
	Elapsed time.Duration
}

// Execute runs fn through the pipeline and returns its value or the final error.
func (pl *Pipeline[T]) Execute(ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var r Result[T]
	pl.run(ctx, fn, nil, nil, &r)
	pl.fallback(ctx, &r)
	return r.Value, r.Err
}

// ExecuteResult runs fn through the pipeline and reports the whole outcome.
func (pl *Pipeline[T]) ExecuteResult(ctx context.Context, fn func(context.Context) (T, error)) Result[T] {
	var r Result[T]
	pl.run(ctx, fn, nil, nil, &r)
	pl.fallback(ctx, &r)
	return r
}

// ExecuteAttempt is ExecuteResult for a call that wants to know which
// attempt it is and how long the execution has taken so far (to log it, to
// send a smaller request on a retry). Execute and ExecuteResult read no
// clock for it.
func (pl *Pipeline[T]) ExecuteAttempt(ctx context.Context, fn func(context.Context, AttemptInfo) (T, error)) Result[T] {
	var r Result[T]
	pl.run(ctx, nil, nil, fn, &r)
	pl.fallback(ctx, &r)
	return r
}

// Run runs fn, which returns no value, through the pipeline.
func (pl *Pipeline[T]) Run(ctx context.Context, fn func(context.Context) error) error {
	var r Result[T]
	pl.run(ctx, func(ctx context.Context) (v T, err error) { return v, fn(ctx) }, nil, nil, &r)
	pl.fallback(ctx, &r)
	return r.Err
}

// ExecuteHedged is ExecuteResult with each attempt hedged by
// Policies.Hedge: raced against hedges sent after the policy's delay, each
// through the guards, the first success winning (see Hedge). fn must be
// safe to run on several goroutines at once, and idempotent. It escapes to
// the heap (a capturing closure is allocated per call), which is why the
// other methods, whose callers do not pay for it, never hedge. Without
// Policies.Hedge, or for a composition (Compose), it is ExecuteResult.
func (pl *Pipeline[T]) ExecuteHedged(ctx context.Context, fn func(context.Context) (T, error)) Result[T] {
	var r Result[T]
	if pl.p.Hedge == nil || pl.layers != nil {
		pl.run(ctx, fn, nil, nil, &r)
	} else {
		pl.run(ctx, nil, fn, nil, &r)
	}
	pl.fallback(ctx, &r)
	return r
}

// ExecuteKeyed runs fn(ctx, key) through pl and, when the execution fails,
// gives key to the fallback: a step made with fallback.Keyed receives it as
// a K, and any Fallbacker can read it with KeyOf[K] from the context it is
// given. It is how a fallback learns what the call was for (the item whose
// cached copy to serve). The key is put in the fallback's context only when
// a fallback runs: a call that succeeds allocates nothing for it (in a
// composition (Compose), whose fallbacks may run anywhere, it is put in the
// call's context from the start).
func ExecuteKeyed[K, T any](ctx context.Context, pl *Pipeline[T], key K, fn func(context.Context, K) (T, error)) Result[T] {
	var r Result[T]
	if pl.layers != nil {
		ctx = context.WithValue(ctx, callKey{}, key)
	}
	pl.run(ctx, func(ctx context.Context) (T, error) { return fn(ctx, key) }, nil, nil, &r)
	if r.Err != nil && pl.p.Fallback != nil {
		pl.fallback(context.WithValue(ctx, callKey{}, key), &r)
	}
	return r
}

// callKey is the context key of ExecuteKeyed's key.
type callKey struct{}

// KeyOf returns the key that ExecuteKeyed gave the fallback running under
// ctx, and false when there is none or it is not a K.
func KeyOf[K any](ctx context.Context) (K, bool) {
	k, ok := ctx.Value(callKey{}).(K)
	return k, ok
}

// run fills res with the execution's outcome before any fallback; the
// Result travels by pointer so that its fields are not copied through every
// level. Exactly one of fn, hedged and info is set: hedged is a call whose
// attempts are hedged (ExecuteHedged). It is a parameter of its own because
// a hedged call escapes to the heap (its hedges run it on goroutines of
// their own), and escape analysis does not tell branches apart: the
// callers of fn and info do not pay for it.
func (pl *Pipeline[T]) run(ctx context.Context, fn, hedged func(context.Context) (T, error), info func(context.Context, AttemptInfo) (T, error), res *Result[T]) {
	if pl.layers != nil {
		pl.compose(ctx, fn, info, res)
		return
	}
	if pl.p.Total != nil {
		ectx, cancel := pl.p.Total.Start(ctx)
		// Deferred so that a panicking call does not leave the timer running.
		defer cancel()
		pl.attempts(ctx, ectx, fn, hedged, info, res)
		res.Err = pl.p.Total.Finish(ectx, res.Err)
	} else {
		pl.attempts(ctx, ctx, fn, hedged, info, res)
	}
}

// fallback replaces a failed execution's outcome with the fallback's, when
// one serves; ctx is the caller's.
func (pl *Pipeline[T]) fallback(ctx context.Context, res *Result[T]) {
	if res.Err == nil || pl.p.Fallback == nil {
		return
	}
	v, served, ferr := pl.p.Fallback.Fallback(ctx, res.Err)
	if served != "" {
		res.Value, res.Err, res.Fallback, res.Replaced = v, nil, served, res.Err
	} else {
		res.Err = ferr
	}
}

// attempts runs the attempts under ctx (the caller's context, bounded by the
// total timeout) on the engine, retried by Retry; caller is the caller's own
// context, which tells whether an ended call was the caller's doing.
func (pl *Pipeline[T]) attempts(caller, ctx context.Context, fn, hedged func(context.Context) (T, error), info func(context.Context, AttemptInfo) (T, error), res *Result[T]) {
	var start int64
	if info != nil {
		start = pl.clock.Nanotime()
	}
	attempt := func(n int) (bool, error) {
		call := fn
		if info != nil {
			call = func(ctx context.Context) (T, error) {
				return info(ctx, AttemptInfo{Attempt: n, Elapsed: time.Duration(pl.clock.Nanotime() - start)})
			}
		}
		var v T
		var started bool
		var failure, err error
		if hedged != nil {
			var hedges int
			v, started, hedges, failure, err = pl.hedged(caller, ctx, n, hedged)
			res.Attempts += hedges
		} else {
			v, started, failure, err = pl.eng.Attempt(caller, ctx, n, call, nil)
		}
		if started {
			res.Attempts++
		}
		res.Value, res.Err = v, err
		if failure != nil {
			// The failure as classified: err, or the classifier's error for
			// a value that counts as a failure.
			res.Err = failure
		}
		// An error the classifier counted as a success or ignored is
		// returned as it is, not retried.
		return err == nil || failure != nil, res.Err
	}
	if pl.p.Retry == nil {
		attempt(1)
		return
	}
	s := pl.p.Retry.Begin()
	if again, err := attempt(1); again && err != nil {
		_, res.Err = Retry(ctx, pl.p.Retry, &s, err, attempt, nil)
	}
}

// outcome is one attempt's outcome, as Engine.Attempt returns it.
type outcome[T any] struct {
	v            T
	started      bool
	failure, err error
}

// hedged makes attempt n as a hedged race (Policies.Hedge): the primary and
// each hedge are attempts of their own on the engine, each passing the
// guards. It returns the attempt that stands (the first success, or the
// primary when every one failed) and how many hedges were sent, which count
// as attempts.
func (pl *Pipeline[T]) hedged(caller, ctx context.Context, n int, call func(context.Context) (T, error)) (v T, started bool, hedges int, failure, err error) {
	o, hedges, _ := Hedge(ctx, pl.p.Hedge, func(ctx context.Context, _ int) (outcome[T], error) {
		var o outcome[T]
		o.v, o.started, o.failure, o.err = pl.eng.Attempt(HedgeCaller(caller, ctx), ctx, n, call, nil)
		if o.failure != nil {
			return o, o.failure
		}
		// An error the classifier let pass ends the execution as it is, but
		// it does not win a race that another attempt may still win.
		return o, o.err
	}, pl.discardLoser)
	return o.v, o.started, hedges, o.failure, o.err
}

// discard is the hedged race's: a losing attempt's value goes to
// Policies.Discard.
func (pl *Pipeline[T]) discard(o outcome[T]) {
	if pl.p.Discard != nil && o.started {
		pl.p.Discard(o.v)
	}
}
