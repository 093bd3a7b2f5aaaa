package telemetry_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/telemetry"
	"github.com/spillway-dev/spillway/internal/otlptest"
)

const gatewayYAML = `
upstreams:
  app:
    instances: [%[1]s]
    retry: {max_attempts: 2, backoff: {initial: 1ms, max: 1ms}}
  down:
    instances: [%[1]s]
    breaker: {mode: forced_open}
routes:
  - {name: api, match: {path_prefix: /api}, upstream: app}
  - name: degraded
    match: {path_prefix: /degraded}
    upstream: down
    fallback: [{static: {status: 200, body: static answer}}]
  - name: chaos
    match: {path_prefix: /chaos}
    upstream: app
    fault: {abort: {percent: 100, status: 503}}
    fallback: [{static: {status: 200, body: static answer}}]
telemetry:
  service_name: gw-test
  otlp: {endpoint: '%[2]s', headers: {x-api-key: '${API_KEY}'}}
  traces: {sample_ratio: %[3]s}
  metrics: {interval: 1h}
`

// app is the upstream: /api/flaky answers 503 to its first call and 200
// after; every call's traceparent is kept.
type app struct {
	mu           sync.Mutex
	traceparents []string
	flaky        int
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.traceparents = append(a.traceparents, r.Header.Get("traceparent"))
	a.flaky++
	fail := r.URL.Path == "/api/flaky" && a.flaky == 1
	a.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

func (a *app) sent() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.traceparents...)
}

type fixture struct {
	gw  *httptest.Server
	app *app
	rcv *otlptest.Receiver
	p   *telemetry.Provider
}

// start runs a gateway tracing with sample_ratio ratio to an in-process
// OTLP receiver.
func start(t *testing.T, ratio string) *fixture {
	t.Helper()
	f := &fixture{app: &app{}, rcv: otlptest.NewReceiver()}
	t.Cleanup(func() {
		f.rcv.Close()
		if err := f.rcv.Err(); err != nil {
			t.Error(err)
		}
	})
	up := httptest.NewServer(f.app)
	t.Cleanup(up.Close)
	env := func(k string) (string, bool) { return "k1", k == "API_KEY" }
	cfg, _, err := config.Parse("t.yaml", fmt.Appendf(nil, gatewayYAML, up.URL, f.rcv.URL, ratio), env)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if f.p, err = telemetry.New(cfg.Telemetry, reg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	g, err := gateway.New(cfg, gateway.Options{Registry: reg, Tracer: f.p, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	f.gw = httptest.NewServer(g)
	t.Cleanup(f.gw.Close)
	return f
}

func (f *fixture) get(t *testing.T, path, traceparent string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.gw.URL+path, nil)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b.String())
	}
	return b.String()
}

// trace waits (flushing) for the server span of path and the client spans
// of its trace, want of them.
func (f *fixture) trace(t *testing.T, path string, want int) (server *tracepb.Span, clients []*tracepb.Span) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := f.p.ForceFlush(ctx)
		cancel()
		if err != nil {
			t.Fatalf("ForceFlush: %v", err)
		}
		server, clients = nil, nil
		spans := f.rcv.Spans()
		for _, s := range spans {
			if s.Kind == tracepb.Span_SPAN_KIND_SERVER && otlptest.Attr(s.Attributes, "url.path") == path {
				server = s
			}
		}
		if server != nil {
			for _, s := range spans {
				if s.Kind == tracepb.Span_SPAN_KIND_CLIENT && bytes.Equal(s.TraceId, server.TraceId) {
					clients = append(clients, s)
				}
			}
			if len(clients) >= want {
				return server, clients
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: server span %v and %d client spans after 10s, want %d", path, server != nil, len(clients), want)
		}
		time.Sleep(10 * time.Millisecond) // a poll with a deadline: the span ends after the answer
	}
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

