package gateway_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

const fastRetry = `{max_attempts: 3, backoff: {initial: 1ms, max: 2ms}}`

func TestRetryGoesToAnotherInstance(t *testing.T) {
	bad, good := newBackend(t, "bad"), newBackend(t, "good")
	bad.status.Store(503)
	h := start(t, parse(t, `
upstreams:
  svc:
    instances: ["${BAD}", "${GOOD}"]
    retry: `+fastRetry+`
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`, map[string]string{"BAD": bad.URL, "GOOD": good.URL}))
	const n = 10
	for i := range n {
		resp, body := h.do(t, "GET", "/x", nil, "")
		if resp.StatusCode != 200 || body != "good" {
			t.Fatalf("request %d: got %d %q, want the good instance's answer", i, resp.StatusCode, body)
		}
	}
	// Round robin sends half of the first attempts to the bad instance; each
	// retry avoids it.
	if b, g := bad.hits.Load(), good.hits.Load(); g != n || b == 0 || b > n {
		t.Fatalf("bad instance %d hits, good %d: want every request answered by good once", b, g)
	}
}

func TestNonIdempotentRequestsAreNotRetried(t *testing.T) {
	be := newBackend(t, "")
	be.status.Store(503)
	h := start(t, parse(t, `
upstreams:
  svc:
    instances: ["${B}"]
    retry: `+fastRetry+`
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`, map[string]string{"B": be.URL}))
	resp, _ := h.do(t, "POST", "/orders", nil, `{"n":1}`)
	if resp.StatusCode != 503 || be.hits.Load() != 1 {
		t.Fatalf("POST: got %d after %d attempts, want the 503 passed through after 1", resp.StatusCode, be.hits.Load())
	}
	be.hits.Store(0)
	resp, _ = h.do(t, "POST", "/orders", map[string]string{"Idempotency-Key": "k1"}, `{"n":1}`)
	if resp.StatusCode != 503 || be.hits.Load() != 3 {
		t.Fatalf("POST with Idempotency-Key: got %d after %d attempts, want 3 attempts", resp.StatusCode, be.hits.Load())
	}
	if got := be.last().Header.Get("Idempotency-Key"); got != "k1" {
		t.Errorf("upstream saw Idempotency-Key %q", got)
	}
}

func TestNoRetryAfterResponseBytesWereSent(t *testing.T) {
	var hits int
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // reset in the middle of the body
		}
	}))
	defer up.Close()
	h := start(t, parse(t, `
upstreams:
  svc:
    instances: ["${B}"]
    retry: {max_attempts: 3, backoff: {initial: 1ms, max: 2ms}, on: [connect_failure, timeout, reset, 503]}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`, map[string]string{"B": up.URL}))
	// The gateway had begun the answer: it aborts the connection rather
	// than send another attempt's bytes after the first one's.
	resp, err := h.srv.Client().Get(h.srv.URL + "/x")
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Fatalf("got a complete answer %d %q", resp.StatusCode, b)
		}
	}
	if hits != 1 {
		t.Fatalf("upstream got %d requests, want 1: no retry once bytes went out", hits)
	}
}

// fallbackYAML: catalog's breaker opens after 2 failed calls and stays open;
// its route falls back to a replica, the stale cache, then a static answer.
const fallbackYAML = `
upstreams:
  catalog:
    instances: ["${PRIMARY}"]
    retry: {max_attempts: 1}
    breaker: {window: {type: count, size: 2}, min_calls: 2, failure_rate: 50%, open_for: 1h, max_open_for: 1h}
    outlier: {consecutive_failures: 0}
  replica:
    instances: ["${REPLICA}"]
    retry: {max_attempts: 1}
    outlier: {consecutive_failures: 0}
  bare:
    instances: ["${PRIMARY}"]
    retry: {max_attempts: 1}
    breaker: {window: {type: count, size: 2}, min_calls: 2, failure_rate: 50%, open_for: 30s}
    outlier: {consecutive_failures: 0}
routes:
  - name: catalog
    match: {path_prefix: /catalog}
    upstream: catalog
    fallback:
      - upstream: replica
      - stale_cache: {ttl: 10s, serve_stale_for: 1h, max_entries: 100}
      - static: {status: 200, headers: {Content-Type: application/json}, body: '{"items":[]}'}
  - name: bare
    match: {path_prefix: /bare}
    upstream: bare
`

