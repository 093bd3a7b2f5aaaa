package gateway_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/gateway"
)

// endlessUpstream streams a body until its client goes away, counting the
// responses it is writing.
type endlessUpstream struct {
	*httptest.Server
	streaming atomic.Int64
}

func newEndlessUpstream(t *testing.T) *endlessUpstream {
	t.Helper()
	u := &endlessUpstream{}
	chunk := []byte(strings.Repeat("x", 32<<10))
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		u.streaming.Add(1)
		defer u.streaming.Add(-1)
		for {
			if _, err := w.Write(chunk); err != nil {
				return // the gateway closed the connection
			}
		}
	}))
	t.Cleanup(u.Close)
	return u
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClientsThatNeverReadReleaseTheirUpstreamConnections: clients that
// send a request and never read the (endless) answer stall the gateway's
// writes; after the write timeout the gateway gives up, closing the
// upstream connections, and the bulkhead slots they held go back.
func TestClientsThatNeverReadReleaseTheirUpstreamConnections(t *testing.T) {
	up := newEndlessUpstream(t)
	// A second: long enough to see the slots held, short for a test.
	g, addr := serveGateway(t, parse(t, fmt.Sprintf(appRoute, up.URL), nil), gateway.ListenerOptions{WriteTimeout: time.Second})
	const clients = 5
	for range clients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /app/big HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every client's response streaming", func() bool { return up.streaming.Load() == clients })
	if n := g.Status().Upstreams["app"].InFlight; n != clients {
		t.Errorf("in flight while the bodies stream: %d, want %d", n, clients)
	}
	waitFor(t, "the upstream connections closed", func() bool { return up.streaming.Load() == 0 })
	waitFor(t, "the bulkhead slots released", func() bool { return g.Status().Upstreams["app"].InFlight == 0 })
}

// TestHTTP2StreamsThatNeverReadAreCut: over HTTP/2 a client can stall one
// stream by withholding flow control while its connection reads on; the
// stream's writes are bounded too.
func TestHTTP2StreamsThatNeverReadAreCut(t *testing.T) {
	up := newEndlessUpstream(t)
	serverTLS, clientTLS := selfSigned(t)
	clientTLS.NextProtos = nil
	g, addr := serveGateway(t, parse(t, fmt.Sprintf(appRoute, up.URL), nil),
		gateway.ListenerOptions{TLSConfig: serverTLS, WriteTimeout: 200 * time.Millisecond})
	tr := &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/app/big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s, want HTTP/2", resp.Proto)
	}
	// The body is never read: the stream's window closes.
	waitFor(t, "the upstream connection closed", func() bool { return up.streaming.Load() == 0 })
	waitFor(t, "the bulkhead slot released", func() bool { return g.Status().Upstreams["app"].InFlight == 0 })
}

// TestSlowButSteadyReadersGetTheWholeBody: a write timeout shorter than
// the response does not cut a client that keeps reading, over HTTP/1 and
// HTTP/2. TestWriteTimeoutMovesWithProgress proves the rule in fake time;
// this checks the wiring on real sockets, with a second of margin for a
// reader the scheduler leaves waiting (a 100 ms timeout was cut in CI).
func TestSlowButSteadyReadersGetTheWholeBody(t *testing.T) {
	const size = 12 << 20
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		_, _ = io.CopyN(w, zeros{}, size)
	}))
	defer upstream.Close()
	serverTLS, clientTLS := selfSigned(t)
	clientTLS.NextProtos = nil
	for _, h2 := range []bool{false, true} {
		o := gateway.ListenerOptions{WriteTimeout: time.Second}
		scheme := "http"
		tr := &http.Transport{}
		if h2 {
			o.TLSConfig, scheme = serverTLS, "https"
			tr = &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}
		}
		addr := servePublic(t, parse(t, fmt.Sprintf(appRoute, upstream.URL), nil), o)
		resp, err := (&http.Client{Transport: tr}).Get(scheme + "://" + addr + "/app/big")
		if err != nil {
			t.Fatal(err)
		}
		// 16 KiB every 2 ms: 768 reads over at least 1.5 s, slower than the
		// gateway writes.
		var n int64
		for buf := make([]byte, 16<<10); ; {
			m, err := io.ReadFull(resp.Body, buf)
			n += int64(m)
			if err != nil {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
		if n != size {
			t.Errorf("h2 %v: read %d bytes of %d", h2, n, size)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
