package spillway_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/ratelimit"
)

// TestAGuardsRefusalDoesNotShrinkAnAdaptiveLimit: a rate limiter placed
// after an adaptive bulkhead (Policies.Guards come after Bulkhead) refuses
// calls the downstream never sees; the engine releases the bulkhead's
// permit with that refusal, which must not count as a drop.
func TestAGuardsRefusalDoesNotShrinkAnAdaptiveLimit(t *testing.T) {
	clock := spillway.NewManualClock(0)
	b := bulkhead.MustNew(bulkhead.Config{Name: "b", MaxConcurrent: 50, Adaptive: bulkhead.Adaptive{
		Algorithm: bulkhead.AIMD, InitialLimit: 10, Clock: clock}})
	rl := ratelimit.MustNew(ratelimit.Config{Name: "rl", Limit: 1, Per: time.Hour, Clock: clock})
	p := spillway.MustNewPipeline(spillway.Policies[int]{Bulkhead: b, Guards: []spillway.Guard{rl}, Clock: clock})
	ctx := context.Background()
	if _, err := p.Execute(ctx, func(context.Context) (int, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	for range 200 {
		clock.Advance(10 * time.Millisecond)
		_, err := p.Execute(ctx, func(context.Context) (int, error) { return 1, nil })
		if !errors.Is(err, ratelimit.ErrLimited) {
			t.Fatalf("error %v, want the rate limiter's refusal", err)
		}
	}
	if got := b.Limit(); got < 10 {
		t.Fatalf("adaptive limit %d after 200 rate-limited calls, want at least the initial 10", got)
	}
}