func TestFallbackChain(t *testing.T) {
	primary, replica := newBackend(t, "fresh"), newBackend(t, "from replica")
	h := start(t, parse(t, fallbackYAML, map[string]string{"PRIMARY": primary.URL, "REPLICA": replica.URL}))

	resp, body := h.do(t, "GET", "/catalog/1", nil, "")
	if resp.StatusCode != 200 || body != "fresh" || resp.Header.Get("Spillway-Fallback") != "" {
		t.Fatalf("healthy: got %d %q", resp.StatusCode, body)
	}
	primary.status.Store(500)
	for i := range 2 { // the failures that open the breaker: each answered by the replica
		resp, body = h.do(t, "GET", "/catalog/2", nil, "")
		if resp.StatusCode != 200 || body != "from replica" || resp.Header.Get("Spillway-Fallback") != "replica" {
			t.Fatalf("failure %d: got %d %q %q, want the replica's answer", i, resp.StatusCode, body, resp.Header.Get("Spillway-Fallback"))
		}
	}
	if st := h.gw.Status().Upstreams["catalog"].Breaker.State; st != "open" {
		t.Fatalf("catalog breaker %s, want open", st)
	}
	hits := primary.hits.Load()
	replica.status.Store(503)

	resp, body = h.do(t, "GET", "/catalog/1", nil, "")
	if resp.StatusCode != 200 || body != "fresh" || resp.Header.Get("Spillway-Fallback") != "stale-cache" ||
		resp.Header.Get("Age") != "0" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("stale: got %d %q headers %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = h.do(t, "GET", "/catalog/uncached", nil, "")
	if resp.StatusCode != 200 || body != `{"items":[]}` || resp.Header.Get("Spillway-Fallback") != "static" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("static: got %d %q headers %v", resp.StatusCode, body, resp.Header)
	}
	if primary.hits.Load() != hits {
		t.Fatalf("the open breaker let %d requests through", primary.hits.Load()-hits)
	}

	// Without a fallback chain: the 5xx passes through until the breaker
	// opens, then the brief's error answer.
	for range 2 {
		if resp, _ := h.do(t, "GET", "/bare", nil, ""); resp.StatusCode != 500 {
			t.Fatalf("bare: got %d, want the upstream's 500", resp.StatusCode)
		}
	}
	resp, body = h.do(t, "GET", "/bare", nil, "")
	want := httptest.NewRecorder()
	spillwayhttp.WriteError(want, &spillway.Error{Code: spillway.ReasonBreakerOpen, RetryAfter: 30 * time.Second}, "bare")
	if resp.StatusCode != 503 || body != want.Body.String() || resp.Header.Get("Spillway-Reason") != "breaker_open" ||
		resp.Header.Get("Retry-After") != "30" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("error answer: got %d %q headers %v\nwant %q", resp.StatusCode, body, resp.Header, want.Body.String())
	}
	var e struct {
		Error struct {
			Reason     string `json:"reason"`
			Upstream   string `json:"upstream"`
			RetryAfter int    `json:"retry_after_seconds"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Reason != "breaker_open" || e.Error.Upstream != "bare" || e.Error.RetryAfter != 30 {
		t.Fatalf("body %s: %+v %v", body, e, err)
	}
}

func TestStaleCacheRespectsNoStoreAndVary(t *testing.T) {
	var mode string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode {
		case "down":
			w.WriteHeader(503)
			return
		case "no-store":
			w.Header().Set("Cache-Control", "no-store")
		case "vary":
			w.Header().Set("Vary", "Accept-Language")
		}
		_, _ = io.WriteString(w, mode+":"+r.Header.Get("Accept-Language"))
	}))
	defer up.Close()
	h := start(t, parse(t, `
upstreams:
  svc: {instances: ["${B}"], retry: {max_attempts: 1}}
routes:
  - name: svc
    match: {path_prefix: /}
    upstream: svc
    fallback:
      - stale_cache: {ttl: 1s, serve_stale_for: 1h, max_entries: 10}
`, map[string]string{"B": up.URL}))
	mode = "no-store"
	h.do(t, "GET", "/ns", nil, "")
	mode = "vary"
	h.do(t, "GET", "/v", map[string]string{"Accept-Language": "fr"}, "")
	h.do(t, "GET", "/auth", map[string]string{"Authorization": "Bearer x"}, "")
	mode = "down"
	if resp, _ := h.do(t, "GET", "/ns", nil, ""); resp.StatusCode != 503 || resp.Header.Get("Spillway-Reason") != "upstream_error" {
		t.Errorf("no-store answer was served from the cache: %d", resp.StatusCode)
	}
	if resp, _ := h.do(t, "GET", "/auth", map[string]string{"Authorization": "Bearer x"}, ""); resp.StatusCode != 503 {
		t.Errorf("an answer to an Authorization request was cached")
	}
	if resp, body := h.do(t, "GET", "/v", map[string]string{"Accept-Language": "fr"}, ""); resp.StatusCode != 200 || body != "vary:fr" {
		t.Errorf("vary fr: got %d %q", resp.StatusCode, body)
	}
	if resp, _ := h.do(t, "GET", "/v", map[string]string{"Accept-Language": "de"}, ""); resp.StatusCode != 503 {
		t.Errorf("vary de got fr's answer: %d", resp.StatusCode)
	}
	if resp, _ := h.do(t, "GET", "/v?page=2", map[string]string{"Accept-Language": "fr"}, ""); resp.StatusCode != 503 {
		t.Errorf("another query got the cached answer: %d", resp.StatusCode)
	}
}

func TestOptionalRouteAnswersDefault(t *testing.T) {
	forced, failing := newBackend(t, "recs"), newBackend(t, "")
	failing.status.Store(502)
	h := start(t, parse(t, `
upstreams:
  recs: {instances: ["${A}"], breaker: {mode: forced_open}}
  flaky: {instances: ["${B}"], retry: {max_attempts: 1}}
routes:
  - name: recs
    match: {path_prefix: /recs}
    upstream: recs
    optional: true
    default: {status: 200, headers: {Content-Type: application/json}, body: '[]'}
  - name: flaky
    match: {path_prefix: /flaky}
    upstream: flaky
    optional: true
    default: {body: 'none'}
`, map[string]string{"A": forced.URL, "B": failing.URL}))
	resp, body := h.do(t, "GET", "/recs", nil, "")
	if resp.StatusCode != 200 || body != "[]" || resp.Header.Get("Spillway-Fallback") != "default" || forced.hits.Load() != 0 {
		t.Fatalf("open breaker: got %d %q %v, upstream hits %d", resp.StatusCode, body, resp.Header, forced.hits.Load())
	}
	resp, body = h.do(t, "GET", "/flaky", nil, "")
	if resp.StatusCode != 200 || body != "none" || resp.Header.Get("Spillway-Fallback") != "default" || failing.hits.Load() != 1 {
		t.Fatalf("failing upstream: got %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

// noHealthyYAML: svc's one instance is ejected for an hour by its first
// failure.
const noHealthyYAML = `
upstreams:
  svc:
    instances: ["${B}"]
    retry: {max_attempts: 1}
    outlier: {consecutive_failures: 1, ejection: 1h, max_ejection: 1h, max_ejected: 100%, panic_threshold: 0}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`

func TestNoHealthyInstance(t *testing.T) {
	be := newBackend(t, "")
	be.status.Store(500)
	h := start(t, parse(t, noHealthyYAML, map[string]string{"B": be.URL}))
	if resp, _ := h.do(t, "GET", "/", nil, ""); resp.StatusCode != 500 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	resp, body := h.do(t, "GET", "/", nil, "")
	if resp.StatusCode != 503 || resp.Header.Get("Spillway-Reason") != "no_healthy_instance" || !strings.Contains(body, `"upstream":"svc"`) {
		t.Fatalf("got %d %q %q", resp.StatusCode, resp.Header.Get("Spillway-Reason"), body)
	}
	if be.hits.Load() != 1 {
		t.Fatalf("ejected instance got %d requests", be.hits.Load())
	}
	// The gateway still answers (here a fast 503; a fallback would serve):
	// one upstream down does not take it out of its load balancer...
	if !h.gw.Ready() {
		t.Error("not Ready with one upstream down and no readiness.required_upstreams")
	}
	// ...unless the operator says the upstream is required.
	if err := h.gw.Reload(parse(t, "readiness: {required_upstreams: [svc]}\n"+noHealthyYAML, map[string]string{"B": be.URL})); err != nil {
		t.Fatal(err)
	}
	if h.gw.Ready() {
		t.Error("Ready with a required upstream without a usable instance")
	}
}

func TestHeaders(t *testing.T) {
	be := newBackend(t, "ok")
	h := start(t, parse(t, `
upstreams:
  svc: {instances: ["${B}"], timeouts: {connect: 1s, attempt: 3s, total: 10s}}
routes:
  - {name: short, match: {path_prefix: /short}, upstream: svc, timeout: 2s}
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`, map[string]string{"B": be.URL}))
	resp, _ := h.do(t, "GET", "/x", map[string]string{
		"Connection": "X-Secret", "X-Secret": "s", "Keep-Alive": "timeout=5", "Proxy-Authorization": "Basic x",
		"X-Forwarded-For": "6.6.6.6", "Spillway-Timeout-Ms": "700", "X-Kept": "yes", "Host": "shop.example",
	}, "")
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	r := be.last()
	for _, hop := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization"} {
		if r.Header.Get(hop) != "" {
			t.Errorf("hop-by-hop header %s reached the upstream", hop)
		}
	}
	if r.Header.Get("X-Kept") != "yes" {
		t.Error("end-to-end header dropped")
	}
	if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want the client's address only", got)
	}
	if r.Header.Get("X-Forwarded-Host") != "shop.example" || r.Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("X-Forwarded-Host %q Proto %q", r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"))
	}
	if r.Host != strings.TrimPrefix(be.URL, "http://") {
		t.Errorf("upstream Host %q, want the instance's", r.Host)
	}
	budget := func() int {
		n, err := strconv.Atoi(be.last().Header.Get("Spillway-Timeout-Ms"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := budget(); n <= 0 || n > 700 {
		t.Errorf("propagated budget %d ms, want the client's 700 at most", n)
	}
	h.do(t, "GET", "/x", nil, "")
	if n := budget(); n <= 2000 || n > 3000 {
		t.Errorf("budget %d ms, want the attempt limit 3000", n)
	}
	h.do(t, "GET", "/short", nil, "")
	if n := budget(); n <= 1000 || n > 2000 {
		t.Errorf("budget %d ms, want the route's 2000", n)
	}
	h.do(t, "GET", "/short", map[string]string{"Spillway-Timeout-Ms": "60000"}, "")
	if n := budget(); n > 2000 {
		t.Errorf("budget %d ms: a client's header must not raise the route's limit", n)
	}
}

func TestClientBudgetRunsOut(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	defer close(release)
	h := start(t, parse(t, `
upstreams:
  svc: {instances: ["${B}"]}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`, map[string]string{"B": up.URL}))
	resp, body := h.do(t, "GET", "/", map[string]string{"Spillway-Timeout-Ms": "50"}, "")
	if resp.StatusCode != 504 || resp.Header.Get("Spillway-Reason") != "deadline_exceeded" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if st := h.gw.Status().Upstreams["svc"].Breaker; st.FailureRate != 0 {
		t.Errorf("the client's own budget counted against the upstream: %+v", st)
	}
}

// A full bulkhead is a local rejection: it reaches the fallback chain like an
// open breaker, and without a fallback it is the brief's 503 bulkhead_full.
func TestFullBulkheadReachesTheFallbackChain(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
		io.WriteString(w, "slow")
	}))
	t.Cleanup(slow.Close)
	h := start(t, parse(t, `
upstreams:
  svc:
    instances: ["${S}"]
    bulkhead: {max_concurrent: 1}
    retry: {max_attempts: 1}
routes:
  - name: plain
    match: {path_prefix: /plain}
    upstream: svc
  - name: degraded
    match: {path_prefix: /degraded}
    upstream: svc
    fallback:
      - static: {status: 200, body: 'cached'}
`, map[string]string{"S": slow.URL}))

	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := h.srv.Client().Get(h.srv.URL + "/plain/first")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for hits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first request never reached the upstream")
		}
		time.Sleep(time.Millisecond)
	}

	resp, body := h.do(t, "GET", "/plain/second", nil, "")
	if resp.StatusCode != 503 || resp.Header.Get("Spillway-Reason") != "bulkhead_full" || !strings.Contains(body, `"reason":"bulkhead_full"`) {
		t.Errorf("without a fallback: %d %q %q", resp.StatusCode, resp.Header.Get("Spillway-Reason"), body)
	}
	resp, body = h.do(t, "GET", "/degraded/x", nil, "")
	if resp.StatusCode != 200 || body != "cached" || resp.Header.Get("Spillway-Fallback") != "static" {
		t.Errorf("with a static fallback: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the upstream saw %d requests while its bulkhead was full, want 1", n)
	}
	close(release)
	<-done
}

// The gateway's own breaker opening reaches the operational log at Warn.
func TestBreakerOpeningIsLoggedAtWarn(t *testing.T) {
	primary := newBackend(t, "fresh")
	primary.status.Store(500)
	logs := &spillwaytest.Buffer{}
	g, err := gateway.New(parse(t, fallbackYAML, map[string]string{"PRIMARY": primary.URL, "REPLICA": primary.URL}),
		gateway.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for range 2 {
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/bare", nil))
	}
	if st := g.Status().Upstreams["bare"].Breaker.State; st != "open" {
		t.Fatalf("breaker %s, want open", st)
	}
	if want := `level=WARN msg="gateway: breaker open" upstream=bare from=closed to=open`; !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs)
	}
}
