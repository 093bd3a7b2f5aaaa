package spillway

import (
	"errors"
	"fmt"
	"reflect"
	"time"
)

// maxGuards bounds the guards of one pipeline so that their permits live in
// a fixed array on the stack instead of a slice on the heap.
const maxGuards = 8

// Policies lists the policies of a Pipeline by role, in the standard order
// from the outside in: Fallback, Total, Retry, Hedge, Breaker, Bulkhead (then
// Guards), Attempt, Chaos. Every policy is optional: leave a field unset
// (nil) for a policy you do not want. NewPipeline refuses a typed nil
// pointer (a *bulkhead.Bulkhead that was never built), which would
// otherwise panic on the first call.
type Policies[T any] struct {
	// Fallback serves a substitute when the execution fails. It runs on the
	// caller's context, not under the total timeout.
	Fallback Fallbacker[T]
	// Total bounds the whole execution, retries and backoff included.
	Total Timeouter
	// Retry re-runs failed attempts.
	Retry Retrier
	// Hedge sends hedges of a slow attempt (hedge.Policy) in the executions
	// made with ExecuteHedged: each attempt the retry policy makes is raced
	// against hedges sent after the policy's delay, and the first success
	// wins (see Hedge). Each hedge passes the guards below on its own, so an
	// open breaker or a full bulkhead stops hedges. For idempotent calls
	// only. The other methods (Execute, ...) never hedge: a hedged call
	// escapes to the heap, which their callers do not pay for.
	Hedge Hedger
	// Discard releases the value of an attempt that lost a hedged race (it
	// closes a response's body); it runs on the losing attempt's goroutine.
	// Default nil: losers' values are dropped.
	Discard func(v T)
	// Breaker is acquired first before every attempt (a *breaker.Breaker).
	Breaker Guard
	// Bulkhead is acquired after the breaker (a *bulkhead.Bulkhead), so that
	// an open breaker fails fast without queueing for a slot.
	Bulkhead Guard
	// Guards are further guards (a rate limiter), acquired in order after
	// Breaker and Bulkhead and released in reverse order. At most 8 guards in
	// all.
	Guards []Guard
	// Attempt bounds each attempt: the time in the downstream, not the wait
	// for a bulkhead slot. Below Total when the pipeline retries.
	Attempt Timeouter
	// Chaos injects faults into the attempts (chaos.Policy): run in order
	// inside each attempt, under Attempt, before the call, so that the
	// breaker, retry and fallback react to an injected error, latency or
	// substitute value as to a real one.
	Chaos []Injector[T]
	// Classify makes a returned value a failure (a response whose status
	// means "retry"): it is called with the value of every attempt that
	// returned no error and returns nil for a success, or the error the value
	// stands for, which the breaker counts, the retry policy retries and the
	// execution ends with once the retries are spent (the value is returned
	// with it). Errors are judged as without it: by the breaker's
	// Config.Classify and the retry policy's Retryable. Default nil: every
	// value is a success.
	Classify func(v T) error
	// Observer receives every event of the pipeline: one EventAttempt per
	// attempt (with its duration), and the events of its policies
	// (transitions, rejections, retries, timeouts, fallbacks, hedges), which
	// NewPipeline attaches it to (ObserverAttacher). The policies need no
	// Observer of their own; one that has this same Observer still reports
	// each event to it once. Attaching is for the policy's lifetime: a
	// policy shared by two pipelines reports its events to both pipelines'
	// Observers (they are its events, not a pipeline's), so build a
	// pipeline once, not per call. When Observer is a Registrar
	// (spillwayprom.Metrics, spillwayotel.Observer, Observers holding one),
	// NewPipeline also registers with it the gauges of the breaker, the
	// bulkhead, the guards (a rate limiter, a throttle), the hedging policy
	// and the retry policy's budget.
	Observer Observer
	// Clock times attempts for the Observer and AttemptInfo; SystemClock
	// when nil.
	Clock Clock
	// Name is reported in events.
	Name string
}

