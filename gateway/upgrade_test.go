package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/spillway-dev/spillway/gateway"
)

// wsRoute routes /ws to an upstream of one instance, with retries that
// would resend a 503; %s: the instance, then the route's extra keys.
const wsRoute = `upstreams:
  app:
    instances: ["%s"]
    retry: {max_attempts: 3, backoff: {initial: 1ms, max: 2ms}, on: [connect_failure, "503"]}
    outlier: {consecutive_failures: 0}
routes:
  - name: ws
    match: {path_prefix: /ws}
    upstream: app
%s`

// echoServer is a WebSocket upstream that echoes every message; hits
// counts the upgrade requests it saw, closes receives how each connection
// ended for it: the close frame it received, or -1 without one.
type echoServer struct {
	*httptest.Server
	hits   atomic.Int64
	refuse atomic.Int64 // a status answered instead of the upgrade
	closes chan websocket.CloseError
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	e := &echoServer{closes: make(chan websocket.CloseError, 16)}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		if s := e.refuse.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				ce := websocket.CloseError{Code: -1}
				asCloseError(err, &ce)
				e.closes <- ce
				return
			}
			if c.Write(r.Context(), typ, msg) != nil {
				return
			}
		}
	}))
	t.Cleanup(e.Close)
	return e
}

// startWS serves a gateway of wsRoute over e, as spillway serve does.
func startWS(t *testing.T, e *echoServer, extra string) (*gateway.Gateway, string) {
	t.Helper()
	return serveGateway(t, parse(t, fmt.Sprintf(wsRoute, e.URL, extra), nil), gateway.ListenerOptions{})
}

func dialWS(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws/echo", nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(1 << 20)
	return c
}

// TestWebSocketEcho: messages go both ways through the gateway, a large
// one included, and the connection closes cleanly.
func TestWebSocketEcho(t *testing.T) {
	e := newEchoServer(t)
	_, addr := startWS(t, e, "")
	c := dialWS(t, addr)
	for _, msg := range []string{"hello", strings.Repeat("x", 200<<10), "bye"} {
		echo(t, c, msg)
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
}

// echo sends msg on c and checks that it comes back.
func echo(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != msg {
		t.Fatalf("echo: %d bytes, %v; want %d bytes", len(got), err, len(msg))
	}
}

// TestUpgradeRefusedByTheBreaker: an open breaker refuses the upgrade with
// the usual error answer; the upstream never sees it.
func TestUpgradeRefusedByTheBreaker(t *testing.T) {
	e := newEchoServer(t)
	cfg := parse(t, fmt.Sprintf(strings.Replace(wsRoute, "    outlier:", "    breaker: {mode: forced_open}\n    outlier:", 1), e.URL, ""), nil)
	_, addr := serveGateway(t, cfg, gateway.ListenerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws/echo", nil)
	if err == nil {
		c.CloseNow()
		t.Fatal("upgraded through an open breaker")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Spillway-Reason") != "breaker_open" {
		t.Fatalf("answer %v, want 503 breaker_open", resp)
	}
	if n := e.hits.Load(); n != 0 {
		t.Errorf("the upstream saw %d upgrade requests", n)
	}
}

// TestUpgradeNeverRetried: an upgrade the upstream refuses with a status
// retry.on lists is sent once, and its answer passed on.
func TestUpgradeNeverRetried(t *testing.T) {
	e := newEchoServer(t)
	e.refuse.Store(http.StatusServiceUnavailable)
	_, addr := startWS(t, e, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws/echo", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial: %v, %v; want the upstream's 503", err, resp)
	}
	if n := e.hits.Load(); n != 1 {
		t.Errorf("the upstream saw %d upgrade requests, want 1", n)
	}
}

// TestUpgradeHoldsItsBulkheadSlot: an open WebSocket is in flight at its
// upstream until it closes; with a bulkhead of one, a second upgrade is
// refused meanwhile (503 bulkhead_full) and admitted afterwards.
func TestUpgradeHoldsItsBulkheadSlot(t *testing.T) {
	e := newEchoServer(t)
	cfg := parse(t, fmt.Sprintf(strings.Replace(wsRoute, "    outlier:", "    bulkhead: {max_concurrent: 1}\n    outlier:", 1), e.URL, ""), nil)
	g, addr := serveGateway(t, cfg, gateway.ListenerOptions{})
	c := dialWS(t, addr)
	if n := g.Status().Upstreams["app"].InFlight; n != 1 {
		t.Fatalf("in_flight %d while open, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws/echo", nil); err == nil ||
		resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Spillway-Reason") != "bulkhead_full" {
		t.Fatalf("second upgrade: %v, %v; want 503 bulkhead_full", resp, err)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "in_flight back to 0", func() bool { return g.Status().Upstreams["app"].InFlight == 0 })
	echo(t, dialWS(t, addr), "again")
}

// readClose reads from c until it fails, and returns the close status and
// reason it failed with.
func readClose(t *testing.T, c *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			var ce websocket.CloseError
			if !asCloseError(err, &ce) {
				t.Fatalf("read: %v, want a close frame", err)
			}
			return ce.Code, ce.Reason
		}
	}
}

