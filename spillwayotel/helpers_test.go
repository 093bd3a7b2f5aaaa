package spillwayotel_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/spillway-dev/spillway/spillwayotel"
)

// harness is an Observer on a real SDK MeterProvider read by a ManualReader.
type harness struct {
	t      *testing.T
	reader *sdkmetric.ManualReader
	obs    *spillwayotel.Observer
}

func newHarness(t *testing.T, opts ...spillwayotel.Option) *harness {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		if err := mp.Shutdown(context.Background()); err != nil {
			t.Errorf("MeterProvider.Shutdown: %v", err)
		}
	})
	obs, err := spillwayotel.New(mp, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := obs.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &harness{t: t, reader: reader, obs: obs}
}

// metrics collects and returns the metrics by name.
func (h *harness) metrics() map[string]metricdata.Metrics {
	h.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		h.t.Fatalf("Collect: %v", err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != spillwayotel.ScopeName {
			h.t.Errorf("scope %q, want %q", sm.Scope.Name, spillwayotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// kv builds attributes from alternating keys and values.
func kv(pairs ...string) attribute.Set {
	kvs := make([]attribute.KeyValue, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		kvs = append(kvs, attribute.String(pairs[i], pairs[i+1]))
	}
	return attribute.NewSet(kvs...)
}

// counter returns the value of the int64 sum name at attrs (0 if absent) and
// checks that it is a monotonic cumulative sum.
func counter(t *testing.T, ms map[string]metricdata.Metrics, name string, attrs attribute.Set) int64 {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is a %T, want an int64 Sum", name, m.Data)
	}
	if !sum.IsMonotonic {
		t.Errorf("%s is not monotonic", name)
	}
	for _, dp := range sum.DataPoints {
		if dp.Attributes.Equals(&attrs) {
			return dp.Value
		}
	}
	return 0
}

// points returns how many data points name has.
func points(t *testing.T, ms map[string]metricdata.Metrics, name string) int {
	t.Helper()
	switch d := ms[name].Data.(type) {
	case nil:
		return 0
	case metricdata.Sum[int64]:
		return len(d.DataPoints)
	case metricdata.Gauge[int64]:
		return len(d.DataPoints)
	case metricdata.Gauge[float64]:
		return len(d.DataPoints)
	case metricdata.Histogram[float64]:
		return len(d.DataPoints)
	default:
		t.Fatalf("%s: unexpected %T", name, d)
		return 0
	}
}

// gauge returns the value of the gauge name at attrs; ok is false if absent.
func gauge(t *testing.T, ms map[string]metricdata.Metrics, name string, attrs attribute.Set) (v float64, ok bool) {
	t.Helper()
	switch d := ms[name].Data.(type) {
	case metricdata.Gauge[int64]:
		for _, dp := range d.DataPoints {
			if dp.Attributes.Equals(&attrs) {
				return float64(dp.Value), true
			}
		}
	case metricdata.Gauge[float64]:
		for _, dp := range d.DataPoints {
			if dp.Attributes.Equals(&attrs) {
				return dp.Value, true
			}
		}
	case nil:
	default:
		t.Fatalf("%s is a %T, want a Gauge", name, d)
	}
	return 0, false
}

// histogram returns the data point of the histogram name at attrs.
func histogram(t *testing.T, ms map[string]metricdata.Metrics, name string, attrs attribute.Set) metricdata.HistogramDataPoint[float64] {
	t.Helper()
	h, ok := ms[name].Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is a %T, want a float64 Histogram", name, ms[name].Data)
	}
	for _, dp := range h.DataPoints {
		if dp.Attributes.Equals(&attrs) {
			return dp
		}
	}
	t.Fatalf("%s has no point at %v", name, attrs.Encoded(attribute.DefaultEncoder()))
	return metricdata.HistogramDataPoint[float64]{}
}

// newTracer returns a real SDK TracerProvider whose ended spans sr records.
func newTracer(t *testing.T, opts ...sdktrace.TracerProviderOption) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(sr)}, opts...)...)
	t.Cleanup(func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Errorf("TracerProvider.Shutdown: %v", err)
		}
	})
	return tp, sr
}

// eventAttrs returns the attributes of an event as a map of strings.
func eventAttrs(e sdktrace.Event) map[string]string {
	out := map[string]string{}
	for _, a := range e.Attributes {
		out[string(a.Key)] = a.Value.Emit()
	}
	return out
}

// sortedEncoder encodes attribute sets as k=v,k=v in key order.
var sortedEncoder = attribute.DefaultEncoder()
