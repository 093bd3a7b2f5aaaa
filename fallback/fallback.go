// Package fallback serves a substitute answer when a call fails: a value
// computed from the error, a static value, or the first that works of a
// chain (a replica, a stale cache entry, a default).
//
// A [Fallback] holds an ordered list of [Step]s. When a call fails, the
// steps whose When accepts the error are tried in order; the first one that
// succeeds serves, and its Name is returned so that the caller can say how
// the answer was degraded (the gateway's Spillway-Fallback header). A step
// that fails passes on to the next.
//
// A fallback never serves a caller that is gone: when the context passed to
// Fallback is done, or the error is the caller's own cancellation
// (spillway.ReasonOf(err) == spillway.ReasonCanceled), the error is returned
// unchanged and no step runs.
//
// When no step serves, the original error is returned: as it is when no step
// ran, or inside an [*ExhaustedError] when steps ran and failed. Either way
// errors.Is, errors.As and spillway.ReasonOf answer for the original failure.
//
// A step that needs the call's input (the key of the item whose cached copy
// to serve) is made with [Keyed] and receives the key that
// spillway.ExecuteKeyed was given.
//
// A Fallback is immutable once built and safe for concurrent use; serving
// the call's own success allocates nothing. Fallback implements
// spillway.Fallbacker, so it can be a spillway.Pipeline's fallback.
package fallback

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/spillway-dev/spillway"
)

// policyName is the Policy of this package's events.
const policyName = "fallback"

// ErrExhausted is matched (errors.Is) by the error Fallback returns when
// every step that applied failed. It does not match when no step applied.
var ErrExhausted = errors.New("every fallback failed")

// Step is one fallback of a chain.
type Step[T any] struct {
	// Name says which fallback served ("replica", "stale-cache", "static");
	// required and unique within a Fallback.
	Name string
	// Fn computes the substitute from the context and the error it
	// replaces. A non-nil error passes on to the next step. Required.
	Fn func(ctx context.Context, err error) (T, error)
	// When selects the errors this step applies to. Default nil: every error.
	When func(error) bool
}

// Func returns a step named name that computes its substitute with fn.
func Func[T any](name string, fn func(context.Context, error) (T, error)) Step[T] {
	return Step[T]{Name: name, Fn: fn}
}

// Value returns a step named name that always serves v.
func Value[T any](name string, v T) Step[T] {
	return Step[T]{Name: name, Fn: func(context.Context, error) (T, error) { return v, nil }}
}

// ErrNoKey is the error of a Keyed step that runs without a key of its
// type: the call was not made with spillway.ExecuteKeyed, or with a key of
// another type. Like any step's error, it passes on to the next step.
var ErrNoKey = errors.New("fallback: no call key of the step's type (use spillway.ExecuteKeyed)")

// Keyed returns a step named name that computes its substitute from the
// call's key, the one spillway.ExecuteKeyed was given (the item whose cached
// copy to serve), and the error it replaces. Without a key of type K it
// fails with ErrNoKey.
func Keyed[K, T any](name string, fn func(ctx context.Context, key K, err error) (T, error)) Step[T] {
	return Step[T]{Name: name, Fn: func(ctx context.Context, err error) (T, error) {
		k, ok := spillway.KeyOf[K](ctx)
		if !ok {
			var v T
			return v, ErrNoKey
		}
		return fn(ctx, k, err)
	}}
}

// OnReasons returns a When that accepts the errors whose spillway.ReasonOf
// is one of reasons: OnReasons(spillway.ReasonBreakerOpen) serves only while
// a breaker is open.
func OnReasons(reasons ...spillway.Reason) func(error) bool {
	reasons = slices.Clone(reasons)
	return func(err error) bool { return slices.Contains(reasons, spillway.ReasonOf(err)) }
}

// Config configures a Fallback beyond its steps.
type Config struct {
	// Name identifies the fallback in events. Default "".
	Name string
	// Observer receives an EventFallback (Fallback = the step's Name, Err =
	// the replaced error) each time a step serves. Default nil (no events).
	// A spillway.Pipeline's Observer receives them too, without this field
	// (Fallback.AttachObserver).
	Observer spillway.Observer
}

// Fallback tries its steps, in order, on a failed call's error. Build one
// with New; Do runs a call and falls back on its failure, Fallback falls
// back on an error already at hand.
type Fallback[T any] struct {
	name string
	// obs is Config.Observer and the observers attached since
	// (AttachObserver).
	obs   spillway.ObserverSet
	steps []Step[T]
}

var _ spillway.Fallbacker[int] = (*Fallback[int])(nil)

// New returns a Fallback over steps configured by cfg, or Validate's error
// if the steps do not make a valid chain.
func New[T any](cfg Config, steps ...Step[T]) (*Fallback[T], error) {
	if err := Validate(steps...); err != nil {
		return nil, err
	}
	f := &Fallback[T]{name: cfg.Name, steps: slices.Clone(steps)}
	f.obs.SetOwn(cfg.Observer)
	return f, nil
}

