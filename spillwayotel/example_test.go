package spillwayotel_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayotel"
)

// An Observer watches a breaker and a pipeline; a ManualReader stands in for
// an exporter (OTLP, Prometheus) to show what is recorded.
func Example() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	obs, err := spillwayotel.New(mp)
	if err != nil {
		panic(err)
	}
	defer obs.Close()

	cb := breaker.MustNew(breaker.Config{Name: "payments", WindowSize: 3, MinCalls: 3, Observer: obs})
	if err := obs.RegisterBreaker(cb); err != nil {
		panic(err)
	}
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Guards: []spillway.Guard{cb}, Observer: obs, Name: "payments"})
	for range 4 {
		_, _ = pl.Execute(context.Background(), func(context.Context) (string, error) {
			return "", errors.New("503 Service Unavailable")
		})
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, dp := range d.DataPoints {
				fmt.Println(m.Name, dp.Attributes.Encoded(sortedEncoder), dp.Value)
			}
		case metricdata.Gauge[int64]:
			for _, dp := range d.DataPoints {
				if dp.Value == 1 {
					fmt.Println(m.Name, dp.Attributes.Encoded(sortedEncoder), dp.Value)
				}
			}
		}
	}
	// Unordered output:
	// spillway.upstream.attempts name=payments,result=failure 3
	// spillway.rejected name=payments,reason=breaker_open 1
	// spillway.circuit.transitions from=closed,name=payments,to=open 1
	// spillway.circuit.state name=payments,state=open 1
}

// Under a traced call, each retry, rejection and fallback is an event on the
// call's span, with the reason code as spillway.reason.
func Example_spanEvents() {
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	defer tp.Shutdown(context.Background())
	mp := sdkmetric.NewMeterProvider()
	defer mp.Shutdown(context.Background())

	obs, err := spillwayotel.New(mp, spillwayotel.WithoutErrorMessages())
	if err != nil {
		panic(err)
	}
	defer obs.Close()

	pl := spillway.MustNewPipeline(spillway.Policies[string]{
		Fallback: fallback.MustNew(fallback.Config{Name: "recs", Observer: obs}, fallback.Value("default", "[]")),
		Retry: retry.MustNew(retry.Config{Name: "recs", MaxAttempts: 2, Initial: time.Millisecond, Max: time.Millisecond,
			Jitter: retry.NoJitter, Observer: obs}),
		Observer: obs,
		Name:     "recs",
	})
	ctx, span := tp.Tracer("shop").Start(context.Background(), "GET /recommendations")
	v, _ := pl.Execute(ctx, func(context.Context) (string, error) {
		return "", errors.New("connection reset by peer")
	})
	span.End()

	fmt.Println("answer:", v)
	for _, e := range recorder.Ended()[0].Events() {
		fmt.Print(e.Name)
		for _, a := range e.Attributes {
			if a.Key == "spillway.reason" || a.Key == "spillway.attempt" || a.Key == "spillway.kind" {
				fmt.Printf(" %s=%s", a.Key, a.Value.Emit())
			}
		}
		fmt.Println()
	}
	// Output:
	// answer: []
	// spillway.retry spillway.attempt=1 spillway.reason=upstream_error
	// spillway.fallback spillway.kind=default spillway.reason=upstream_error
}