// Pipeline composes policies around calls that return a T, in the fixed
// order fallback → total timeout → retry → hedge → breaker → bulkhead →
// attempt timeout → chaos → call. Its attempts run on an Engine, the same one the
// HTTP and gRPC integrations use. It is built once and is safe for
// concurrent use; the policies in it may be shared with other pipelines. An
// execution that succeeds on its first attempt allocates nothing beyond
// what its timeouts' contexts need.
type Pipeline[T any] struct {
	p     Policies[T]
	eng   Engine[T]
	clock Clock
	// layers is a composition's (Compose); nil in the standard order.
	layers []layer[T]
	// discardLoser is the method value pl.discard, made once: a hedged
	// call that made it would allocate it.
	discardLoser func(outcome[T])
}

// NewPipeline returns the Pipeline that runs p's policies in the standard
// order. It returns an error, naming the field, for a policy that cannot
// work as placed: a typed nil pointer, more than 8 guards, a Breaker or
// Bulkhead that says it is the other (see Kinded), the same Timeout as both
// Total and Attempt or two timeouts of the same name (their errors could not
// be told apart), or an attempt timeout not below the total timeout of a
// pipeline that retries (no retry could ever start). It attaches
// p.Observer to the policies that report events and registers their gauges
// with it (see Policies.Observer).
func NewPipeline[T any](p Policies[T]) (*Pipeline[T], error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if err := instrument(p.Observer, p.policies()); err != nil {
		return nil, fmt.Errorf("spillway: pipeline %q: %w", p.Name, err)
	}
	pl := &Pipeline[T]{p: p, clock: ClockOrSystem(p.Clock), eng: NewEngine(EngineConfig[T]{Guards: p.guards(),
		Timeout: p.Attempt, Chaos: p.Chaos, Classify: valueClassifier(p.Classify), Observer: p.Observer, Clock: p.Clock, Policy: "pipeline", Name: p.Name})}
	pl.discardLoser = pl.discard
	return pl, nil
}

// valueClassifier is the engine's classifier for a Classify that judges
// values only: an error is a failure as it is (the guards judge it), a value
// is what c says. Nil for a nil c: the engine then classifies nothing.
func valueClassifier[T any](c func(T) error) func(T, error) (Outcome, error) {
	if c == nil {
		return nil
	}
	return func(v T, err error) (Outcome, error) {
		if err != nil {
			return Failure, err
		}
		if f := c(v); f != nil {
			return Failure, f
		}
		return Success, nil
	}
}

// policies lists p's policies, the unset ones as nil: those that report
// events get the pipeline's Observer attached, and a Registrar exports the
// gauges of those that have some.
func (p *Policies[T]) policies() []any {
	out := []any{p.Fallback, p.Total, p.Retry, p.Hedge, p.Breaker, p.Bulkhead, p.Attempt}
	for _, g := range p.Guards {
		out = append(out, g)
	}
	for _, c := range p.Chaos {
		out = append(out, c)
	}
	return out
}

// instrument gives obs a pipeline's policies: it registers their gauges
// when obs is a Registrar, then attaches obs to each policy that reports
// events (an ObserverAttacher). Nothing is attached when registering fails.
func instrument(obs Observer, policies []any) error {
	if obs == nil {
		return nil
	}
	if r, ok := obs.(Registrar); ok {
		if err := r.Register(policies...); err != nil {
			return fmt.Errorf("registering its policies' gauges: %w", err)
		}
	}
	for _, p := range policies {
		if a, ok := p.(ObserverAttacher); ok {
			a.AttachObserver(obs)
		}
	}
	return nil
}

// MustNewPipeline is NewPipeline for policies written in code: it panics on
// the error NewPipeline would return.
func MustNewPipeline[T any](p Policies[T]) *Pipeline[T] {
	pl, err := NewPipeline(p)
	if err != nil {
		panic(err)
	}
	return pl
}

// Kinded is implemented by policies that say which kind they are, in the
// words of Event.Policy ("breaker", "bulkhead", "timeout", ...).
// NewPipeline uses it to refuse a bulkhead given as the Breaker, or a
// breaker as the Bulkhead.
type Kinded interface {
	PolicyKind() string
}

