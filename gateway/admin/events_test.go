package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
)

// frame is one server-sent event as a client parses it.
type frame struct {
	id, event, data string
}

// sse reads the frames of an event stream, comments skipped.
type sse struct {
	t    *testing.T
	rd   *bufio.Reader
	body io.Closer
}

// next returns the next frame; io.EOF when the stream ended.
func (s *sse) next() (frame, error) {
	var f frame
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			return f, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if f != (frame{}) {
				return f, nil
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			f.id = line[len("id: "):]
		case strings.HasPrefix(line, "event: "):
			f.event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			f.data = line[len("data: "):]
		default:
			s.t.Fatalf("not an SSE line: %q", line)
		}
	}
}

func (s *sse) mustNext() frame {
	s.t.Helper()
	f, err := s.next()
	if err != nil {
		s.t.Fatalf("stream: %v", err)
	}
	return f
}

// eventsServer serves g's admin API on 127.0.0.1 with token "tok".
func eventsServer(t *testing.T, g *gateway.Gateway, o admin.Options) *httptest.Server {
	t.Helper()
	o.Token = "tok"
	srv := httptest.NewServer(admin.Handler(g, o))
	t.Cleanup(srv.Close)
	return srv
}

// subscribe opens GET /api/v1/events (query appended) with the token and
// hdr, and fails the test unless it answers 200 text/event-stream. The
// stream's reads end at the test's 10s deadline.
func subscribe(t *testing.T, srv *httptest.Server, query string, hdr map[string]string) *sse {
	t.Helper()
	resp := get(t, srv, "/api/v1/events"+query, "Bearer tok", hdr)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("events: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return &sse{t: t, rd: bufio.NewReader(resp.Body), body: resp.Body}
}

func get(t *testing.T, srv *httptest.Server, path, auth string, hdr map[string]string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func publish(g *gateway.Gateway, n int) {
	for i := range n {
		g.Events().Publish("test", i)
	}
}

func TestEventsNeedTheToken(t *testing.T) {
	srv := eventsServer(t, newGateway(t, "http://127.0.0.1:1", ""), admin.Options{Now: noDelays()})
	for _, auth := range []string{"", "Bearer wrong"} {
		if resp := get(t, srv, "/api/v1/events", auth, nil); resp.StatusCode != 401 {
			t.Errorf("auth %q: %d, want 401", auth, resp.StatusCode)
		}
	}
	if resp := get(t, srv, "/api/v1/events", "Bearer tok", map[string]string{"Last-Event-ID": "x"}); resp.StatusCode != 400 {
		t.Errorf("Last-Event-ID x: %d, want 400", resp.StatusCode)
	}
}

// An outage that opens the breaker appears on the stream.
func TestEventsStreamABreakerOpening(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }))
	defer up.Close()
	g := newGateway(t, up.URL, "    retry: {max_attempts: 1}\n    breaker: {window: {type: count, size: 2}, min_calls: 2, failure_rate: 50%, open_for: 1h, max_open_for: 1h}\n")
	s := subscribe(t, eventsServer(t, g, admin.Options{}), "", nil)
	for range 2 {
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/app/x", nil))
	}
	f := s.mustNext()
	var e struct {
		ID   uint64               `json:"id"`
		Kind string               `json:"kind"`
		Data gateway.BreakerEvent `json:"data"`
	}
	if err := json.Unmarshal([]byte(f.data), &e); err != nil {
		t.Fatalf("data %q: %v", f.data, err)
	}
	want := gateway.BreakerEvent{Upstream: "app", From: "closed", To: "open"}
	if f.event != "breaker" || e.Kind != "breaker" || e.Data != want || f.id != strconv.FormatUint(e.ID, 10) {
		t.Fatalf("frame %+v, want a breaker event %+v", f, want)
	}
}

