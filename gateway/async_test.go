package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/async"
	"github.com/spillway-dev/spillway/queue"

	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// openQueue opens an embedded queue (in-process, no TCP port) in a temp
// dir; it is closed after the gateways of the test (cleanups run in
// reverse order).
func openQueue(t *testing.T) *queue.Queue {
	t.Helper()
	return openQueueWith(t, queue.Config{Dir: t.TempDir()})
}

// openQueueWith opens cfg (prefix GWT, logs discarded), closed as
// openQueue's.
func openQueueWith(t *testing.T, cfg queue.Config) *queue.Queue {
	t.Helper()
	cfg.Prefix, cfg.Logger = "GWT", slog.New(slog.NewTextHandler(io.Discard, nil))
	q, err := queue.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func startAsync(t *testing.T, cfg *config.Config, q *queue.Queue) *harness {
	t.Helper()
	h := &harness{log: &spillwaytest.Buffer{}}
	var err error
	h.gw, err = gateway.New(cfg, gateway.Options{
		AccessLog: slog.New(slog.NewJSONHandler(h.log, nil)),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Queue:     q,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.gw)
	t.Cleanup(func() {
		h.srv.Close()
		h.gw.Close()
	})
	return h
}

// recording is an upstream that records every request it gets and answers
// with the status a test sets (0: 201).
type recording struct {
	*httptest.Server
	status atomic.Int64
	// failFirst makes the first n requests answer 500, whatever status.
	failFirst atomic.Int64
	mu        sync.Mutex
	reqs      []recorded
}

type recorded struct {
	method, path, query string
	header              http.Header
	body                string
}

func newRecording(t *testing.T) *recording {
	t.Helper()
	u := &recording{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(b)})
		n := len(u.reqs)
		u.mu.Unlock()
		s := int(u.status.Load())
		if int64(n) <= u.failFirst.Load() {
			s = http.StatusInternalServerError
		}
		if s == 0 {
			s = http.StatusCreated
		}
		w.WriteHeader(s)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recording) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *recording) all() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recorded(nil), u.reqs...)
}

// eventually polls cond every few milliseconds until it holds, for up to
// 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type accepted struct {
	ID        string `json:"id"`
	StatusURL string `json:"status_url"`
	Duplicate bool   `json:"duplicate"`
}

func (h *harness) post(t *testing.T, path string, hdr map[string]string, body string) accepted {
	t.Helper()
	resp, b := h.do(t, "POST", path, hdr, body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s, want 202", path, resp.StatusCode, b)
	}
	var a accepted
	if err := json.Unmarshal([]byte(b), &a); err != nil {
		t.Fatalf("202 body %q: %v", b, err)
	}
	if !async.ValidJobID(a.ID) || a.StatusURL != "/_spillway/jobs/"+a.ID || resp.Header.Get("Location") != a.StatusURL {
		t.Fatalf("202: Location %q, body %q", resp.Header.Get("Location"), b)
	}
	return a
}

