package bench

import (
	"testing"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/chaos"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
)

// BenchmarkPipelineChaosOff is BenchmarkPipeline's pipeline without chaos
// and with a disabled chaos fault in its attempts: what chaos costs when it
// is off. failsafe-go (v0.9.8) has no chaos policy; its pipeline without
// one is the reference.
func BenchmarkPipelineChaosOff(b *testing.B) {
	b.Run("spillway", func(b *testing.B) {
		pl := standardPipeline(false)
		for b.Loop() {
			_, _ = pl.Execute(ctx, okValue)
		}
	})
	b.Run("spillway-chaos-off", func(b *testing.B) {
		fault := chaos.Must(chaos.NewFault[int](chaos.Config{Rate: 1}, nil))
		pl := spillway.MustNewPipeline(spillway.Policies[int]{
			Fallback: fallback.MustNew(fallback.Config{}, fallback.Value("static", 0)),
			Retry:    retry.MustNew(retry.Config{}),
			Breaker:  breaker.MustNew(breaker.Config{}),
			Bulkhead: bulkhead.MustNew(bulkhead.Config{}),
			Chaos:    []spillway.Injector[int]{fault},
		})
		for b.Loop() {
			_, _ = pl.Execute(ctx, okValue)
		}
	})
	b.Run("failsafe-go", func(b *testing.B) { benchFailsafePipeline(b, false) })
}
