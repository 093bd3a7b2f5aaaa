package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

// TestForwardPassesEarlyHintsOn: a 103 the upstream sends before its
// answer reaches the client as a 103, its Link header with it and not with
// the final answer.
func TestForwardPassesEarlyHintsOn(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "page")
	}))
	t.Cleanup(up.Close)
	h := start(t, parse(t, fmt.Sprintf(appRoute, up.URL), nil))

	var mu sync.Mutex
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		hints = append(hints, fmt.Sprintf("%d %s", code, hdr.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/app/page", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != http.StatusOK || string(body) != "page" {
		t.Fatalf("answer %d %q, want 200 page", resp.StatusCode, body)
	}
	if len(hints) != 1 || hints[0] != "103 </style.css>; rel=preload" {
		t.Errorf("1xx answers seen: %q, want one 103 with the Link", hints)
	}
	if l := resp.Header.Get("Link"); l != "" {
		t.Errorf("the final answer carries the 103's Link %q", l)
	}
}

// TestForwardRequestHead: what the upstream gets of a request's head:
// its own headers, the gateway's X-Forwarded-* and X-Real-Ip instead of
// the client's, "Te: trailers" alone of a Te, no User-Agent when the client
// sent none (not Go's), and a query that does not parse re-encoded.
func TestForwardRequestHead(t *testing.T) {
	var (
		mu     sync.Mutex
		header http.Header
		query  string
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		header, query = r.Header.Clone(), r.URL.RawQuery
		mu.Unlock()
	}))
	t.Cleanup(up.Close)
	h := start(t, parse(t, fmt.Sprintf(appRoute, up.URL), nil))
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/app/x?a=1;b=2&c=%zz&d=4", nil)
	req.Header["User-Agent"] = []string{""} // Go's client then sends none
	req.Header.Set("Te", "deflate, trailers;q=1")
	req.Header.Set("X-Real-Ip", "203.0.113.9")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("Forwarded", "for=203.0.113.9")
	req.Header.Set("Accept", "text/plain")
	req.Header.Add("X-Multi", "1")
	req.Header.Add("X-Multi", "2")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]string{
		"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X-Forwarded-Proto": "http",
		"X-Forwarded-Host": strings.TrimPrefix(h.srv.URL, "http://"), "Te": "trailers", "Accept": "text/plain",
		"Forwarded": "", "User-Agent": "",
	}
	for k, v := range want {
		if g := strings.Join(header[k], ","); g != v {
			t.Errorf("%s: %q, want %q", k, g, v)
		}
	}
	if g := header["X-Multi"]; len(g) != 2 || g[0] != "1" || g[1] != "2" {
		t.Errorf("X-Multi: %q, want both values in order", g)
	}
	// Re-encoded from what parses: a ';' and a bad escape can no longer
	// read one way at the gateway and another at the upstream.
	if query != "d=4" {
		t.Errorf("query sent %q, want d=4", query)
	}
}

// TestForwardTrailers: the upstream's trailers, announced or not, reach
// the client after the body.
func TestForwardTrailers(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "data")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	}))
	t.Cleanup(up.Close)
	h := start(t, parse(t, fmt.Sprintf(appRoute, up.URL), nil))
	resp, err := h.srv.Client().Get(h.srv.URL + "/app/t")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "data" || resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "yes" {
		t.Errorf("body %q, trailers %v; want data, X-Sum 42 and X-Late yes", body, resp.Trailer)
	}
}
