package telemetry_test

import (
	"context"
	"io"
	"log/slog"
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
				s.AttemptEnd("success")
				s.End(info)
			}
		})
	}
}

// BenchmarkProxyTracing measures a proxied GET through a gateway without a
// Tracer (off) and with one sampling 1 % to a receiver in the process,
// the sub-benchmarks of one run interleaved by -count.
func BenchmarkProxyTracing(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(make([]byte, 200)) }))
	defer up.Close()
	rcv := otlptest.NewReceiver()
	defer rcv.Close()
	for _, ratio := range []string{"off", "0.01"} {
		b.Run(ratio, func(b *testing.B) {
			y := "upstreams:\n  app: {instances: [" + up.URL + "]}\nroutes:\n  - {name: api, upstream: app}\n"
			if ratio != "off" {
				y += "telemetry:\n  otlp: {endpoint: '" + rcv.URL + "'}\n  traces: {sample_ratio: " + ratio + "}\n"
			}
			cfg, _, err := config.Parse("bench.yaml", []byte(y), nil)
			if err != nil {
				b.Fatal(err)
			}
			o := gateway.Options{Logger: slog.New(slog.DiscardHandler)}
			if cfg.Telemetry != nil {
				p, err := telemetry.New(cfg.Telemetry, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Shutdown(context.Background())
				o.Tracer = p
			}
			g, err := gateway.New(cfg, o)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			gw := httptest.NewServer(g)
			defer gw.Close()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer c.CloseIdleConnections()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Get(gw.URL + "/")
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
