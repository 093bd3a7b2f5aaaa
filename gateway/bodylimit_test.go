package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// lines is a list of strings, safe for concurrent use.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) add(s string) {
	l.mu.Lock()
	l.l = append(l.l, s)
	l.mu.Unlock()
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.l...)
}

// bodyRecorder is an upstream instance that records the bodies it read:
// their length, the length announced, and how reading them ended; and
// apart, the requests whose body it read whole: those it could act on.
type bodyRecorder struct {
	*httptest.Server
	seen, complete lines
}

func newBodyRecorder(t *testing.T) *bodyRecorder {
	b := &bodyRecorder{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		b.seen.add(fmt.Sprintf("%s read %d, length %d, chunked %v, error %v", r.URL.Path, len(body), r.ContentLength, len(r.TransferEncoding) > 0, err != nil))
		if err == nil {
			b.complete.add(r.URL.Path + " " + string(body))
		}
	}))
	t.Cleanup(b.Close)
	return b
}

// chunked hides the length of a body: the client sends it chunked.
func chunked(n int) io.Reader { return io.MultiReader(strings.NewReader(strings.Repeat("x", n))) }

// TestRouteMaxBody: a route's max_body answers a Content-Length over it
// 413 before anything reaches the upstream; with buffer_body a chunked
// body over it too, and one under it reaches the upstream whole with its
// length; without, a chunked body is cut where it passes the limit.
func TestRouteMaxBody(t *testing.T) {
	up := newBodyRecorder(t)
	h := start(t, parse(t, fmt.Sprintf(`
server: {max_body: 1MiB}
upstreams:
  u: {instances: [%s], retry: {max_attempts: 1}}
routes:
  - {name: buffered, match: {path_prefix: /buffered}, upstream: u, max_body: 64KiB, buffer_body: true}
  - {name: streamed, match: {path_prefix: /streamed}, upstream: u, max_body: 64KiB}
  - {name: server, match: {path_prefix: /server}, upstream: u}
`, up.URL), nil))
	send := func(path string, body io.Reader) (int, string) {
		t.Helper()
		resp, err := h.srv.Client().Post(h.srv.URL+path, "text/plain", body)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Spillway-Reason")
	}
	big := strings.Repeat("x", 100<<10)
	for _, path := range []string{"/buffered", "/streamed"} {
		if code, reason := send(path, strings.NewReader(big)); code != 413 || reason != "body_too_large" {
			t.Errorf("%s, Content-Length over max_body: %d %s, want 413 body_too_large", path, code, reason)
		}
	}
	if code, reason := send("/buffered", chunked(100<<10)); code != 413 || reason != "body_too_large" {
		t.Errorf("/buffered, chunked over max_body: %d %s, want 413 body_too_large", code, reason)
	}
	if got := up.seen.all(); len(got) != 0 {
		t.Fatalf("the upstream received %v: want nothing", got)
	}
	if code, _ := send("/buffered/ok", chunked(60<<10)); code != 200 {
		t.Errorf("/buffered, chunked under max_body: %d", code)
	}
	if code, _ := send("/server", strings.NewReader(big)); code != 200 {
		t.Errorf("/server: a route without max_body has server.max_body: %d", code)
	}
	want := []string{"/buffered/ok read 61440, length 61440, chunked false, error false", "/server read 102400, length 102400, chunked false, error false"}
	if got := up.seen.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the upstream received\n%v\nwant\n%v", got, want)
	}

	// Streamed: the upstream gets the first bytes and a broken body.
	code, reason := send("/streamed/cut", chunked(1<<20))
	if code != 413 || reason != "body_too_large" {
		t.Errorf("/streamed, chunked over max_body: %d %s, want 413 body_too_large", code, reason)
	}
	for deadline := time.Now().Add(5 * time.Second); len(up.seen.all()) < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("the upstream received %v: want the cut body too", up.seen.all())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var n int
	got := up.seen.all()[2]
	if _, err := fmt.Sscanf(got, "/streamed/cut read %d, length -1, chunked true, error true", &n); err != nil || n > 64<<10 {
		t.Errorf("the upstream received %q: want at most 64KiB of a chunked body, then an error", got)
	}
}
