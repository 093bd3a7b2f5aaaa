package chaos_test

import (
	"context"
	"testing"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/chaos"
)

// BenchmarkInjectDisabled is the cost a disabled policy adds to an attempt:
// a call through the spillway.Injector interface and one atomic load
// (budget: <= 2 ns, 0 allocs).
func BenchmarkInjectDisabled(b *testing.B) {
	var in spillway.Injector[string] = chaos.Must(chaos.NewFault[string](chaos.Config{Rate: 1}, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, replaced, _ := in.Inject(ctx); replaced {
			b.Fatal("a disabled policy injected")
		}
	}
}

// BenchmarkInjectEnabledNotPicked is an enabled policy that rolls the dice
// (math/rand/v2) and lets the call through.
func BenchmarkInjectEnabledNotPicked(b *testing.B) {
	var in spillway.Injector[string] = chaos.Must(chaos.NewFault[string](chaos.Config{Enabled: true, Rate: 1e-9}, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		in.Inject(ctx)
	}
}

// BenchmarkInjectFault injects the default error (built once).
func BenchmarkInjectFault(b *testing.B) {
	var in spillway.Injector[string] = chaos.Must(chaos.NewFault[string](chaos.Config{Enabled: true, Rate: 1}, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		in.Inject(ctx)
	}
}

// BenchmarkPipelineChaos compares a breaker pipeline without chaos and the
// same pipeline with a disabled chaos policy.
func BenchmarkPipelineChaos(b *testing.B) {
	fn := func(context.Context) (string, error) { return "ok", nil }
	for _, bc := range []struct {
		name  string
		chaos []spillway.Injector[string]
	}{
		{"none", nil},
		{"off", []spillway.Injector[string]{chaos.Must(chaos.NewFault[string](chaos.Config{Rate: 1}, nil))}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pl := spillway.MustNewPipeline(spillway.Policies[string]{Breaker: breaker.MustNew(breaker.Config{}), Chaos: bc.chaos})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := pl.Execute(ctx, fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEngineAttempt is one attempt on a bare Engine (no guard, no
// timeout, no observer), without chaos and with a switched-off policy, whose
// switch the Engine reads itself (spillway.Switched): the closest measure of
// what a disabled policy adds to an attempt.
func BenchmarkEngineAttempt(b *testing.B) {
	fn := func(context.Context) (string, error) { return "ok", nil }
	ctx := context.Background()
	for _, bc := range []struct {
		name  string
		chaos []spillway.Injector[string]
	}{
		{"none", nil},
		{"off", []spillway.Injector[string]{chaos.Must(chaos.NewFault[string](chaos.Config{Rate: 1}, nil))}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			eng := spillway.NewEngine(spillway.EngineConfig[string]{Chaos: bc.chaos})
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, err := eng.Attempt(ctx, ctx, 1, fn, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
