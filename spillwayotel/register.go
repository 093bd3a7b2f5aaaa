package spillwayotel

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"

	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/internal/gauges"
	"github.com/spillway-dev/spillway/retry"
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

type bulkheadReg struct {
	b     *bulkhead.Bulkhead
	name  string
	attrs []metric.ObserveOption
}

type budgetReg struct {
	b     *retry.Budget
	name  string
	attrs []metric.ObserveOption
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
	name := b.Name()
	o.mu.Lock()
	defer o.mu.Unlock()
	dup, err := checkName("bulkhead", name, b, o.bulkheads, func(r bulkheadReg) (string, *bulkhead.Bulkhead) { return r.name, r.b })
	if err == nil && !dup {
		o.bulkheads = append(o.bulkheads, bulkheadReg{b: b, name: name, attrs: observeOpts(keyName.String(name))})
	}
	return err
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
	o.mu.Lock()
	defer o.mu.Unlock()
	dup, err := checkName("budget", name, b, o.budgets, func(r budgetReg) (string, *retry.Budget) { return r.name, r.b })
	if err == nil && !dup {
		o.budgets = append(o.budgets, budgetReg{b: b, name: name, attrs: observeOpts(keyName.String(name))})
	}
	return err
}

// Register adds the gauges of each policy that has some: a
// *breaker.Breaker, a *bulkhead.Bulkhead, and the budget of a *retry.Policy
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
		ob.ObserveInt64(o.inFlight, int64(r.b.InFlight()), r.attrs...)
		ob.ObserveInt64(o.limit, int64(r.b.Limit()), r.attrs...)
	}
	for _, r := range o.budgets {
		ob.ObserveFloat64(o.remaining, r.b.Remaining(), r.attrs...)
	}
	return nil
}
