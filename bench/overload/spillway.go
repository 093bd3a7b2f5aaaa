package overload

import (
	"math/rand/v2"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/throttle"
)

// Adaptive is spillway's adaptive bulkhead: ad (its Clock set to the run's)
// with MaxConcurrent 200, the upper bound failsafe-go's limiter has too.
func Adaptive(name string, ad bulkhead.Adaptive) Row {
	return Row{Name: name, New: func(clock spillway.Clock, _ *rand.Rand) Strategy {
		ad.Clock = clock
		return Guard(bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 200, Adaptive: ad}))
	}}
}

// Throttler is spillway's client-side throttler with K and window, its
// other fields at their defaults, on the run's clock. It draws from rng
// when the run gives one (the simulation); the real run's calls are
// concurrent and it then uses its default source.
func Throttler(k float64, window time.Duration) Row {
	return Row{Name: "spillway throttle", New: func(clock spillway.Clock, rng *rand.Rand) Strategy {
		cfg := throttle.Config{K: k, Window: window, Clock: clock}
		if rng != nil {
			cfg.Rand = rng.Float64
		}
		return Guard(throttle.MustNew(cfg))
	}}
}