// status reads a job's status through the public listener.
func (h *harness) status(t *testing.T, id string) queue.Status {
	t.Helper()
	resp, b := h.do(t, "GET", async.JobsPath+id, nil, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status of %s: %d %s", id, resp.StatusCode, b)
	}
	var st queue.Status
	if err := json.Unmarshal([]byte(b), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (h *harness) waitState(t *testing.T, id string, want queue.State) queue.Status {
	t.Helper()
	var st queue.Status
	eventually(t, fmt.Sprintf("job %s %s", id, want), func() bool {
		st = h.status(t, id)
		return st.State == want
	})
	return st
}

const asyncYAML = `
upstreams:
  orders:
    instances: ["${U}"]
%s
routes:
  - name: orders
    match: {path_prefix: /orders}
    strip_prefix: true
    upstream: orders
    async: {max_attempts: 3, backoff: {initial: 5ms, max: 20ms}%s}
`

func asyncConfig(t *testing.T, u *recording, upstreamExtra, asyncExtra string) *config.Config {
	return parse(t, fmt.Sprintf(asyncYAML, upstreamExtra, asyncExtra), map[string]string{"U": u.URL})
}

func TestAsyncAcceptsStoresAndDelivers(t *testing.T) {
	u := newRecording(t)
	h := startAsync(t, asyncConfig(t, u, "", ""), openQueue(t))
	body := "{\"order\":42}\x00\xff binary too"
	a := h.post(t, "/orders/new%2Fone?x=1&y=%20", map[string]string{
		"X-Custom": "kept", "Connection": "X-Named", "X-Named": "dropped", "Keep-Alive": "timeout=5",
		"Proxy-Authorization": "secret", "Spillway-Timeout-Ms": "5", "X-Forwarded-For": "6.6.6.6",
	}, body)
	st := h.waitState(t, a.ID, queue.StateDelivered)
	if st.LastStatus != http.StatusCreated || st.Attempts != 1 || st.ID != a.ID || st.Queue != "orders" {
		t.Errorf("status %+v", st)
	}
	reqs := u.all()
	if len(reqs) != 1 {
		t.Fatalf("%d deliveries, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != "POST" || r.path != "/new/one" || r.query != "x=1&y=%20" || r.body != body {
		t.Errorf("delivered %s %s ? %s body %q", r.method, r.path, r.query, r.body)
	}
	for k, want := range map[string]string{
		"X-Custom": "kept", "Idempotency-Key": a.ID, "Spillway-Job-Id": a.ID, "Spillway-Attempt": "1",
		"X-Forwarded-For": "127.0.0.1", "X-Named": "", "Keep-Alive": "", "Proxy-Authorization": "",
		"Content-Length": fmt.Sprint(len(body)),
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("upstream saw %s: %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(h.log.String(), `"outcome":"accepted"`) {
		t.Errorf("access log has no accepted line:\n%s", h.log)
	}
	if got := metricValue(t, h, "spillway_requests_total", "route", "orders", "outcome", "accepted"); got != 1 {
		t.Errorf("spillway_requests_total{outcome=accepted} = %v", got)
	}
}

// metricValue returns the value of the series of name with labels (name,
// value pairs) in the gateway's registry; -1 when there is none.
func metricValue(t *testing.T, h *harness, name string, labels ...string) float64 {
	t.Helper()
	return gatewayMetric(t, h.gw, name, labels...)
}

// gatewayMetric is metricValue in g's registry.
func gatewayMetric(t *testing.T, g *gateway.Gateway, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

func TestAsyncIdempotencyKeyDedupes(t *testing.T) {
	u := newRecording(t)
	h := startAsync(t, asyncConfig(t, u, "", ""), openQueue(t))
	key := map[string]string{"Idempotency-Key": "order-42"}
	a := h.post(t, "/orders", key, "one")
	b := h.post(t, "/orders", key, "one")
	if a.ID != b.ID || a.Duplicate || !b.Duplicate {
		t.Fatalf("first %+v, second %+v: want one id, the second a duplicate", a, b)
	}
	h.waitState(t, a.ID, queue.StateDelivered)
	c := h.post(t, "/orders", nil, "three") // a later job, delivered after
	h.waitState(t, c.ID, queue.StateDelivered)
	reqs := u.all()
	if len(reqs) != 2 || reqs[0].body != "one" || reqs[0].header.Get("Idempotency-Key") != "order-42" {
		t.Fatalf("deliveries %+v, want the first body once with the client's key", reqs)
	}
}

func TestAsyncBodyLimit(t *testing.T) {
	u := newRecording(t)
	h := startAsync(t, asyncConfig(t, u, "", ", max_body: 8"), openQueue(t))
	resp, _ := h.do(t, "POST", "/orders", nil, "123456789")
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Spillway-Reason") != "body_too_large" {
		t.Errorf("announced length: %d %q", resp.StatusCode, resp.Header.Get("Spillway-Reason"))
	}
	// A chunked body: the limit is found while reading.
	req, _ := http.NewRequest("POST", h.srv.URL+"/orders", io.MultiReader(strings.NewReader("12345"), strings.NewReader("6789")))
	req.ContentLength = -1
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked: %d", resp.StatusCode)
	}
	h.post(t, "/orders", nil, "12345678")
}

func TestAsyncQueueUnavailableAnswers503(t *testing.T) {
	u := newRecording(t)
	q := openQueue(t)
	h := startAsync(t, asyncConfig(t, u, "", ""), q)
	if !h.gw.Ready() {
		t.Error("not ready with a queue that answers")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	resp, body := h.do(t, "POST", "/orders", nil, "x")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Spillway-Reason") != "queue_unavailable" ||
		resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, `"reason":"queue_unavailable"`) || !json.Valid([]byte(body)) {
		t.Errorf("closed queue: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if h.gw.Ready() {
		t.Error("ready with a closed queue")
	}
	if got := metricValue(t, h, "spillway_requests_total", "route", "orders", "outcome", "error"); got != 1 {
		t.Errorf("spillway_requests_total{outcome=error} = %v", got)
	}
}

func TestJobStatusEndpoint(t *testing.T) {
	u := newRecording(t)
	h := startAsync(t, asyncConfig(t, u, "", ""), openQueue(t))
	for _, tt := range []struct {
		method, path string
		code         int
		reason       string
	}{
		{"GET", async.JobsPath + "0123456789abcdef0123456789abcdef", 404, "job_not_found"},
		{"GET", async.JobsPath + "not-an-id", 400, "bad_request"},
		{"GET", async.JobsPath + "0123456789ABCDEF0123456789ABCDEF", 400, "bad_request"},
		{"POST", async.JobsPath + "0123456789abcdef0123456789abcdef", 405, "method_not_allowed"},
	} {
		resp, body := h.do(t, tt.method, tt.path, nil, "")
		if resp.StatusCode != tt.code || resp.Header.Get("Spillway-Reason") != tt.reason || !json.Valid([]byte(body)) {
			t.Errorf("%s %s: %d %q %s, want %d %s", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Spillway-Reason"), body, tt.code, tt.reason)
		}
	}
	a := h.post(t, "/orders", nil, "x")
	if resp, body := h.do(t, "HEAD", a.StatusURL, nil, ""); resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD: %d %q", resp.StatusCode, body)
	}
}

func TestAsyncRouteNeedsAQueue(t *testing.T) {
	u := newRecording(t)
	if _, err := gateway.New(asyncConfig(t, u, "", ""), gateway.Options{}); err == nil || !strings.Contains(err.Error(), "no queue") {
		t.Fatalf("New without a queue: %v", err)
	}
}

// TestAsyncGatePausesWhileTheBreakerIsOpen: two failed deliveries open the
// upstream's breaker; while it is open no attempt reaches the upstream
// (the worker's gate pauses, the attempts are not counted); once it lets a
// probe through the job is delivered.
func TestAsyncGatePausesWhileTheBreakerIsOpen(t *testing.T) {
	u := newRecording(t)
	// The first two deliveries fail and open the breaker; the probe after
	// open_for succeeds, however late the test looks. (Switching the
	// status after seeing the breaker open raced with the probe on a
	// loaded machine.) open_for leaves the check below a second and a
	// half before the probe.
	u.failFirst.Store(2)
	cfg := asyncConfig(t, u, "    breaker: {window: {type: count, size: 2}, min_calls: 2, failure_rate: 50%, open_for: 1500ms, max_open_for: 1500ms}",
		"")
	cfg.Routes[0].Async.MaxAttempts = 10
	h := startAsync(t, cfg, openQueue(t))
	a := h.post(t, "/orders", nil, "x")
	eventually(t, "the breaker to open", func() bool { return h.gw.Status().Upstreams["orders"].Breaker.State == "open" })
	if n := u.count(); n != 2 {
		t.Fatalf("%d attempts before the breaker opened, want 2", n)
	}
	st := h.waitState(t, a.ID, queue.StateDelivered)
	if n := u.count(); n != 3 || st.Attempts != 3 || st.LastStatus != 201 {
		t.Errorf("%d attempts reached the upstream, status %+v: want 3 (none while open)", n, st)
	}
}

func TestAsyncPoisonJobIsDeadLettered(t *testing.T) {
	u := newRecording(t)
	u.status.Store(500)
	h := startAsync(t, asyncConfig(t, u, "", ""), openQueue(t))
	a := h.post(t, "/orders", nil, "poison")
	st := h.waitState(t, a.ID, queue.StateDead)
	if st.Attempts != 3 || st.LastStatus != 500 || st.LastReason != "upstream_error" {
		t.Errorf("dead status %+v", st)
	}
	if n := u.count(); n != 3 {
		t.Errorf("%d attempts, want max_attempts 3", n)
	}
	for res, want := range map[string]float64{"failed": 2, "dead": 1, "delivered": 0, "rejected": 0, "paused": 0} {
		if got := metricValue(t, h, "spillway_queue_deliveries_total", "route", "orders", "result", res); got != want {
			t.Errorf("deliveries{result=%s} = %v, want %v", res, got, want)
		}
	}
	// A 4xx is rejected at once.
	u.status.Store(400)
	b := h.post(t, "/orders", nil, "bad")
	if st := h.waitState(t, b.ID, queue.StateDead); st.Attempts != 1 || st.LastStatus != 400 {
		t.Errorf("rejected status %+v", st)
	}
	eventually(t, "the queue gauges", func() bool {
		return metricValue(t, h, "spillway_queue_dead_letters", "route", "orders") == 2
	})
	if n, err := testutil.GatherAndCount(h.gw.Registry(), "spillway_queue_pending", "spillway_queue_oldest_pending_age_seconds"); err != nil || n != 2 {
		t.Errorf("queue gauges: %d series, %v", n, err)
	}
	if problems, err := testutil.GatherAndLint(h.gw.Registry(), "spillway_queue_deliveries_total", "spillway_queue_pending",
		"spillway_queue_dead_letters", "spillway_queue_oldest_pending_age_seconds"); err != nil || len(problems) != 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}
	if qs, ok := h.gw.Status().Queues["orders"]; !ok || qs.DeadLetters != 2 {
		t.Errorf("status queues: %+v", h.gw.Status().Queues)
	}
}

// TestReloadKeepsTheWorkerAndUsesTheNewUpstream: a reload that changes the
// upstream (a new instance) but not the async settings sends the next jobs
// to the new upstream; one that changes the async settings restarts the
// worker, which still delivers.
func TestReloadKeepsTheWorkerAndUsesTheNewUpstream(t *testing.T) {
	u1, u2 := newRecording(t), newRecording(t)
	h := startAsync(t, asyncConfig(t, u1, "", ""), openQueue(t))
	h.waitState(t, h.post(t, "/orders", nil, "1").ID, queue.StateDelivered)
	if err := h.gw.Reload(asyncConfig(t, u2, "", "")); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, h.post(t, "/orders", nil, "2").ID, queue.StateDelivered)
	if err := h.gw.Reload(asyncConfig(t, u2, "", ", retention: 1h")); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, h.post(t, "/orders", nil, "3").ID, queue.StateDelivered)
	if u1.count() != 1 || u2.count() != 2 {
		t.Errorf("deliveries: old upstream %d, new %d; want 1 and 2", u1.count(), u2.count())
	}
}

// BenchmarkAsyncAccept measures the accept path of an async route in the
// process (no network): encode a 256 B request, enqueue it on the embedded
// store (one publish and its acknowledgement), answer 202. The upstream's
// breaker is forced open so that no delivery competes for the CPU.
func BenchmarkAsyncAccept(b *testing.B) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	q, err := queue.Open(b.Context(), queue.Config{Dir: b.TempDir(), Prefix: "GWB", Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	cfg, _, err := config.Parse("b.yaml", []byte(`
upstreams:
  orders: {instances: ["http://127.0.0.1:1"], breaker: {mode: forced_open}}
routes:
  - {name: orders, match: {path_prefix: /orders}, upstream: orders, async: {}}
`), nil)
	if err != nil {
		b.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Queue: q, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	body := strings.Repeat("x", 256)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", "/orders", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			g.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})
}
