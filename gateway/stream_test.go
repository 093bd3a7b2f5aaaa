package gateway_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sseUpstream sends one server-sent event, then waits for the test's
// signal (next) before the second and the end of the stream; after fail is
// set it answers 503.
type sseUpstream struct {
	*httptest.Server
	next chan struct{}
	fail atomic.Bool
}

func newSSEUpstream(t *testing.T) *sseUpstream {
	t.Helper()
	s := &sseUpstream{next: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		_, _ = io.WriteString(w, "data: one\n\n")
		_ = rc.Flush()
		select {
		case <-s.next:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	t.Cleanup(s.Close)
	return s
}

const sseRoute = `upstreams:
  events: {instances: ["${U}"], retry: {max_attempts: 1}, breaker: {mode: disabled}}
routes:
  - name: events
    match: {path_prefix: /events}
    upstream: events
    fallback:
      - stale_cache: {}
`

// TestStreamFlushedAsItArrives: a server-sent event reaches the client
// while its upstream is still sending the stream (the upstream waits for
// the test before it sends more); and the stream is never served from the
// stale cache afterwards.
func TestStreamFlushedAsItArrives(t *testing.T) {
	up := newSSEUpstream(t)
	h := start(t, parse(t, sseRoute, map[string]string{"U": up.URL}))
	resp, err := h.srv.Client().Get(h.srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q, %v", line, err)
	}
	close(up.next) // only now may the stream go on
	rest, err := io.ReadAll(br)
	if err != nil || !strings.Contains(string(rest), "data: two") {
		t.Fatalf("rest of the stream: %q, %v", rest, err)
	}

	up.fail.Store(true)
	resp2, body := h.do(t, http.MethodGet, "/events", nil, "")
	if resp2.StatusCode != http.StatusServiceUnavailable || resp2.Header.Get("Spillway-Fallback") != "" {
		t.Fatalf("after the upstream fails: %d %q fallback %q; want its 503, no stale event stream",
			resp2.StatusCode, body, resp2.Header.Get("Spillway-Fallback"))
	}
}

// TestStreamBodyIdleCutsAQuietStream: timeouts.body_idle ends a stream
// whose upstream sends nothing for that long (here 100ms, the upstream
// holding its second event back); the client's stream ends without it.
func TestStreamBodyIdleCutsAQuietStream(t *testing.T) {
	up := newSSEUpstream(t)
	defer close(up.next)
	cfg := strings.Replace(sseRoute, "breaker: {mode: disabled}}", "breaker: {mode: disabled}, timeouts: {body_idle: 100ms}}", 1)
	h := start(t, parse(t, cfg, map[string]string{"U": up.URL}))
	resp, err := h.srv.Client().Get(h.srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(resp.Body)
		done <- string(b)
	}()
	select {
	case got := <-done:
		if !strings.Contains(got, "data: one") || strings.Contains(got, "data: two") {
			t.Errorf("the stream read %q: want the first event and the end", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stream quiet for 10s was not cut by body_idle: 100ms")
	}
}
