package spillwayotel_test

import (
	"context"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/internal/observetest"
	"github.com/spillway-dev/spillway/spillwayotel"
)

// A pipeline whose Observer is the OTel Observer exports the overload
// policies (rate limiter, throttle, adaptive bulkhead, hedging policy) with
// no Register call, and their refusals count as throttled rejections.
func TestOverloadMetrics(t *testing.T) {
	h := newHarness(t)
	tp, sr := newTracer(t)
	ctx, span := tp.Tracer("test").Start(context.Background(), "call")
	o := observetest.NewOverload(t, h.obs)
	o.Run(t)
	// The hedge's span events need the call's span: one more hedged call
	// under it, reported by the policy directly.
	o.HP.TryHedge(ctx, 1)
	o.HP.Record(ctx, o.HP.Begin(), 1)
	span.End()

	name := kv("name", "catalog")
	ms := h.metrics()
	for _, c := range []struct {
		metric string
		want   float64
	}{
		{"spillway.rate_limit.tokens", 0},
		{"spillway.throttle.rejection_probability", 0},
		{"spillway.throttle.window.requests", 7},
		{"spillway.throttle.window.accepts", 5},
		{"spillway.bulkhead.limit", 9},
		{"spillway.bulkhead.in_flight", 0},
		{"spillway.hedge.delay", 0.001},
	} {
		if v, ok := gauge(t, ms, c.metric, name); !ok || v != c.want {
			t.Errorf("%s = %v (present %v), want %v", c.metric, v, ok, c.want)
		}
	}
	if got := counter(t, ms, "spillway.rejected", kv("name", "catalog", "reason", "throttled")); got != 2 {
		t.Errorf("rejected{throttled} = %d, want 2", got)
	}
	for outcome, want := range map[string]int64{"sent": 2, "won": 2} {
		if got := counter(t, ms, "spillway.hedges", kv("name", "catalog", "outcome", outcome)); got != want {
			t.Errorf("hedges{%s} = %d, want %d", outcome, got, want)
		}
	}
	if u := ms["spillway.hedge.delay"].Unit; u != "s" {
		t.Errorf("hedge delay unit %q, want s", u)
	}

	spans := sr.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	got := map[string]map[string]string{}
	for _, e := range spans[0].Events() {
		got[e.Name] = eventAttrs(e)
	}
	sent, won := got[spillwayotel.EventNameHedge], got[spillwayotel.EventNameHedgeWon]
	if sent["spillway.policy"] != "hedge" || sent["spillway.name"] != "catalog" || sent["spillway.attempt"] != "1" ||
		sent["spillway.delay"] != "0.001" {
		t.Errorf("hedge event %v", sent)
	}
	if won["spillway.attempt"] != "1" || won["spillway.duration"] == "" {
		t.Errorf("hedge_won event %v", won)
	}
}

// A hedging policy with no delay yet reports no delay point; the adaptive
// limit is read at collection time.
func TestOverloadGaugesAtCollection(t *testing.T) {
	h := newHarness(t)
	if err := h.obs.Register(hedge.MustNew(hedge.Config{Name: "lazy"})); err != nil {
		t.Fatal(err)
	}
	o := observetest.NewOverload(t, h.obs)
	if v, _ := gauge(t, h.metrics(), "spillway.bulkhead.limit", kv("name", "catalog")); v != 10 {
		t.Errorf("limit %v, want 10", v)
	}
	_, _ = o.PL.Execute(context.Background(), func(context.Context) (string, error) {
		o.Clock.Advance(100 * time.Millisecond)
		return "", context.DeadlineExceeded
	})
	ms := h.metrics()
	if v, _ := gauge(t, ms, "spillway.bulkhead.limit", kv("name", "catalog")); v != 9 {
		t.Errorf("limit %v after a drop, want 9", v)
	}
	if _, ok := gauge(t, ms, "spillway.hedge.delay", kv("name", "lazy")); ok {
		t.Error("a delay point for a policy with no delay")
	}
	if v, _ := gauge(t, ms, "spillway.throttle.rejection_probability", kv("name", "catalog")); v != 0.5 {
		t.Errorf("rejection probability %v, want 0.5", v)
	}
}
