package server

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// clTE is a request with Content-Length and Transfer-Encoding hiding a
// second one.
const clTE = "POST /app/a HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /app/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

// rawAnswer writes raw on conn and returns the first answer, and whether
// the server closed the connection after it.
func rawAnswer(t *testing.T, conn net.Conn, raw string) (*http.Response, bool) {
	t.Helper()
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_, err = br.ReadByte()
	return resp, err == io.EOF
}

// TestServeRefusesSmugglingOverPlainAndTLS: spillway serve's public
// listener, plain and with tls:, refuses a CL.TE request and closes.
func TestServeRefusesSmugglingOverPlainAndTLS(t *testing.T) {
	var hits atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer app.Close()
	certFile, keyFile, roots := selfSigned(t, t.TempDir())
	for _, withTLS := range []bool{false, true} {
		cfg := fmt.Sprintf(oneRoute, app.URL)
		if withTLS {
			cfg = fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\n", certFile, keyFile) + cfg
		}
		s := startServe(t, cfg)
		addr := strings.TrimPrefix(s.public, "http://")
		var conn net.Conn
		var err error
		if withTLS {
			conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
		} else {
			conn, err = net.Dial("tcp", addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		resp, closed := rawAnswer(t, conn, clTE)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Spillway-Reason") != "bad_request" || !closed {
			t.Errorf("tls %v: %s %v, closed %v; want 400 bad_request and the connection closed", withTLS, resp.Status, resp.Header, closed)
		}
		if err := s.stop(t); err != nil {
			t.Fatal(err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the upstream saw %d requests, want none", n)
	}
}

// TestServeWriteTimeoutFreesTheUpstreamOfClientsThatNeverRead: with
// server.write_timeout, clients that never read an endless answer hold
// its upstream connection that long, not forever.
func TestServeWriteTimeoutFreesTheUpstreamOfClientsThatNeverRead(t *testing.T) {
	var streaming atomic.Int64
	chunk := []byte(strings.Repeat("x", 32<<10))
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		streaming.Add(1)
		defer streaming.Add(-1)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer app.Close()
	s := startServe(t, strings.Replace(fmt.Sprintf(oneRoute, app.URL), "server:\n", "server:\n  write_timeout: 200ms\n", 1))
	const clients = 4
	for range clients {
		c, err := net.Dial("tcp", strings.TrimPrefix(s.public, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /app/big HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every answer streaming", func() bool { return streaming.Load() == clients })
	eventually(t, "the upstream connections closed", func() bool { return streaming.Load() == 0 })
}

// TestServeAdminAnswersItsOwnHostsOnly: admin.allowed_hosts adds names to
// loopback and the listener's address; any other Host gets 421.
func TestServeAdminAnswersItsOwnHostsOnly(t *testing.T) {
	app := upstream(t, "app")
	s := startServe(t, strings.Replace(fmt.Sprintf(oneRoute, app.URL), "  token: s3cret\n", "  token: s3cret\n  allowed_hosts: [spillway-admin.internal]\n", 1))
	for host, want := range map[string]int{"": 200, "spillway-admin.internal:9901": 200, "localhost": 200, "evil.example": 421} {
		req, err := http.NewRequest(http.MethodGet, s.admin+"/api/v1/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
