package gateway_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestRouting(t *testing.T) {
	a, b, c, d, e := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c"), newBackend(t, "d"), newBackend(t, "e")
	cfg := parse(t, `
upstreams:
  a: {instances: ["${A}"]}
  b: {instances: ["${B}"]}
  c: {instances: ["${C}"]}
  d: {instances: ["${D}"]}
  e: {instances: ["${E}"]}
routes:
  - name: by-host
    match: {host: api.example, path_prefix: /catalog}
    upstream: a
  - name: catalog
    match: {path_prefix: /catalog, methods: [GET, HEAD]}
    upstream: b
    strip_prefix: true
  - name: exact
    match: {path: /exact}
    upstream: c
  - name: canary
    match: {path_prefix: /api, headers: {X-Canary: "1"}}
    upstream: d
  - name: api
    match: {path_prefix: /api/}
    upstream: e
`, map[string]string{"A": a.URL, "B": b.URL, "C": c.URL, "D": d.URL, "E": e.URL})
	h := start(t, cfg)
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		want               string // backend body, or "404"
		upstreamPath       string
	}{
		{"host match, port ignored", "GET", "/catalog/x", map[string]string{"Host": "api.example:8080"}, "a", "/catalog/x"},
		{"host match is exact", "GET", "/catalog/x", map[string]string{"Host": "www.api.example"}, "b", "/x"},
		{"prefix itself, stripped to /", "GET", "/catalog", nil, "b", "/"},
		{"prefix segment", "GET", "/catalog/items?q=1", nil, "b", "/items"},
		{"prefix is segment-aware", "GET", "/catalogue", nil, "404", ""},
		{"method not allowed by route", "POST", "/catalog/x", nil, "404", ""},
		{"exact path", "PUT", "/exact", nil, "c", "/exact"},
		{"exact path only", "GET", "/exact/more", nil, "404", ""},
		{"header match", "GET", "/api/v1", map[string]string{"X-Canary": "1"}, "d", "/api/v1"},
		{"header mismatch falls through", "GET", "/api/v1", map[string]string{"X-Canary": "2"}, "e", "/api/v1"},
		{"prefix with trailing slash", "GET", "/api", nil, "404", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.do(t, tc.method, tc.path, tc.hdr, "")
			if tc.want == "404" {
				if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" ||
					body != `{"error":{"reason":"no_route","message":"no route matches the request"}}` {
					t.Fatalf("got %d %q %q, want the no_route answer", resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
				return
			}
			if resp.StatusCode != 200 || body != tc.want {
				t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, tc.want)
			}
			be := map[string]*backend{"a": a, "b": b, "c": c, "d": d, "e": e}[tc.want]
			if got := be.last().URL.Path; got != tc.upstreamPath {
				t.Errorf("upstream saw path %q, want %q", got, tc.upstreamPath)
			}
		})
	}
}

// rawRequest writes a request line by hand, as a proxy client would.
func rawRequest(t *testing.T, addr, text string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestNotAnOpenProxy(t *testing.T) {
	up := newBackend(t, "up")
	victim := newBackend(t, "victim")
	h := start(t, parse(t, `
upstreams:
  up: {instances: ["${UP}"]}
routes:
  - name: all
    match: {path_prefix: /}
    upstream: up
`, map[string]string{"UP": up.URL}))
	addr := strings.TrimPrefix(h.srv.URL, "http://")
	victimHost := strings.TrimPrefix(victim.URL, "http://")
	for _, req := range []string{
		"GET " + victim.URL + "/x HTTP/1.1\r\nHost: " + victimHost + "\r\nConnection: close\r\n\r\n",
		"CONNECT " + victimHost + " HTTP/1.1\r\nHost: " + victimHost + "\r\nConnection: close\r\n\r\n",
		"GET /a/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	} {
		resp := rawRequest(t, addr, req)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Spillway-Reason") != "bad_request" {
			t.Errorf("%q: got %d %q, want 400 bad_request", strings.SplitN(req, "\r", 2)[0], resp.StatusCode, resp.Header.Get("Spillway-Reason"))
		}
	}
	if victim.hits.Load() != 0 || up.hits.Load() != 0 {
		t.Fatalf("victim got %d requests, upstream %d: want none", victim.hits.Load(), up.hits.Load())
	}
	// A Host header naming another server changes nothing: the configured
	// upstream answers.
	resp, body := h.do(t, "GET", "/x", map[string]string{"Host": victimHost}, "")
	if resp.StatusCode != 200 || body != "up" || victim.hits.Load() != 0 {
		t.Fatalf("got %d %q, victim hits %d", resp.StatusCode, body, victim.hits.Load())
	}
}
