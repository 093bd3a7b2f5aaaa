package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
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

// downable answers "answer <cookie header>" with the headers of the case its
// path names, or 503 once down is set.
type downable struct {
	*httptest.Server
	down atomic.Bool
}

func newDownable(t *testing.T, headers map[string]map[string]string) *downable {
	d := &downable{}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		for k, v := range headers[name] {
			w.Header().Set(k, v)
		}
		_, _ = io.WriteString(w, "answer "+r.Header.Get("Cookie"))
	}))
	t.Cleanup(d.Close)
	return d
}

// TestStaleCacheAndCookies: a request with a cookie is neither stored nor
// answered from the cache, unless each of its cookies is one the route
// ignores (ignore_cookies): then it is treated as one without cookies.
func TestStaleCacheAndCookies(t *testing.T) {
	up := newDownable(t, nil)
	h := start(t, parse(t, `
upstreams:
  svc: {instances: ["${B}"], retry: {max_attempts: 1}}
routes:
  - name: plain
    match: {path_prefix: /plain}
    upstream: svc
    fallback: [stale_cache: {}]
  - name: ign
    match: {path_prefix: /ign}
    upstream: svc
    fallback: [stale_cache: {ignore_cookies: [_ga, _gid]}]
`, map[string]string{"B": up.URL}))
	fill := []struct{ path, cookie string }{
		{"/plain/a", "session=alice"},
		{"/plain/b", ""},
		{"/ign/a", "_ga=GA1.1; _gid=x"},
		{"/ign/b", "_ga=GA1.1; session=alice"},
	}
	for _, f := range fill {
		if resp, _ := h.do(t, "GET", f.path, map[string]string{"Cookie": f.cookie}, ""); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", f.path, resp.StatusCode)
		}
	}
	up.down.Store(true)
	tests := []struct {
		path, cookie string
		want         int
	}{
		{"/plain/a", "session=alice", 503}, // not stored...
		{"/plain/a", "", 503},              // ...for anyone
		{"/plain/b", "", 200},
		{"/plain/b", "session=bob", 503}, // not served to a request with a cookie
		{"/ign/a", "", 200},
		{"/ign/a", "_gid=y", 200},
		{"/ign/a", "_ga=GA1.2; theme=dark", 503},
		{"/ign/b", "", 503},
	}
	for _, tt := range tests {
		resp, body := h.do(t, "GET", tt.path, map[string]string{"Cookie": tt.cookie}, "")
		if resp.StatusCode != tt.want {
			t.Errorf("%s with Cookie %q: got %d %q, want %d", tt.path, tt.cookie, resp.StatusCode, body, tt.want)
		}
		if strings.Contains(body, "alice") {
			t.Errorf("%s with Cookie %q: got alice's answer %q", tt.path, tt.cookie, body)
		}
	}
}

// TestStaleCacheRFC9111Exclusions: what a shared cache that serves its
// entries only stale must not store (RFC 9111 §3, §3.5, §4.2.4, §5.2), and
// what it may.
func TestStaleCacheRFC9111Exclusions(t *testing.T) {
	tests := []struct {
		name   string
		req    map[string]string
		resp   map[string]string
		stored bool
	}{
		{name: "plain", stored: true},
		{name: "public", resp: map[string]string{"Cache-Control": "public, max-age=60"}, stored: true},
		{name: "vary", resp: map[string]string{"Vary": "Accept-Language"}, stored: true},
		{name: "no-store", resp: map[string]string{"Cache-Control": "no-store"}},
		{name: "private", resp: map[string]string{"Cache-Control": "max-age=60, private"}},
		{name: "private-fields", resp: map[string]string{"Cache-Control": `private="X-User"`}},
		{name: "no-cache", resp: map[string]string{"Cache-Control": "no-cache"}},
		{name: "no-cache-fields", resp: map[string]string{"Cache-Control": `no-cache="Set-Cookie"`}},
		{name: "must-revalidate", resp: map[string]string{"Cache-Control": "max-age=60, must-revalidate"}},
		{name: "proxy-revalidate", resp: map[string]string{"Cache-Control": "Proxy-Revalidate"}},
		{name: "s-maxage", resp: map[string]string{"Cache-Control": "public, S-MAXAGE=60"}},
		{name: "set-cookie", resp: map[string]string{"Set-Cookie": "id=1"}},
		{name: "vary-star", resp: map[string]string{"Vary": "*"}},
		{name: "authorization", req: map[string]string{"Authorization": "Bearer x"}},
		{name: "request-no-store", req: map[string]string{"Cache-Control": "no-store"}},
		{name: "cookie", req: map[string]string{"Cookie": "session=x"}},
	}
	headers := map[string]map[string]string{}
	for _, tt := range tests {
		headers[tt.name] = tt.resp
	}
	up := newDownable(t, headers)
	h := start(t, parse(t, `
upstreams:
  svc: {instances: ["${B}"], retry: {max_attempts: 1}}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc, fallback: [stale_cache: {}]}
`, map[string]string{"B": up.URL}))
	for _, tt := range tests {
		if resp, _ := h.do(t, "GET", "/rfc/"+tt.name, tt.req, ""); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", tt.name, resp.StatusCode)
		}
	}
	up.down.Store(true)
	for _, tt := range tests {
		resp, body := h.do(t, "GET", "/rfc/"+tt.name, nil, "")
		if got := resp.Header.Get("Spillway-Fallback") == "stale-cache"; got != tt.stored {
			t.Errorf("%s: served from the cache %v (%d %q), want %v", tt.name, got, resp.StatusCode, body, tt.stored)
		}
	}
}

