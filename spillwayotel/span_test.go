package spillwayotel_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayotel"
)

// standard builds fallback → retry → breaker over obs: a downstream that
// always fails is retried twice, trips the breaker on the second failure, is
// rejected on the third attempt, and the fallback serves.
func standard(obs spillway.Observer) *spillway.Pipeline[string] { return standardNamed(obs, "catalog") }

// standardNamed is the standard pipeline with every policy named name: one
// observer takes one breaker and one budget per name.
func standardNamed(obs spillway.Observer, name string) *spillway.Pipeline[string] {
	return spillway.MustNewPipeline(spillway.Policies[string]{
		Fallback: fallback.MustNew(fallback.Config{Name: name, Observer: obs},
			fallback.Value("static", `{"items":[]}`)),
		Retry: retry.MustNew(retry.Config{Name: name, Initial: time.Microsecond, Max: time.Microsecond,
			Jitter: retry.NoJitter, Observer: obs}),
		Guards: []spillway.Guard{breaker.MustNew(breaker.Config{Name: name, WindowSize: 2, MinCalls: 2,
			Clock: spillway.NewManualClock(0), Observer: obs})},
		Observer: obs,
		Name:     name,
	})
}

func failing(context.Context) (string, error) { return "", errDown }

func TestSpanEvents(t *testing.T) {
	h := newHarness(t)
	tp, sr := newTracer(t)
	ctx, span := tp.Tracer("test").Start(context.Background(), "GET /catalog")
	res := standard(h.obs).ExecuteResult(ctx, failing)
	span.End()
	if res.Err != nil || res.Fallback != "static" || res.Attempts != 2 {
		t.Fatalf("result %+v, want served by static after 2 attempts", res)
	}

	ended := sr.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans ended, want 1", len(ended))
	}
	type event struct {
		name  string
		attrs map[string]string
	}
	var got []event
	for _, e := range ended[0].Events() {
		got = append(got, event{e.Name, eventAttrs(e)})
	}
	want := []event{
		{spillwayotel.EventNameRetry, map[string]string{"spillway.policy": "retry", "spillway.name": "catalog",
			"spillway.attempt": "1", "spillway.delay": "1e-06", "spillway.reason": "upstream_error", "error.message": "connection refused"}},
		{spillwayotel.EventNameRetry, map[string]string{"spillway.policy": "retry", "spillway.name": "catalog",
			"spillway.attempt": "2", "spillway.delay": "1e-06", "spillway.reason": "upstream_error", "error.message": "connection refused"}},
		{spillwayotel.EventNameRejection, map[string]string{"spillway.policy": "breaker", "spillway.name": "catalog",
			"spillway.reason": "breaker_open"}},
		{spillwayotel.EventNameFallback, map[string]string{"spillway.policy": "fallback", "spillway.name": "catalog",
			"spillway.kind": "static", "spillway.reason": "breaker_open",
			"error.message": `spillway: breaker "catalog": circuit breaker is open (retry after 30s)`}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("span events:\n got %v\nwant %v", got, want)
	}

	// The same execution's metrics.
	ms := h.metrics()
	if n := counter(t, ms, "spillway.retries", kv("name", "catalog")); n != 2 {
		t.Errorf("retries = %d, want 2", n)
	}
	if n := counter(t, ms, "spillway.rejected", kv("name", "catalog", "reason", "breaker_open")); n != 1 {
		t.Errorf("rejected = %d, want 1", n)
	}
	if n := counter(t, ms, "spillway.fallback", kv("name", "catalog", "kind", "static")); n != 1 {
		t.Errorf("fallback = %d, want 1", n)
	}
}

func TestSpanEventOptions(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       []spillwayotel.Option
		wantEvents int
		wantMsg    bool
	}{
		{"default", nil, 4, true},
		{"WithoutErrorMessages", []spillwayotel.Option{spillwayotel.WithoutErrorMessages()}, 4, false},
		{"WithoutSpanEvents", []spillwayotel.Option{spillwayotel.WithoutSpanEvents()}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			tp, sr := newTracer(t)
			ctx, span := tp.Tracer("test").Start(context.Background(), "call")
			standard(h.obs).ExecuteResult(ctx, failing)
			span.End()
			events := sr.Ended()[0].Events()
			if len(events) != tc.wantEvents {
				t.Fatalf("%d events, want %d", len(events), tc.wantEvents)
			}
			msg := false
			for _, e := range events {
				if _, ok := eventAttrs(e)["error.message"]; ok {
					msg = true
				}
				if eventAttrs(e)["spillway.reason"] == "" {
					t.Errorf("%s has no spillway.reason", e.Name)
				}
			}
			if msg != tc.wantMsg {
				t.Errorf("error.message present = %v, want %v", msg, tc.wantMsg)
			}
		})
	}
}

// No span, or a span that does not record: nothing is added, and metrics are
// still recorded.
func TestNoRecordingSpan(t *testing.T) {
	h := newHarness(t)
	tp, sr := newTracer(t, sdktrace.WithSampler(sdktrace.NeverSample()))
	ctx, span := tp.Tracer("test").Start(context.Background(), "unsampled")
	if span.IsRecording() {
		t.Fatal("an unsampled span records")
	}
	standard(h.obs).ExecuteResult(ctx, failing)
	// Another name: one observer takes one breaker per name.
	standardNamed(h.obs, "search").ExecuteResult(context.Background(), failing)
	span.End()
	if n := len(sr.Ended()); n != 0 {
		t.Errorf("%d spans recorded, want 0", n)
	}
	m := h.metrics()
	if n := counter(t, m, "spillway.retries", kv("name", "catalog")) + counter(t, m, "spillway.retries", kv("name", "search")); n != 4 {
		t.Errorf("retries = %d, want 4", n)
	}
}

// The rejection reason falls back to the error's when a policy leaves Reason
// empty.
func TestRejectionReasonFromError(t *testing.T) {
	h := newHarness(t)
	tp, sr := newTracer(t)
	ctx, span := tp.Tracer("test").Start(context.Background(), "call")
	h.obs.Observe(spillway.Event{Kind: spillway.EventRejection, Context: ctx, Policy: "limiter", Name: "api",
		Err: &spillway.Error{Code: spillway.ReasonThrottled, Err: errors.New("throttled")}})
	span.End()
	if got := eventAttrs(sr.Ended()[0].Events()[0])["spillway.reason"]; got != "throttled" {
		t.Errorf("span reason %q, want throttled", got)
	}
	if n := counter(t, h.metrics(), "spillway.rejected", kv("name", "api", "reason", "throttled")); n != 1 {
		t.Errorf("rejected{throttled} = %d, want 1", n)
	}
}
