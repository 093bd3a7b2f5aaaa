// Package gauges registers the policies that have gauges (breakers,
// bulkheads, retry budgets) with the metrics adapters that export them:
// spillwayprom and spillwayotel implement Registry and, through Register,
// the method Register(policies ...any) error that spillwayhttp and
// spillwaygrpc call on their Observer for every downstream they make.
//
// The method takes any so that the root package, which cannot name
// *breaker.Breaker, can declare the same interface and register a
// pipeline's policies with it.
package gauges

import (
	"errors"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
)

// Registry exports the gauges of individual policies. Registering the same
// policy twice under its name is not an error; another policy under a name
// already taken is.
type Registry interface {
	RegisterBreaker(*breaker.Breaker) error
	RegisterBulkhead(*bulkhead.Bulkhead) error
	RegisterBudget(name string, b *retry.Budget) error
}

// Registrar is an Observer's optional method: it exports the gauges of the
// policies it is given, ignoring those that have none.
type Registrar interface {
	Register(policies ...any) error
}

// Register registers with r each policy that has gauges: a *breaker.Breaker
// and a *bulkhead.Bulkhead under their Name, the budget of a *retry.Policy
// under the policy's name (none when the policy has no budget). A nil
// policy, and policies without gauges (timeouts, fallbacks), are skipped.
func Register(r Registry, policies ...any) error {
	var errs []error
	for _, p := range policies {
		// A typed nil is a Downstream's absent policy.
		var err error
		switch p := p.(type) {
		case *breaker.Breaker:
			if p != nil {
				err = r.RegisterBreaker(p)
			}
		case *bulkhead.Bulkhead:
			if p != nil {
				err = r.RegisterBulkhead(p)
			}
		case *retry.Policy:
			if p != nil {
				if c := p.Config(); c.Budget != nil {
					err = r.RegisterBudget(c.Name, c.Budget)
				}
			}
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RegisterWith registers policies with every Registrar among obs (obs itself
// or, for a spillway.Observers, its members, recursively).
func RegisterWith(obs spillway.Observer, policies ...any) error {
	switch o := obs.(type) {
	case Registrar:
		return o.Register(policies...)
	case spillway.Observers:
		var errs []error
		for _, m := range o {
			errs = append(errs, RegisterWith(m, policies...))
		}
		return errors.Join(errs...)
	}
	return nil
}
