package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/telemetry"
	"github.com/spillway-dev/spillway/internal/otlptest"
)

// BenchmarkRequestSpan measures what tracing adds to one request of one
// attempt, the gateway's calls in order, at sample_ratio 0 (the 99 % that
// a ratio of 0.01 does not sample: a context to propagate, no span
// recorded) and 1 (every span recorded and exported).
func BenchmarkRequestSpan(b *testing.B) {
	for _, ratio := range []float64{0, 1} {
		name := map[float64]string{0: "unsampled", 1: "sampled"}[ratio]
		b.Run(name, func(b *testing.B) {
			rcv := otlptest.NewReceiver()
			defer rcv.Close()
			p, err := telemetry.New(&config.Telemetry{ServiceName: "bench",
				OTLP:   config.OTLP{Endpoint: rcv.URL, Protocol: config.OTLPHTTPProtobuf, Timeout: 10 * time.Second},
				Traces: config.Traces{SampleRatio: ratio}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Shutdown(context.Background())
			in := httptest.NewRequest(http.MethodGet, "http://gw/api/items", nil)
			out := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9000/api/items", nil)
			info := gateway.RequestInfo{Route: "api", Upstream: "app", Status: 200, Attempts: 1, Outcome: "success"}
			b.ReportAllocs()
			for b.Loop() {
				s := p.Start(in)
				s.Attempt(out, "app", 1)
				s.AttemptResponse(200)
				s.AttemptEnd(false)
				s.End(info)
			}
		})
	}
}
