package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// personal is an upstream that answers /c/me with the data of the session
// its cookie names; a request without a cookie it answers only when the
// gateway gives up (a slow answer), or at once with 503 when down is set.
type personal struct {
	*httptest.Server
	down atomic.Bool
}

func newPersonal(t *testing.T) *personal {
	p := &personal{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		c, err := r.Cookie("session")
		if err != nil {
			<-r.Context().Done()
			return
		}
		_, _ = io.WriteString(w, "private data of "+c.Value)
	}))
	t.Cleanup(p.Close)
	return p
}

// TestClientBudgetDoesNotServeAnotherUsersCachedAnswer is the issue's
// repro: alice's answer to /c/me, then anyone's request with a budget of
// 1 ms, which fails on that budget. It must get 504 deadline_exceeded, not
// alice's data from the stale cache.
func TestClientBudgetDoesNotServeAnotherUsersCachedAnswer(t *testing.T) {
	up := newPersonal(t)
	h := start(t, parse(t, `
upstreams:
  svc: {instances: ["${B}"], retry: {max_attempts: 1}}
routes:
  - name: c
    match: {path_prefix: /c}
    upstream: svc
    fallback:
      - stale_cache: {}
`, map[string]string{"B": up.URL}))
	if resp, body := h.do(t, "GET", "/c/me", map[string]string{"Cookie": "session=alice"}, ""); resp.StatusCode != 200 || body != "private data of alice" {
		t.Fatalf("alice: got %d %q", resp.StatusCode, body)
	}
	resp, body := h.do(t, "GET", "/c/me", map[string]string{"Spillway-Timeout-Ms": "1"}, "")
	if resp.StatusCode != 504 || resp.Header.Get("Spillway-Reason") != "deadline_exceeded" ||
		resp.Header.Get("Spillway-Fallback") != "" || strings.Contains(body, "alice") {
		t.Fatalf("anyone with a 1 ms budget: got %d %q fallback %q, want 504 deadline_exceeded",
			resp.StatusCode, body, resp.Header.Get("Spillway-Fallback"))
	}
}

// slowUpstream answers "fresh" until slow is set; then it answers only when
// the gateway gives up on the request.
type slowUpstream struct {
	*httptest.Server
	slow atomic.Bool
}

func newSlowUpstream(t *testing.T) *slowUpstream {
	s := &slowUpstream{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.slow.Load() {
			<-r.Context().Done()
			return
		}
		_, _ = io.WriteString(w, "fresh")
	}))
	t.Cleanup(s.Close)
	return s
}

// TestCallerDeadlineGetsNoFallback: a request that fails on its own
// Spillway-Timeout-Ms budget gets 504 deadline_exceeded from every kind of
// route — never a replica's answer, a stale entry, a static answer or an
// optional route's default. When the route's own limit ends instead, the
// fallback chain answers, whatever budget the client announced.
func TestCallerDeadlineGetsNoFallback(t *testing.T) {
	primary, replica := newSlowUpstream(t), newBackend(t, "from replica")
	h := start(t, parse(t, `
upstreams:
  svc: {instances: ["${P}"], retry: {max_attempts: 1}, breaker: {mode: disabled}}
  replica: {instances: ["${R}"], retry: {max_attempts: 1}}
routes:
  - name: chain
    match: {path_prefix: /chain}
    upstream: svc
    fallback:
      - upstream: replica
      - stale_cache: {}
      - static: {body: static}
  - name: cache
    match: {path_prefix: /cache}
    upstream: svc
    fallback: [stale_cache: {}]
  - name: static
    match: {path_prefix: /static}
    upstream: svc
    fallback: [static: {body: static}]
  - name: optional
    match: {path_prefix: /optional}
    upstream: svc
    optional: true
    default: {body: default}
  - name: own
    match: {path_prefix: /own}
    upstream: svc
    timeout: 50ms
    fallback: [stale_cache: {}, static: {body: static}]
`, map[string]string{"P": primary.URL, "R": replica.URL}))
	for _, p := range []string{"/chain/x", "/cache/x", "/own/x"} {
		if resp, body := h.do(t, "GET", p, nil, ""); resp.StatusCode != 200 || body != "fresh" {
			t.Fatalf("%s: got %d %q", p, resp.StatusCode, body)
		}
	}
	primary.slow.Store(true)
	for _, p := range []string{"/chain/x", "/cache/x", "/static/x", "/optional/x", "/own/x"} {
		resp, body := h.do(t, "GET", p, map[string]string{"Spillway-Timeout-Ms": "1"}, "")
		if resp.StatusCode != 504 || resp.Header.Get("Spillway-Reason") != "deadline_exceeded" || resp.Header.Get("Spillway-Fallback") != "" {
			t.Errorf("%s with a 1 ms budget: got %d %q fallback %q, want 504 deadline_exceeded without fallback",
				p, resp.StatusCode, body, resp.Header.Get("Spillway-Fallback"))
		}
	}
	if n := replica.hits.Load(); n != 0 {
		t.Errorf("the replica was called %d times for requests whose budget had run out", n)
	}
	// The route's own limit (50ms) ends first: the upstream's failure.
	for _, budget := range []string{"", "60000"} {
		resp, body := h.do(t, "GET", "/own/x", map[string]string{"Spillway-Timeout-Ms": budget}, "")
		if resp.StatusCode != 200 || body != "fresh" || resp.Header.Get("Spillway-Fallback") != "stale-cache" {
			t.Errorf("route limit ended (client budget %q): got %d %q fallback %q, want the stale entry",
				budget, resp.StatusCode, body, resp.Header.Get("Spillway-Fallback"))
		}
	}
}