// TestStaleCacheBoundedByBytes: distinct answers of 100 KiB, 4 MB in all,
// to a cache of max_bytes 1MiB keep what it holds under 1 MiB (at most 10
// such answers are served stale afterwards), as spillway_cache_bytes
// shows; an answer over max_entry_bytes is not stored at all. The second
// route's max_entries still bounds the count.
func TestStaleCacheBoundedByBytes(t *testing.T) {
	const size, n = 100 << 10, 40
	var down atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body := size
		if r.URL.Path == "/bytes/big" {
			body = 200 << 10
		}
		_, _ = io.WriteString(w, strings.Repeat("x", body))
	}))
	t.Cleanup(up.Close)
	h := start(t, parse(t, `
upstreams:
  svc: {instances: ["${B}"], retry: {max_attempts: 1}}
routes:
  - name: bytes
    match: {path_prefix: /bytes}
    upstream: svc
    fallback: [stale_cache: {max_bytes: 1MiB, max_entry_bytes: 128KiB}]
  - name: count
    match: {path_prefix: /count}
    upstream: svc
    fallback: [stale_cache: {max_entries: 5}]
`, map[string]string{"B": up.URL}))
	for i := range n {
		h.do(t, "GET", fmt.Sprintf("/bytes/x?q=%d", i), nil, "")
		h.do(t, "GET", fmt.Sprintf("/count/x?q=%d", i), nil, "")
	}
	h.do(t, "GET", "/bytes/big", nil, "")
	// Each answer is stored before its handler returns, then logged.
	eventually(t, "the access log lines", func() bool { return strings.Count(h.log.String(), "\n") == 2*n+1 })
	held := func(metric, route string) float64 {
		t.Helper()
		mfs, err := h.gw.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if mf.GetName() == metric && m.GetLabel()[0].GetValue() == route {
					return m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no %s{route=%q}", metric, route)
		return 0
	}
	if b := held("spillway_cache_bytes", "bytes"); b > 1<<20 || b < size {
		t.Errorf("spillway_cache_bytes{route=bytes} = %v, want at least one answer and at most 1 MiB", b)
	}
	if e := held("spillway_cache_entries", "count"); e > 5 || e < 1 {
		t.Errorf("spillway_cache_entries{route=count} = %v, want 1 to 5", e)
	}
	if problems, err := testutil.GatherAndLint(h.gw.Registry(), "spillway_cache_bytes", "spillway_cache_entries"); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	down.Store(true)
	served := 0
	for i := range n {
		if resp, _ := h.do(t, "GET", fmt.Sprintf("/bytes/x?q=%d", i), nil, ""); resp.Header.Get("Spillway-Fallback") == "stale-cache" {
			served++
		}
	}
	if served == 0 || served*size > 1<<20 {
		t.Errorf("%d answers of %d bytes served stale, want 1 to %d", served, size, (1<<20)/size)
	}
	if resp, _ := h.do(t, "GET", "/bytes/big", nil, ""); resp.StatusCode != 503 {
		t.Errorf("an answer over max_entry_bytes was stored: %d", resp.StatusCode)
	}
}

// TestReloadKeepsAnUnchangedStaleCache: a reload that keeps a route's
// stale_cache settings (ignore_cookies included) keeps its entries; one
// that changes them starts an empty cache.
func TestReloadKeepsAnUnchangedStaleCache(t *testing.T) {
	up := newDownable(t, nil)
	const yaml = `
upstreams:
  svc: {instances: ["${B}"], retry: {max_attempts: 1}}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc, fallback: [stale_cache: {ignore_cookies: [%s], max_bytes: 2MiB}]}
`
	vars := map[string]string{"B": up.URL}
	h := start(t, parse(t, fmt.Sprintf(yaml, "_ga"), vars))
	h.do(t, "GET", "/x", nil, "")
	eventually(t, "the access log line", func() bool { return strings.Count(h.log.String(), "\n") == 1 })
	up.down.Store(true)
	stale := func() bool {
		resp, _ := h.do(t, "GET", "/x", nil, "")
		return resp.Header.Get("Spillway-Fallback") == "stale-cache"
	}
	if err := h.gw.Reload(parse(t, fmt.Sprintf(yaml, "_ga"), vars)); err != nil {
		t.Fatal(err)
	}
	if !stale() {
		t.Error("unchanged settings: the entry is gone")
	}
	if err := h.gw.Reload(parse(t, fmt.Sprintf(yaml, "_ga, _gid"), vars)); err != nil {
		t.Fatal(err)
	}
	if stale() {
		t.Error("changed ignore_cookies: the old cache was kept")
	}
}
