package spillwayotel

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"

	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
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
// no name, or a breaker of that name is already registered.
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
	if err := checkName("breaker", name, o.breakers, func(r breakerReg) string { return r.name }); err != nil {
		return err
	}
	o.breakers = append(o.breakers, r)
	return nil
}

// RegisterBulkhead adds b, under name, to the bulkheads whose calls in flight
// and limit the gauges spillway.bulkhead.in_flight and spillway.bulkhead.limit
// report. It returns an error if b is nil, name is empty, or a bulkhead of that
// name is already registered.
func (o *Observer) RegisterBulkhead(name string, b *bulkhead.Bulkhead) error {
	if b == nil {
		return errors.New("spillwayotel: RegisterBulkhead: nil bulkhead")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := checkName("bulkhead", name, o.bulkheads, func(r bulkheadReg) string { return r.name }); err != nil {
		return err
	}
	o.bulkheads = append(o.bulkheads, bulkheadReg{b: b, name: name, attrs: observeOpts(keyName.String(name))})
	return nil
}

// RegisterBudget adds b, under name, to the retry budgets whose allowance the
// gauge spillway.retry.budget.remaining reports. It returns an error if b is
// nil, name is empty, or a budget of that name is already registered.
func (o *Observer) RegisterBudget(name string, b *retry.Budget) error {
	if b == nil {
		return errors.New("spillwayotel: RegisterBudget: nil budget")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := checkName("budget", name, o.budgets, func(r budgetReg) string { return r.name }); err != nil {
		return err
	}
	o.budgets = append(o.budgets, budgetReg{b: b, name: name, attrs: observeOpts(keyName.String(name))})
	return nil
}

// checkName returns an error if name is empty or already among regs.
func checkName[R any](kind, name string, regs []R, nameOf func(R) string) error {
	if name == "" {
		return fmt.Errorf("spillwayotel: a %s needs a name to be registered", kind)
	}
	for _, r := range regs {
		if nameOf(r) == name {
			return fmt.Errorf("spillwayotel: a %s named %q is already registered", kind, name)
		}
	}
	return nil
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
