package overload

import (
	"math/rand/v2"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
)

// Adaptive is spillway's adaptive bulkhead: ad (its Clock set to the run's)
// with MaxConcurrent 200, the upper bound failsafe-go's limiter has too.
func Adaptive(name string, ad bulkhead.Adaptive) Row {
	return Row{Name: name, New: func(clock spillway.Clock, _ *rand.Rand) Strategy {
		ad.Clock = clock
		return Guard(bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 200, Adaptive: ad}))
	}}
}
