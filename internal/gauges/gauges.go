// Package gauges registers the policies that have gauges (breakers,
// bulkheads, retry budgets, rate limiters, throttles, hedging policies) with
// the metrics adapters that export them: spillwayprom and spillwayotel
// implement Registry and, through Register, spillway.Registrar, which
// spillwayhttp and spillwaygrpc call on their Observer for every downstream
// they make and NewPipeline for a pipeline's policies. Registrar's method
// takes any because the root package cannot name *breaker.Breaker.
package gauges

import (
	"errors"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/throttle"
)

// Registry exports the gauges of individual policies. Registering the same
// policy twice under its name is not an error; another policy under a name
// already taken is.
type Registry interface {
	RegisterBreaker(*breaker.Breaker) error
	RegisterBulkhead(*bulkhead.Bulkhead) error
	RegisterBudget(name string, b *retry.Budget) error
	RegisterRateLimiter(*ratelimit.Limiter) error
	RegisterThrottle(*throttle.Throttler) error
	RegisterHedge(*hedge.Policy) error
}

// Register registers with r each policy that has gauges: a
// *breaker.Breaker, a *bulkhead.Bulkhead (adaptive or not), a
// *ratelimit.Limiter, a *throttle.Throttler and a *hedge.Policy under their
// Name, the budget of a *retry.Policy under the policy's name (none when the
// policy has no budget). A nil policy, and policies without gauges
// (timeouts, fallbacks), are skipped.
func Register(r Registry, policies ...any) error {
	var errs []error
	for _, p := range policies {
		errs = append(errs, register(r, p))
	}
	return errors.Join(errs...)
}

// register registers one policy; a typed nil is a Downstream's absent
// policy.
func register(r Registry, p any) error {
	switch p := p.(type) {
	case *breaker.Breaker:
		if p != nil {
			return r.RegisterBreaker(p)
		}
	case *bulkhead.Bulkhead:
		if p != nil {
			return r.RegisterBulkhead(p)
		}
	case *retry.Policy:
		if p != nil {
			if c := p.Config(); c.Budget != nil {
				return r.RegisterBudget(c.Name, c.Budget)
			}
		}
	case *ratelimit.Limiter:
		if p != nil {
			return r.RegisterRateLimiter(p)
		}
	case *throttle.Throttler:
		if p != nil {
			return r.RegisterThrottle(p)
		}
	case *hedge.Policy:
		if p != nil {
			return r.RegisterHedge(p)
		}
	}
	return nil
}

// RegisterWith registers policies with obs when it is a spillway.Registrar
// (a spillway.Observers passes them on to its members).
func RegisterWith(obs spillway.Observer, policies ...any) error {
	if r, ok := obs.(spillway.Registrar); ok {
		return r.Register(policies...)
	}
	return nil
}
