package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/internal/otlptest"
)

// TestServeExportsTraces runs serve with telemetry: and checks that the
// span of a request and the metrics reach the OTLP endpoint by the time
// serve returns: the export is flushed at exit.
func TestServeExportsTraces(t *testing.T) {
	app := upstream(t, "app")
	rcv := otlptest.NewReceiver()
	defer rcv.Close()
	file := filepath.Join(t.TempDir(), "spillway.yaml")
	writeFile(t, file, fmt.Sprintf(oneRoute, app.URL)+fmt.Sprintf("telemetry:\n  otlp: {endpoint: '%s'}\n  traces: {sample_ratio: 1}\n  metrics: {interval: 1h}\n", rcv.URL))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	public := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{File: file}, io.Discard, io.Discard, nil, func(p, _ string) { public <- p })
	}()
	var addr string
	select {
	case addr = <-public:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/app/x")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run still running 20s after its context ended")
	}
	if err := rcv.Err(); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Spans()
	if len(spans) != 2 || otlptest.Attr(spans[0].Attributes, "spillway.attempt") != int64(1) || otlptest.Attr(spans[1].Attributes, "http.route") != "app" {
		t.Errorf("spans received at exit: %v, want the attempt's and the request's", spans)
	}
	if !rcv.MetricNames()["spillway_requests_total"] {
		t.Errorf("metrics received at exit: %v, want spillway_requests_total", rcv.MetricNames())
	}
}