// check returns the first reason p cannot work as placed.
func (p *Policies[T]) check() error {
	type field struct {
		name string
		v    any
	}
	fields := []field{{"Fallback", p.Fallback}, {"Total", p.Total}, {"Retry", p.Retry}, {"Hedge", p.Hedge}, {"Breaker", p.Breaker},
		{"Bulkhead", p.Bulkhead}, {"Attempt", p.Attempt}, {"Observer", p.Observer}, {"Clock", p.Clock}}
	for i, g := range p.Guards {
		fields = append(fields, field{fmt.Sprintf("Guards[%d]", i), g})
	}
	for i, c := range p.Chaos {
		fields = append(fields, field{fmt.Sprintf("Chaos[%d]", i), c})
	}
	for _, f := range fields {
		if typedNil(f.v) {
			return fmt.Errorf("spillway: Policies.%s is a nil %T: leave the field unset for no policy", f.name, f.v)
		}
	}
	if n := len(p.guards()); n > maxGuards {
		return fmt.Errorf("spillway: a pipeline takes at most %d guards, got %d", maxGuards, n)
	}
	if kindOf(p.Breaker) == "bulkhead" {
		return errors.New("spillway: Policies.Breaker is a bulkhead: swap Breaker and Bulkhead")
	}
	if kindOf(p.Bulkhead) == "breaker" {
		return errors.New("spillway: Policies.Bulkhead is a breaker: swap Breaker and Bulkhead")
	}
	return checkTimeouts(p.Total, p.Attempt, p.Retry != nil)
}

// guards returns p's guards in the order they are acquired, without the
// unset ones.
func (p *Policies[T]) guards() []Guard {
	gs := make([]Guard, 0, 2+len(p.Guards))
	for _, g := range append([]Guard{p.Breaker, p.Bulkhead}, p.Guards...) {
		if g != nil {
			gs = append(gs, g)
		}
	}
	return gs
}

// typedNil reports whether v is a non-nil interface holding a nil pointer
// (or map, slice, func, chan): a policy that would panic when called. It
// runs at construction only.
func typedNil(v any) bool {
	if v == nil {
		return false
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// samePointer reports whether a and b are the same pointer (comparing the
// interfaces themselves could panic on an incomparable dynamic type).
func samePointer(a, b any) bool {
	ra, rb := reflect.ValueOf(a), reflect.ValueOf(b)
	return ra.Kind() == reflect.Pointer && rb.Kind() == reflect.Pointer && ra.Pointer() == rb.Pointer()
}

func kindOf(v any) string {
	if k, ok := v.(Kinded); ok {
		return k.PolicyKind()
	}
	return ""
}

// limiter is implemented by timeouts that can tell their limit, such as
// timeout.Timeout.
type limiter interface{ Duration() time.Duration }

// checkTimeouts returns why total and attempt cannot work together: the same
// Timeout in both roles, two Timeouts of the same name, or (retrying) an
// attempt limit at or above the total limit.
func checkTimeouts(total, attempt Timeouter, retries bool) error {
	if total == nil || attempt == nil {
		return nil
	}
	if samePointer(total, attempt) {
		return errors.New("spillway: Policies.Total and Policies.Attempt are the same Timeout: build one of each")
	}
	tn, tok := total.(interface{ Name() string })
	an, aok := attempt.(interface{ Name() string })
	if tok && aok && tn.Name() == an.Name() {
		return fmt.Errorf("spillway: Policies.Total and Policies.Attempt are both named %q: give them different Names, or their errors cannot be told apart", tn.Name())
	}
	if err := attemptBelowTotal(total, attempt, retries); err != nil {
		return fmt.Errorf("spillway: %w", err)
	}
	return nil
}

// attemptBelowTotal returns an error when a pipeline that retries has an
// attempt limit at or above its total limit, for timeouts that tell their
// limits (Duration() time.Duration).
func attemptBelowTotal(total, attempt Timeouter, retries bool) error {
	a, aok := attempt.(limiter)
	t, tok := total.(limiter)
	if retries && aok && tok && a.Duration() >= t.Duration() {
		return fmt.Errorf("attempt timeout %s >= total timeout %s: a timed-out attempt leaves no time for a retry", a.Duration(), t.Duration())
	}
	return nil
}

// Warnings returns the settings of the pipeline that are valid but cannot
// work as meant, in the words of `spillway validate`. NewPipeline refuses
// them, but a timeout's SetDuration may bring one back: an attempt timeout
// at or above the total timeout of a pipeline that retries.
func (pl *Pipeline[T]) Warnings() []string {
	if err := attemptBelowTotal(pl.p.Total, pl.p.Attempt, pl.p.Retry != nil); err != nil {
		return []string{err.Error()}
	}
	return nil
}
