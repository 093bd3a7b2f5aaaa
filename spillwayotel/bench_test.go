package spillwayotel_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/spillwayotel"
)

// benchObserver returns an Observer on a real SDK MeterProvider.
func benchObserver(b *testing.B, opts ...spillwayotel.Option) (*spillwayotel.Observer, metric.MeterProvider) {
	b.Helper()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	obs, err := spillwayotel.New(mp, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = obs.Close() })
	return obs, mp
}

func BenchmarkObserve(b *testing.B) {
	rejection := &spillway.Error{Code: spillway.ReasonBreakerOpen, Policy: "breaker", Name: "catalog", Err: breaker.ErrOpen}
	events := []struct {
		name string
		e    spillway.Event
	}{
		{"attempt", spillway.Event{Kind: spillway.EventAttempt, Policy: "pipeline", Name: "catalog", Attempt: 1, Duration: 3 * time.Millisecond}},
		{"attempt-failure", spillway.Event{Kind: spillway.EventAttempt, Policy: "pipeline", Name: "catalog", Attempt: 1, Duration: 3 * time.Millisecond, Err: errDown}},
		{"retry", spillway.Event{Kind: spillway.EventRetry, Policy: "retry", Name: "catalog", Attempt: 1, Delay: time.Millisecond, Err: errDown}},
		{"rejection", spillway.Event{Kind: spillway.EventRejection, Policy: "breaker", Name: "catalog", Reason: spillway.ReasonBreakerOpen, Err: rejection}},
		{"transition", spillway.Event{Kind: spillway.EventTransition, Policy: "breaker", Name: "catalog", From: "closed", To: "open"}},
		{"fallback", spillway.Event{Kind: spillway.EventFallback, Policy: "fallback", Name: "catalog", Fallback: "static", Err: rejection}},
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	unsampled, span := tp.Tracer("bench").Start(context.Background(), "unsampled")
	defer span.End()
	for _, ev := range events {
		for _, c := range []struct {
			name string
			ctx  context.Context
		}{{"no-span", context.Background()}, {"unsampled-span", unsampled}} {
			b.Run(ev.name+"/"+c.name, func(b *testing.B) {
				obs, _ := benchObserver(b)
				e := ev.e
				e.Context = c.ctx
				b.ReportAllocs()
				for b.Loop() {
					obs.Observe(e)
				}
			})
		}
	}
}

// BenchmarkObserveSpanEvent measures the events added to a recording span.
// The span is ended and replaced every 64 events, so that it does not grow
// without bound (the SDK keeps 128 events per span by default).
func BenchmarkObserveSpanEvent(b *testing.B) {
	obs, _ := benchObserver(b)
	tp := sdktrace.NewTracerProvider()
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tp.Tracer("bench")
	e := spillway.Event{Kind: spillway.EventRetry, Policy: "retry", Name: "catalog", Attempt: 1, Delay: time.Millisecond, Err: errDown}
	ctx, span := tr.Start(context.Background(), "call")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e.Context = ctx
		obs.Observe(e)
		if i++; i%64 == 0 {
			span.End()
			ctx, span = tr.Start(context.Background(), "call")
		}
	}
	span.End()
}

// BenchmarkUncachedAttributes is the baseline the attribute cache avoids:
// the same counter increment with the attributes built per call.
func BenchmarkUncachedAttributes(b *testing.B) {
	_, mp := benchObserver(b)
	c, err := mp.Meter("bench").Int64Counter("spillway.rejected")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	name, reason := "catalog", spillway.ReasonBreakerOpen
	b.ReportAllocs()
	for b.Loop() {
		c.Add(ctx, 1, metric.WithAttributes(attribute.String("name", name), attribute.String("reason", string(reason))))
	}
}