func asCloseError(err error, ce *websocket.CloseError) bool {
	if websocket.CloseStatus(err) == -1 {
		return false
	}
	for e := err; e != nil; {
		if c, ok := e.(websocket.CloseError); ok {
			*ce = c
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// TestUpgradeLimitsClose: the gateway closes an idle WebSocket, and one
// past its lifetime, with a close frame 1001 naming why.
func TestUpgradeLimitsClose(t *testing.T) {
	for _, tc := range []struct{ keys, reason string }{
		{"    upgrade: {idle_timeout: 50ms}\n", "idle timeout"},
		{"    upgrade: {idle_timeout: 0, max_lifetime: 50ms}\n", "max lifetime"},
	} {
		e := newEchoServer(t)
		g, addr := startWS(t, e, tc.keys)
		c := dialWS(t, addr)
		if code, reason := readClose(t, c); code != websocket.StatusGoingAway || reason != tc.reason {
			t.Errorf("%s: closed with %d %q, want 1001 %q", tc.keys, code, reason, tc.reason)
		}
		waitFor(t, "in_flight back to 0", func() bool { return g.Status().Upstreams["app"].InFlight == 0 })
	}
}

// TestUpgradeClosedOnShutdown: the gateway's shutdown closes its
// WebSockets with 1001 going away, and refuses new upgrades.
func TestUpgradeClosedOnShutdown(t *testing.T) {
	e := newEchoServer(t)
	g, addr := startWS(t, e, "")
	c := dialWS(t, addr)
	echo(t, c, "ping") // the tunnel is open both ways
	done := make(chan struct{})
	go func() { defer close(done); g.CloseUpgrades() }()
	if code, reason := readClose(t, c); code != websocket.StatusGoingAway || reason != "gateway shutting down" {
		t.Errorf("closed with %d %q, want 1001 going away", code, reason)
	}
	<-done
}

// TestUpgradeFraming: an upgrade request with a body, or with
// Content-Length and Transfer-Encoding, is refused with 400 before any
// upstream sees it; a protocol the route does not allow is dropped and the
// request proxied as an ordinary one.
func TestUpgradeFraming(t *testing.T) {
	e := newEchoServer(t)
	_, addr := startWS(t, e, "")
	const head = "GET /ws/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, raw := range []string{
		head + "Content-Length: 5\r\n\r\nhello",
		head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		head + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		if status := rawStatus(t, addr, raw); status != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", raw, status)
		}
	}
	if n := e.hits.Load(); n != 0 {
		t.Errorf("the upstream saw %d of them", n)
	}
	// Upgrade: foo is not allowed: the echo server sees no upgrade and
	// refuses the WebSocket handshake itself (426 Upgrade Required).
	status := rawStatus(t, addr, strings.Replace(head, "Upgrade: websocket", "Upgrade: foo", 1)+"\r\n")
	if status != http.StatusUpgradeRequired || e.hits.Load() != 1 {
		t.Errorf("Upgrade: foo: %d after %d upstream hits, want the upstream's 426", status, e.hits.Load())
	}
}

// rawStatus sends raw on a new connection to addr and returns the status
// of the answer.
func rawStatus(t *testing.T, addr, raw string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestUpgradedConnectionIsNotFramedAsHTTP: past the 101 the framing check
// stops following the connection. A message whose bytes read as a request
// head with a transfer coding the check withholds (sent masked with a zero
// key, so that they cross the wire as written) is echoed, not cut off.
func TestUpgradedConnectionIsNotFramedAsHTTP(t *testing.T) {
	e := newEchoServer(t)
	_, addr := startWS(t, e, "")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	const head = "GET /ws/echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	payload := "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
	frame := append([]byte{0x81, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2+len(payload))
	if _, err := io.ReadFull(br, got); err != nil || string(got[2:]) != payload {
		t.Fatalf("echo: %q, %v; want the payload back", got, err)
	}
}