// AttachObserver makes the fallback report the steps that serve to o too,
// besides Config.Observer, for the rest of its life
// (spillway.ObserverAttacher: a pipeline attaches its Observer); o gets
// each event once even when it is also Config.Observer.
func (f *Fallback[T]) AttachObserver(o spillway.Observer) { f.obs.Attach(o) }

// MustNew is New for steps written in code, where a bad one is a
// programming error: it panics on the error New would return.
func MustNew[T any](cfg Config, steps ...Step[T]) *Fallback[T] {
	f, err := New(cfg, steps...)
	if err != nil {
		panic(err)
	}
	return f
}

// Validate returns an error, naming the step and the field, if steps do not
// make a valid chain: there must be at least one step, and every step needs
// a Name, unique within the chain, and an Fn.
func Validate[T any](steps ...Step[T]) error {
	if len(steps) == 0 {
		return errors.New("fallback: at least one Step is required")
	}
	for i, s := range steps {
		switch {
		case s.Name == "":
			return fmt.Errorf("fallback: step %d: Name must not be empty", i)
		case s.Fn == nil:
			return fmt.Errorf("fallback: step %d (%q): Fn must not be nil", i, s.Name)
		}
		if j := slices.IndexFunc(steps[:i], func(p Step[T]) bool { return p.Name == s.Name }); j >= 0 {
			return fmt.Errorf("fallback: step %d: Name %q is already step %d's", i, s.Name, j)
		}
	}
	return nil
}

// Fallback replaces err, the error a call failed with, by the first step
// that applies and succeeds. It returns the substitute and the step's Name,
// or served == "" and the error the call ends with: err unchanged when no
// step ran (the caller is gone, no When accepted err, or err is nil), or an
// *ExhaustedError wrapping err when every step that ran failed.
func (f *Fallback[T]) Fallback(ctx context.Context, err error) (v T, served string, ferr error) {
	if err == nil || ctx.Err() != nil || isCancellation(err) {
		return v, "", err
	}
	var failed []StepError
	for _, s := range f.steps {
		if s.When != nil && !s.When(err) {
			continue
		}
		sv, serr := s.Fn(ctx, err)
		if serr == nil {
			if o := f.obs.Load(); o != nil {
				o.Observe(spillway.Event{Kind: spillway.EventFallback, Context: ctx, Policy: policyName, Name: f.name,
					Fallback: s.Name, Err: err})
			}
			return sv, s.Name, nil
		}
		failed = append(failed, StepError{Step: s.Name, Err: serr})
		if ctx.Err() != nil {
			// The caller left while this step ran: nobody needs the next.
			break
		}
	}
	if failed == nil {
		return v, "", err
	}
	return v, "", &ExhaustedError{Err: err, Failed: failed}
}

// isCancellation reports whether err is a caller's cancellation. errors.Is
// comes first because spillway.ReasonOf allocates, and most failures are not
// cancellations.
func isCancellation(err error) bool {
	return errors.Is(err, context.Canceled) && spillway.ReasonOf(err) == spillway.ReasonCanceled
}

// Do calls fn and, if it fails, falls back (see Fallback.Fallback). served
// is "" when fn's own result is returned.
func Do[T any](ctx context.Context, f *Fallback[T], fn func(context.Context) (T, error)) (v T, served string, err error) {
	v, err = fn(ctx)
	if err == nil {
		return v, "", nil
	}
	return f.Fallback(ctx, err)
}

// StepError is the failure of one fallback step.
type StepError struct {
	// Step is the step's Name.
	Step string
	// Err is what the step's Fn returned.
	Err error
}

// ExhaustedError is the error of a call whose fallback steps all failed. It
// stands for the original failure: Unwrap returns only Err, so errors.Is,
// errors.As, spillway.ReasonOf and spillway.RetryAfterOf see the original
// error and never a step's. The steps' errors are in Failed, for logs.
// errors.Is(err, ErrExhausted) is true.
type ExhaustedError struct {
	// Err is the error the call failed with.
	Err error
	// Failed lists the steps that ran, in order, with their errors.
	Failed []StepError
}

// Error returns the original error's message followed by the steps' failures.
func (e *ExhaustedError) Error() string {
	b := []byte(e.Err.Error())
	b = append(b, " (fallback failed: "...)
	for i, f := range e.Failed {
		if i > 0 {
			b = append(b, "; "...)
		}
		b = strconv.AppendQuote(b, f.Step)
		b = append(b, ": "...)
		b = append(b, f.Err.Error()...)
	}
	return string(append(b, ')'))
}

// Unwrap returns the original error.
func (e *ExhaustedError) Unwrap() error { return e.Err }

// Is reports whether target is ErrExhausted.
func (e *ExhaustedError) Is(target error) bool { return target == ErrExhausted }
