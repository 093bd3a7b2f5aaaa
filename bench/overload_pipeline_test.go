package bench

import (
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/adaptivethrottler"
	fsbreaker "github.com/failsafe-go/failsafe-go/circuitbreaker"
	fsfallback "github.com/failsafe-go/failsafe-go/fallback"
	"github.com/failsafe-go/failsafe-go/hedgepolicy"
	fsratelimiter "github.com/failsafe-go/failsafe-go/ratelimiter"
	fsretry "github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/throttle"
)

// The standard pipeline with issue 16's policies added one at a time, on
// the allowed path: every call admitted, the first attempt succeeds, no
// hedge fires. Each step is measured next to failsafe-go's composition of
// the same policies (adaptivelimiter for the adaptive bulkhead,
// adaptivethrottler, a bursty ratelimiter, hedgepolicy), outermost first
// in the same order. Limits are set so that nothing is ever refused.
var overloadSteps = []string{"standard", "adaptive", "adaptive+throttle", "adaptive+throttle+ratelimit", "all+hedge"}

// hedgeStep is the step of overloadSteps that adds hedging.
const hedgeStep = 4

// overloadPipeline is Spillway's pipeline at step (an index of
// overloadSteps): the standard pipeline of standardPipeline, then its
// bulkhead made adaptive (Gradient2), then a throttler and a rate limiter
// as further guards, then hedging.
func overloadPipeline(step int) *spillway.Pipeline[int] {
	p := spillway.Policies[int]{
		Fallback: fallback.MustNew(fallback.Config{}, fallback.Value("static", 0)),
		Retry:    retry.MustNew(retry.Config{}),
		Breaker:  breaker.MustNew(breaker.Config{}),
		Bulkhead: bulkhead.MustNew(bulkhead.Config{}),
	}
	if step >= 1 {
		p.Bulkhead = bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1 << 20,
			Adaptive: bulkhead.Adaptive{Algorithm: bulkhead.Gradient2, InitialLimit: 1 << 20}})
	}
	if step >= 2 {
		p.Guards = append(p.Guards, throttle.MustNew(throttle.Config{}))
	}
	if step >= 3 {
		p.Guards = append(p.Guards, ratelimit.MustNew(ratelimit.Config{Limit: benchRate, Per: time.Second, Burst: benchRate}))
	}
	if step >= hedgeStep {
		p.Hedge = hedge.MustNew(hedge.Config{Delay: time.Second})
	}
	return spillway.MustNewPipeline(p)
}

// failsafeOverloadPipeline is failsafe-go's composition at step, as
// failsafePipeline's standard one grows.
func failsafeOverloadPipeline(step int) failsafe.Executor[any] {
	fb := fsfallback.NewWithResult[any]("fallback")
	rp := fsretry.NewBuilder[any]().WithMaxAttempts(3).WithBackoff(100*time.Millisecond, 5*time.Second).Build()
	cb := fsbreaker.NewBuilder[any]().WithFailureThresholdRatio(10, 20).WithDelay(30 * time.Second).Build()
	if step == 0 {
		return failsafePipeline(false)
	}
	outer := []failsafe.Policy[any]{fb, rp}
	if step >= hedgeStep {
		outer = append(outer, hedgepolicy.NewWithDelay[any](time.Second))
	}
	guards := []failsafe.Policy[any]{cb, adaptivelimiter.NewBuilder[any]().WithLimits(1, 1<<20, 1<<20).Build()}
	if step >= 2 {
		guards = append(guards, adaptivethrottler.NewWithDefaults[any]())
	}
	if step >= 3 {
		guards = append(guards, fsratelimiter.NewBursty[any](benchRate, time.Second))
	}
	return failsafe.With(append(outer, guards...)...)
}

func BenchmarkOverloadPipeline(b *testing.B) {
	for i, name := range overloadSteps {
		b.Run(name+"/spillway", func(b *testing.B) {
			pl := overloadPipeline(i)
			// Only ExecuteHedged hedges (a hedged call escapes to the heap).
			execute := pl.ExecuteResult
			if i >= hedgeStep {
				execute = pl.ExecuteHedged
			}
			b.ReportAllocs()
			for b.Loop() {
				if r := execute(ctx, okValue); r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		})
		b.Run(name+"/failsafe-go", func(b *testing.B) {
			ex := failsafeOverloadPipeline(i).WithContext(ctx)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ex.Get(okAny); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