func TestServerSpanAndAttemptSpan(t *testing.T) {
	f := start(t, "1")
	f.get(t, "/api/items?q=secret", "")
	server, clients := f.trace(t, "/api/items", 1)
	if server.Name != "GET api" {
		t.Errorf("server span name %q, want GET api", server.Name)
	}
	for k, want := range map[string]any{"http.request.method": "GET", "http.route": "api", "http.response.status_code": int64(200),
		"spillway.upstream": "app", "spillway.outcome": "success", "spillway.attempts": int64(1), "url.scheme": "http"} {
		if got := otlptest.Attr(server.Attributes, k); got != want {
			t.Errorf("server span %s = %v, want %v", k, got, want)
		}
	}
	if len(server.ParentSpanId) != 0 {
		t.Errorf("server span has a parent %x: no traceparent was sent", server.ParentSpanId)
	}
	c := clients[0]
	if !bytes.Equal(c.ParentSpanId, server.SpanId) || c.Name != "GET" {
		t.Errorf("client span %q parent %x, want GET under the server span %x", c.Name, c.ParentSpanId, server.SpanId)
	}
	for k, want := range map[string]any{"spillway.upstream": "app", "spillway.attempt": int64(1), "http.response.status_code": int64(200),
		"spillway.attempt.result": "success", "server.address": "127.0.0.1"} {
		if got := otlptest.Attr(c.Attributes, k); got != want {
			t.Errorf("client span %s = %v, want %v", k, got, want)
		}
	}
	if u, _ := otlptest.Attr(c.Attributes, "url.full").(string); strings.Contains(u, "secret") || !strings.HasSuffix(u, "/api/items") {
		t.Errorf("client span url.full = %q: the instance's URL without the query", u)
	}
	sent := f.app.sent()
	want := "00-" + hexID(server.TraceId) + "-" + hexID(c.SpanId) + "-01"
	if len(sent) != 1 || sent[0] != want {
		t.Errorf("traceparent sent upstream %q, want the attempt's %q", sent, want)
	}
	if key := f.rcv.Header().Get("x-api-key"); key != "k1" {
		t.Errorf("export header x-api-key = %q, want the expanded ${API_KEY}", key)
	}
}

func TestRetryMakesTwoAttemptSpans(t *testing.T) {
	f := start(t, "1")
	f.get(t, "/api/flaky", "")
	server, clients := f.trace(t, "/api/flaky", 2)
	if len(clients) != 2 {
		t.Fatalf("%d client spans, want 2", len(clients))
	}
	byAttempt := map[int64]*tracepb.Span{}
	for _, c := range clients {
		if !bytes.Equal(c.ParentSpanId, server.SpanId) {
			t.Errorf("client span %x is not a child of the server span", c.SpanId)
		}
		byAttempt[otlptest.Attr(c.Attributes, "spillway.attempt").(int64)] = c
	}
	first, second := byAttempt[1], byAttempt[2]
	if first == nil || second == nil {
		t.Fatalf("attempts %v, want 1 and 2", byAttempt)
	}
	if otlptest.Attr(first.Attributes, "http.response.status_code") != int64(503) || otlptest.Attr(first.Attributes, "spillway.attempt.result") != "status_failure" ||
		first.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("first attempt: %v, want a 503 status_failure in error", first.Attributes)
	}
	if otlptest.Attr(second.Attributes, "http.response.status_code") != int64(200) || otlptest.Attr(second.Attributes, "http.request.resend_count") != int64(1) {
		t.Errorf("second attempt: %v, want a 200 resent once", second.Attributes)
	}
	if otlptest.Attr(server.Attributes, "spillway.attempts") != int64(2) {
		t.Errorf("server span spillway.attempts = %v, want 2", otlptest.Attr(server.Attributes, "spillway.attempts"))
	}
	if !hasEvent(server, "spillway.retry", "spillway.attempt", int64(1)) {
		t.Errorf("server span events %v, want spillway.retry of attempt 1", server.Events)
	}
	sent := f.app.sent()
	if len(sent) != 2 || !strings.Contains(sent[0], hexID(first.SpanId)) || !strings.Contains(sent[1], hexID(second.SpanId)) {
		t.Errorf("traceparents sent %q, want each attempt's span id (%x, %x)", sent, first.SpanId, second.SpanId)
	}
}

func TestBreakerRejectionAndFallbackOnTheSpan(t *testing.T) {
	f := start(t, "1")
	if body := f.get(t, "/degraded/x", ""); body != "static answer" {
		t.Fatalf("body %q, want the static fallback", body)
	}
	server, clients := f.trace(t, "/degraded/x", 0)
	if len(clients) != 0 {
		t.Errorf("%d client spans: the open breaker sent no attempt", len(clients))
	}
	for k, want := range map[string]any{"spillway.fallback": "static", "spillway.reason": "breaker_open", "spillway.outcome": "fallback",
		"http.route": "degraded", "spillway.attempts": int64(0)} {
		if got := otlptest.Attr(server.Attributes, k); got != want {
			t.Errorf("server span %s = %v, want %v", k, got, want)
		}
	}
	if !hasEvent(server, "spillway.rejection", "spillway.reason", "breaker_open") {
		t.Errorf("server span events %v, want spillway.rejection breaker_open", server.Events)
	}
	if !hasEvent(server, "spillway.fallback", "spillway.kind", "static") {
		t.Errorf("server span events %v, want spillway.fallback static", server.Events)
	}
}

