package spillway

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Composition lists policies to run in an order of their own, for the
// pipelines the standard order does not fit: a rate limiter outside the
// retry, a retry around a fallback, a timeout per group of attempts.
type Composition[T any] struct {
	// Layers are the policies, outermost first. Each is one of Fallbacker[T],
	// Timeouter, Retrier or Guard, and plays that role where it stands: a
	// Timeouter bounds everything inside it, a Retrier re-runs everything
	// inside it, a Guard is held while everything inside it runs, a
	// Fallbacker replaces the failure of everything inside it.
	Layers []any
	// Classify, Observer, Clock and Name are Policies' (the attempt events
	// are the call's, reported once per call): Compose attaches the Observer
	// to the layers that report events and registers their gauges with it
	// when it is a Registrar, as NewPipeline does.
	Classify func(v T) error
	Observer Observer
	Clock    Clock
	Name     string
}

// layer is one policy of a composition, in its role; exactly one field is set.
type layer[T any] struct {
	fallback Fallbacker[T]
	timeout  Timeouter
	retry    Retrier
	guard    Engine[T]
}

// Compose returns a Pipeline that runs c's layers in the order given. It is
// built on the same Engine as the standard pipeline, so guards are released
// exactly once, a panic included, the classifier and the caller's end are
// judged alike and one EventAttempt is reported per call. It returns an
// error for a layer that is nil, a typed nil pointer, of none of the four
// roles or of more than one, and for a typed nil Observer. Unlike the standard order, a composed
// execution allocates a little per call (its layers' closures).
func Compose[T any](c Composition[T]) (*Pipeline[T], error) {
	if len(c.Layers) == 0 {
		return nil, errors.New("spillway: a Composition needs at least one layer")
	}
	if typedNil(c.Observer) {
		return nil, fmt.Errorf("spillway: Composition.Observer is a nil %T: leave the field unset for no observer", c.Observer)
	}
	classify := valueClassifier(c.Classify)
	ls := make([]layer[T], len(c.Layers))
	for i, v := range c.Layers {
		if v == nil || typedNil(v) {
			return nil, fmt.Errorf("spillway: Composition.Layers[%d] is nil (%T)", i, v)
		}
		fb, isFallback := v.(Fallbacker[T])
		to, isTimeout := v.(Timeouter)
		r, isRetry := v.(Retrier)
		g, isGuard := v.(Guard)
		switch roles := btoi(isFallback) + btoi(isTimeout) + btoi(isRetry) + btoi(isGuard); {
		case roles == 0:
			return nil, fmt.Errorf("spillway: Composition.Layers[%d] (%T) is none of Fallbacker[%T], Timeouter, Retrier, Guard", i, v, *new(T))
		case roles > 1:
			return nil, fmt.Errorf("spillway: Composition.Layers[%d] (%T) plays more than one role", i, v)
		}
		ls[i] = layer[T]{fallback: fb, timeout: to, retry: r}
		if isGuard {
			ls[i].guard = NewEngine(EngineConfig[T]{Guards: []Guard{g}, Classify: classify})
		}
	}
	if err := instrument(c.Observer, c.Layers); err != nil {
		return nil, fmt.Errorf("spillway: composition %q: %w", c.Name, err)
	}
	return &Pipeline[T]{layers: ls, clock: ClockOrSystem(c.Clock), eng: NewEngine(EngineConfig[T]{Classify: classify,
		Observer: c.Observer, Clock: c.Clock, Policy: "pipeline", Name: c.Name})}, nil
}

// MustCompose is Compose for a composition written in code: it panics on
// the error Compose would return.
func MustCompose[T any](c Composition[T]) *Pipeline[T] {
	pl, err := Compose(c)
	if err != nil {
		panic(err)
	}
	return pl
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// composed is one execution of a composed pipeline.
type composed[T any] struct {
	fn    func(context.Context) (T, error)
	info  func(context.Context, AttemptInfo) (T, error)
	start int64
	res   *Result[T]
}

// compose runs a composed pipeline's execution into res.
func (pl *Pipeline[T]) compose(ctx context.Context, fn func(context.Context) (T, error), info func(context.Context, AttemptInfo) (T, error), res *Result[T]) {
	x := &composed[T]{fn: fn, info: info, res: res}
	if info != nil {
		x.start = pl.clock.Nanotime()
	}
	v, err := pl.layer(0, ctx, ctx, x)
	res.Value, res.Err = v, pl.outcome(ctx, v, err)
}

// outcome is the error an execution ends with: the failure as classified,
// or the call's own error when the classifier let it pass.
func (pl *Pipeline[T]) outcome(caller context.Context, v T, err error) error {
	if _, failure := pl.eng.Judge(caller, v, err); failure != nil {
		return failure
	}
	return err
}

// layer runs layers i and inward under ctx and returns the call's value and
// error as the layers left them; caller is the caller's own context.
func (pl *Pipeline[T]) layer(i int, caller, ctx context.Context, x *composed[T]) (T, error) {
	if i == len(pl.layers) {
		return pl.call(caller, ctx, x)
	}
	next := func(ctx context.Context) (T, error) { return pl.layer(i+1, caller, ctx, x) }
	switch l := &pl.layers[i]; {
	case l.timeout != nil:
		tctx, cancel := l.timeout.Start(ctx)
		defer cancel()
		v, err := next(tctx)
		return v, l.timeout.Finish(tctx, err)
	case l.retry != nil:
		return pl.retry(l.retry, caller, ctx, next)
	case l.fallback != nil:
		v, err := next(ctx)
		if err = pl.outcome(caller, v, err); err == nil {
			return v, nil
		}
		fv, served, ferr := l.fallback.Fallback(ctx, err)
		if served == "" {
			return v, ferr
		}
		x.res.Fallback, x.res.Replaced = served, err
		return fv, nil
	default:
		v, _, _, err := l.guard.Attempt(caller, ctx, 0, next, nil)
		return v, err
	}
}

// retry runs next under r, as Pipeline's retry loop does.
func (pl *Pipeline[T]) retry(r Retrier, caller, ctx context.Context, next func(context.Context) (T, error)) (v T, err error) {
	attempt := func(int) (bool, error) {
		var e error
		v, e = next(ctx)
		if _, failure := pl.eng.Judge(caller, v, e); failure != nil {
			return true, failure
		}
		return e == nil, e
	}
	s := r.Begin()
	again, err := attempt(1)
	if again && err != nil {
		_, err = Retry(ctx, r, &s, err, attempt, nil)
	}
	return v, err
}

// call makes one call of a composed execution on the engine, which reports
// its EventAttempt.
func (pl *Pipeline[T]) call(caller, ctx context.Context, x *composed[T]) (T, error) {
	n := x.res.Attempts + 1
	fn := x.fn
	if x.info != nil {
		fn = func(ctx context.Context) (T, error) {
			return x.info(ctx, AttemptInfo{Attempt: n, Elapsed: time.Duration(pl.clock.Nanotime() - x.start)})
		}
	}
	v, started, _, err := pl.eng.Attempt(caller, ctx, n, fn, nil)
	if started {
		x.res.Attempts++
	}
	return v, err
}
