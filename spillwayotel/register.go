package spillwayotel

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"

	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/internal/gauges"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/throttle"
)

// states are the breaker states spillway.circuit.state has a series for.
var states = [...]breaker.State{breaker.Closed, breaker.Open, breaker.HalfOpen,
	breaker.ForcedOpen, breaker.Disabled, breaker.MetricsOnly}

type breakerReg struct {
	b      *breaker.Breaker
	name   string
	attrs  []metric.ObserveOption
	states [len(states)][]metric.ObserveOption
}

// reg is a registered policy with a gauge per value, under its name.
type reg[P comparable] struct {
	p     P
	name  string
	attrs []metric.ObserveOption
}

func (r reg[P]) named() (string, P) { return r.name, r.p }

// addReg adds p to regs under name unless it is there already, with the
// error of checkName.
func addReg[P comparable](o *Observer, kind, name string, p P, regs *[]reg[P]) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	dup, err := checkName(kind, name, p, *regs, reg[P].named)
	if err == nil && !dup {
		*regs = append(*regs, reg[P]{p: p, name: name, attrs: observeOpts(keyName.String(name))})
	}
	return err
}

// RegisterBreaker adds b, under its Name, to the breakers whose state and
// failure rate the gauges spillway.circuit.state and
// spillway.circuit.failure_rate report. It returns an error if b is nil, has
// no name, or another breaker of that name is registered; registering b
// again is not an error.
func (o *Observer) RegisterBreaker(b *breaker.Breaker) error {
	if b == nil {
		return errors.New("spillwayotel: RegisterBreaker: nil breaker")
	}
	name := b.Name()
	r := breakerReg{b: b, name: name, attrs: observeOpts(keyName.String(name))}
	for i, s := range states {
		r.states[i] = observeOpts(keyName.String(name), keyState.String(s.String()))
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	dup, err := checkName("breaker", name, b, o.breakers, func(r breakerReg) (string, *breaker.Breaker) { return r.name, r.b })
	if err == nil && !dup {
		o.breakers = append(o.breakers, r)
	}
	return err
}

// RegisterBulkhead adds b, under its Name, to the bulkheads whose calls in
// flight and limit the gauges spillway.bulkhead.in_flight and
// spillway.bulkhead.limit report. It returns an error if b is nil, has no
// name, or another bulkhead of that name is registered; registering b again
// is not an error.
func (o *Observer) RegisterBulkhead(b *bulkhead.Bulkhead) error {
	if b == nil {
		return errors.New("spillwayotel: RegisterBulkhead: nil bulkhead")
	}
	return addReg(o, "bulkhead", b.Name(), b, &o.bulkheads)
}

// RegisterBudget adds b, under name, to the retry budgets whose allowance the
// gauge spillway.retry.budget.remaining reports (a Budget has no name of its
// own: give the retry policy's). It returns an error if b is nil, name is
// empty, or another budget of that name is registered; registering b again
// under name is not an error.
func (o *Observer) RegisterBudget(name string, b *retry.Budget) error {
	if b == nil {
		return errors.New("spillwayotel: RegisterBudget: nil budget")
	}
	return addReg(o, "budget", name, b, &o.budgets)
}

// RegisterRateLimiter adds l, under its Name, to the rate limiters whose
// tokens the gauge spillway.rate_limit.tokens reports. It returns an error
// if l is nil, has no name, or another rate limiter of that name is
// registered; registering l again is not an error.
func (o *Observer) RegisterRateLimiter(l *ratelimit.Limiter) error {
	if l == nil {
		return errors.New("spillwayotel: RegisterRateLimiter: nil rate limiter")
	}
	return addReg(o, "rate limiter", l.Name(), l, &o.limiters)
}

// RegisterThrottle adds t, under its Name, to the throttles whose rejection
// probability and window the gauges spillway.throttle.rejection_probability,
// spillway.throttle.window.requests and spillway.throttle.window.accepts
// report. It returns an error if t is nil, has no name, or another throttle
// of that name is registered; registering t again is not an error.
func (o *Observer) RegisterThrottle(t *throttle.Throttler) error {
	if t == nil {
		return errors.New("spillwayotel: RegisterThrottle: nil throttle")
	}
	return addReg(o, "throttle", t.Name(), t, &o.throttles)
}

// RegisterHedge adds p, under its Name, to the hedging policies whose
// current delay the gauge spillway.hedge.delay reports (none while p has no
// delay yet; its hedges are counted from its events). It returns an error
// if p is nil, has no name, or another hedging policy of that name is
// registered; registering p again is not an error.
func (o *Observer) RegisterHedge(p *hedge.Policy) error {
	if p == nil {
		return errors.New("spillwayotel: RegisterHedge: nil hedging policy")
	}
	return addReg(o, "hedging policy", p.Name(), p, &o.hedgers)
}

// Register adds the gauges of each policy that has some: a
// *breaker.Breaker, a *bulkhead.Bulkhead, a *ratelimit.Limiter, a
// *throttle.Throttler, a *hedge.Policy, and the budget of a *retry.Policy
// under the policy's name. It skips nil policies and the others (timeouts,
// fallbacks). spillwayhttp and spillwaygrpc call it for every downstream
// they make when the Observer is their Config.Observer. The error joins
// those of the Register* methods.
func (o *Observer) Register(policies ...any) error { return gauges.Register(o, policies...) }

// checkName returns an error if name is empty or another policy than p has
// it among regs, and reports whether p itself is registered under name.
func checkName[R any, P comparable](kind, name string, p P, regs []R, of func(R) (string, P)) (dup bool, err error) {
	if name == "" {
		return false, fmt.Errorf("spillwayotel: a %s needs a name to be registered", kind)
	}
	for _, r := range regs {
		if n, q := of(r); n == name {
			if q != p {
				return false, fmt.Errorf("spillwayotel: another %s named %q is already registered", kind, name)
			}
			return true, nil
		}
	}
	return false, nil
}

// collect is the gauges' callback: it reads every registered policy.
func (o *Observer) collect(_ context.Context, ob metric.Observer) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range o.breakers {
		r := &o.breakers[i]
		snap := r.b.Snapshot()
		for j, s := range states {
			var v int64
			if s == snap.State {
				v = 1
			}
			ob.ObserveInt64(o.state, v, r.states[j]...)
		}
		ob.ObserveFloat64(o.failureRate, snap.FailureRate, r.attrs...)
	}
	for _, r := range o.bulkheads {
		// Limit is read now: an adaptive bulkhead's limit moves.
		ob.ObserveInt64(o.inFlight, int64(r.p.InFlight()), r.attrs...)
		ob.ObserveInt64(o.limit, int64(r.p.Limit()), r.attrs...)
	}
	for _, r := range o.budgets {
		ob.ObserveFloat64(o.remaining, r.p.Remaining(), r.attrs...)
	}
	for _, r := range o.limiters {
		ob.ObserveFloat64(o.tokens, r.p.Tokens(), r.attrs...)
	}
	for _, r := range o.throttles {
		reqs, accs := r.p.Counts()
		ob.ObserveFloat64(o.rejectionProb, r.p.RejectionProbability(), r.attrs...)
		ob.ObserveInt64(o.windowRequests, reqs, r.attrs...)
		ob.ObserveInt64(o.windowAccepts, accs, r.attrs...)
	}
	for _, r := range o.hedgers {
		if d, ok := r.p.Delay(); ok {
			ob.ObserveFloat64(o.hedgeDelay, d.Seconds(), r.attrs...)
		}
	}
	return nil
}