// An injected fault is on the server span: an event per attempt it
// replaced, and the attribute spillway.fault.
func TestInjectedFaultOnTheSpan(t *testing.T) {
	f := start(t, "1")
	f.get(t, "/chaos/x", "")
	server, clients := f.trace(t, "/chaos/x", 0)
	if len(clients) != 0 {
		t.Errorf("%d client spans: every attempt was aborted before an instance", len(clients))
	}
	if got := otlptest.Attr(server.Attributes, "spillway.fault"); got != "abort" {
		t.Errorf("server span spillway.fault = %v, want abort", got)
	}
	n := 0
	for _, e := range server.Events {
		if e.Name == "spillway.fault" && otlptest.Attr(e.Attributes, "spillway.kind") == "abort" &&
			otlptest.Attr(e.Attributes, "http.response.status_code") == int64(503) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d spillway.fault abort 503 events, want one per attempt (2): %v", n, server.Events)
	}
}

func TestSampledParentIsContinued(t *testing.T) {
	f := start(t, "0")
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	f.get(t, "/api/continued", "00-"+traceID+"-"+parentID+"-01")
	server, clients := f.trace(t, "/api/continued", 1)
	if hexID(server.TraceId) != traceID || hexID(server.ParentSpanId) != parentID {
		t.Errorf("server span trace %x parent %x, want the client's %s %s", server.TraceId, server.ParentSpanId, traceID, parentID)
	}
	if sent := f.app.sent(); len(sent) != 1 || sent[0] != "00-"+traceID+"-"+hexID(clients[0].SpanId)+"-01" {
		t.Errorf("traceparent sent %q, want the client's trace from the attempt span %x", sent, clients[0].SpanId)
	}
}

func TestRatioZeroWithoutParentTracesNothing(t *testing.T) {
	f := start(t, "0")
	f.get(t, "/api/a", "")
	// An unsampled parent is not traced either, and its trace goes on.
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	f.get(t, "/api/b", "00-"+traceID+"-b7ad6b7169203331-00")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if spans := f.rcv.Spans(); len(spans) != 0 {
		t.Errorf("%d spans exported at sample_ratio 0 without a sampled parent", len(spans))
	}
	sent := f.app.sent()
	if len(sent) != 2 || !strings.HasSuffix(sent[0], "-00") || !strings.HasPrefix(sent[1], "00-"+traceID+"-") || !strings.HasSuffix(sent[1], "-00") {
		t.Errorf("traceparents sent %q: want an unsampled context, the client's trace id on the second", sent)
	}
}

func TestMetricsGoOverOTLP(t *testing.T) {
	f := start(t, "0")
	f.get(t, "/api/m", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.rcv.MetricNames()
	for _, name := range []string{"spillway_requests_total", "spillway_upstream_attempts_total", "spillway_circuit_state"} {
		if !got[name] {
			t.Errorf("metric %s not received over OTLP; got %v", name, got)
		}
	}
}

func hasEvent(s *tracepb.Span, name, key string, value any) bool {
	for _, e := range s.Events {
		if e.Name == name && otlptest.Attr(e.Attributes, key) == value {
			return true
		}
	}
	return false
}

// TestGRPCFailureMarksTheServerSpan: a gRPC call fails at HTTP status
// 200; its request span says the status its client got
// (rpc.response.status_code) and is an Error when that status is a
// failure, and only then.
func TestGRPCFailureMarksTheServerSpan(t *testing.T) {
	rcv := otlptest.NewReceiver()
	defer rcv.Close()
	p, err := telemetry.New(&config.Telemetry{ServiceName: "grpc",
		OTLP:   config.OTLP{Endpoint: rcv.URL, Protocol: config.OTLPHTTPProtobuf, Timeout: 10 * time.Second},
		Traces: config.Traces{SampleRatio: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	for path, info := range map[string]gateway.RequestInfo{
		"/svc/Failed": {Route: "rpc", Status: 200, Outcome: "upstream_5xx", GRPCStatus: "UNAVAILABLE", GRPCFailed: true},
		"/svc/Valid":  {Route: "rpc", Status: 200, Outcome: "success", GRPCStatus: "INVALID_ARGUMENT"},
	} {
		p.Start(httptest.NewRequest(http.MethodPost, "http://gw"+path, nil)).End(info)
	}
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tracepb.Span{}
	for _, s := range rcv.Spans() {
		got[fmt.Sprint(otlptest.Attr(s.Attributes, "url.path"))] = s
	}
	for path, want := range map[string]struct {
		code   string
		failed bool
	}{"/svc/Failed": {"UNAVAILABLE", true}, "/svc/Valid": {"INVALID_ARGUMENT", false}} {
		s := got[path]
		if s == nil {
			t.Fatalf("%s: no span exported", path)
		}
		if c := otlptest.Attr(s.Attributes, "rpc.response.status_code"); c != want.code {
			t.Errorf("%s: rpc.response.status_code %v, want %s", path, c, want.code)
		}
		if failed := s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR; failed != want.failed {
			t.Errorf("%s: span status %v, want an error: %v", path, s.Status.GetCode(), want.failed)
		}
	}
}