// A client that comes back with the id of the last event it got receives
// exactly what it missed, then what follows.
func TestEventsResumeReplaysWhatWasMissed(t *testing.T) {
	g := newGateway(t, "http://127.0.0.1:1", "")
	srv := eventsServer(t, g, admin.Options{})
	publish(g, 5)
	for _, resume := range []struct {
		query string
		hdr   map[string]string
	}{{hdr: map[string]string{"Last-Event-ID": "2"}}, {query: "?last_event_id=2"}} {
		s := subscribe(t, srv, resume.query, resume.hdr)
		for want := uint64(3); want <= g.Events().Last(); want++ {
			if f := s.mustNext(); f.id != strconv.FormatUint(want, 10) || f.event != "test" {
				t.Fatalf("%+v: frame %+v, want id %d", resume, f, want)
			}
		}
		publish(g, 1)
		if f := s.mustNext(); f.id != strconv.FormatUint(g.Events().Last(), 10) {
			t.Fatalf("%+v: frame %+v after a new event, want it", resume, f)
		}
	}
}

// A client that resumes from an id the ring has dropped is told how many
// events it lost, then gets the oldest held.
func TestEventsResumeOlderThanTheRingGetsLost(t *testing.T) {
	g := newGateway(t, "http://127.0.0.1:1", "")
	publish(g, gateway.DefaultEventRing+10)
	s := subscribe(t, eventsServer(t, g, admin.Options{}), "", map[string]string{"Last-Event-ID": "1"})
	if f := s.mustNext(); f.event != "lost" || f.data != `{"lost":9}` || f.id != "10" {
		t.Fatalf("first frame %+v, want 9 lost", f)
	}
	if f := s.mustNext(); f.id != "11" {
		t.Fatalf("second frame %+v, want the oldest held, 11", f)
	}
}

// A client that reads nothing does not slow publishing; when it reads
// again it learns what it lost, and the stream goes on to the newest event.
func TestEventsStalledClientDoesNotBlockPublishing(t *testing.T) {
	g := newGateway(t, "http://127.0.0.1:1", "")
	srv := eventsServer(t, g, admin.Options{})
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(16 << 10) // small buffers: the server blocks writing soon
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "GET /api/v1/events?last_event_id=0 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer tok\r\n\r\n")
	total := 10 * gateway.DefaultEventRing
	done := make(chan struct{})
	go func() {
		defer close(done)
		publish(g, total)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing blocked behind a stalled client")
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Not resp.Body.Close: on a response read by hand it would read to the
	// end of a stream that does not end; conn.Close ends it.
	s := &sse{t: t, rd: bufio.NewReader(resp.Body)}
	var got, lost int
	for last := ""; last != strconv.Itoa(total); {
		f := s.mustNext()
		last = f.id
		if f.event == "lost" {
			var l struct{ Lost int }
			if err := json.Unmarshal([]byte(f.data), &l); err != nil {
				t.Fatal(err)
			}
			lost += l.Lost
			continue
		}
		got++
	}
	if lost == 0 || got+lost != total {
		t.Fatalf("got %d events and %d lost, want some lost and %d in all", got, lost, total)
	}
}

// The stream ends when the listener shuts down (Options.Done) and when the
// gateway closes; an open stream does not hold either up.
func TestEventsEndOnShutdown(t *testing.T) {
	for _, how := range []string{"listener", "gateway"} {
		t.Run(how, func(t *testing.T) {
			g := newGateway(t, "http://127.0.0.1:1", "")
			done := make(chan struct{})
			s := subscribe(t, eventsServer(t, g, admin.Options{Done: done}), "", nil)
			if how == "listener" {
				close(done)
			} else {
				g.Close()
			}
			if _, err := s.next(); err != io.EOF {
				t.Fatalf("after the %s closed: %v, want the stream's end", how, err)
			}
		})
	}
}

func TestEventsBoundTheStreamsOpen(t *testing.T) {
	srv := eventsServer(t, newGateway(t, "http://127.0.0.1:1", ""), admin.Options{MaxStreams: 1})
	s := subscribe(t, srv, "", nil)
	if resp := get(t, srv, "/api/v1/events", "Bearer tok", nil); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second stream: %d, want 503 with Retry-After", resp.StatusCode)
	}
	_ = s.body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for { // the first stream's handler notices its client gone
		resp := get(t, srv, "/api/v1/events", "Bearer tok", nil)
		_ = resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed stream still counts against MaxStreams")
		}
	}
}
