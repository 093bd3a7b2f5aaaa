// Package otlptest is an OTLP/HTTP receiver for tests and benchmarks: it
// decodes the protobuf bodies exporters send to /v1/traces and /v1/metrics,
// as an OpenTelemetry Collector's otlp receiver does, and keeps the spans
// and the names of the metrics.
package otlptest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Receiver is a running OTLP/HTTP receiver on 127.0.0.1; URL is its
// endpoint (the base of /v1/traces and /v1/metrics).
type Receiver struct {
	*httptest.Server
	mu      sync.Mutex
	spans   []*tracepb.Span
	metrics map[string]bool
	header  http.Header // of the last export
	err     error       // the first body that did not decode
}

// NewReceiver starts a Receiver; Close stops it.
func NewReceiver() *Receiver {
	r := &Receiver{metrics: map[string]bool{}}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/traces", handler(r, &coltracepb.ExportTraceServiceResponse{}, func(m *coltracepb.ExportTraceServiceRequest) {
		for _, rs := range m.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
	}))
	mux.Handle("POST /v1/metrics", handler(r, &colmetricpb.ExportMetricsServiceResponse{}, func(m *colmetricpb.ExportMetricsServiceRequest) {
		for _, rm := range m.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, mt := range sm.Metrics {
					r.metrics[mt.Name] = true
				}
			}
		}
	}))
	r.Server = httptest.NewServer(mux)
	return r
}

// handler decodes an export request into a new M, hands it to keep under
// r.mu, and answers resp.
func handler[M any, PM interface {
	*M
	proto.Message
}](r *Receiver, resp proto.Message, keep func(PM)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		m := PM(new(M))
		if !r.decode(w, req, m) {
			return
		}
		r.mu.Lock()
		keep(m)
		r.mu.Unlock()
		b, _ := proto.Marshal(resp)
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	}
}

func (r *Receiver) decode(w http.ResponseWriter, req *http.Request, m proto.Message) bool {
	body, err := io.ReadAll(req.Body)
	if err == nil {
		err = proto.Unmarshal(body, m)
	}
	if ct := req.Header.Get("Content-Type"); err == nil && ct != "application/x-protobuf" {
		err = fmt.Errorf("Content-Type %q", ct)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("otlptest: %s: %w", req.URL.Path, err)
		}
		http.Error(w, "bad request", http.StatusBadRequest)
		return false
	}
	r.header = req.Header.Clone()
	return true
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// MetricNames returns the names of the metrics received so far.
func (r *Receiver) MetricNames() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]bool, len(r.metrics))
	for k := range r.metrics {
		out[k] = true
	}
	return out
}

// Header returns the headers of the last export.
func (r *Receiver) Header() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.header.Clone()
}

// Err returns the first export that did not decode, nil when all did.
func (r *Receiver) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Attr returns the value of the attribute key of kvs: a string, an int64,
// a float64 or a bool; nil when kvs does not have it.
func Attr(kvs []*commonpb.KeyValue, key string) any {
	for _, kv := range kvs {
		if kv.Key != key {
			continue
		}
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			return v.StringValue
		case *commonpb.AnyValue_IntValue:
			return v.IntValue
		case *commonpb.AnyValue_DoubleValue:
			return v.DoubleValue
		case *commonpb.AnyValue_BoolValue:
			return v.BoolValue
		}
	}
	return nil
}
