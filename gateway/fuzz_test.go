package gateway_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
)

// fuzzConfig strips /s and forwards the rest as is, to an instance that
// Options.Base answers for (nothing is dialed).
const fuzzConfig = `upstreams:
  app:
    instances: ["http://fuzz.invalid"]
    retry: {max_attempts: 1}
routes:
  - {name: s, match: {path_prefix: /s}, strip_prefix: true, upstream: app}
  - {name: buffered, match: {path_prefix: /buffered}, upstream: app, max_body: 16, buffer_body: true}
  - {name: cut, match: {path_prefix: /cut}, upstream: app, max_body: 16}
  - {name: all, match: {path_prefix: /}, upstream: app}
`

// fuzzMaxBody is the max_body of the routes /buffered and /cut.
const fuzzMaxBody = 16

// forwarded is a request as the gateway sent it to the upstream.
type forwarded struct {
	method, path string
	header       http.Header
	// body is how many bytes of the body the upstream read; cut, whether
	// reading it failed (the gateway cut it).
	body int64
	cut  bool
}

// recordingBase is the gateway's Options.Base: it records the requests
// and answers 200 without any network.
type recordingBase struct {
	mu   sync.Mutex
	reqs []forwarded
}

func (b *recordingBase) RoundTrip(r *http.Request) (*http.Response, error) {
	var n int64
	var err error
	if r.Body != nil {
		n, err = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	b.mu.Lock()
	b.reqs = append(b.reqs, forwarded{r.Method, r.URL.Path, r.Header.Clone(), n, err != nil})
	b.mu.Unlock()
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
		Body: http.NoBody, Request: r}, nil
}

func (b *recordingBase) take() []forwarded {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.reqs
	b.reqs = nil
	return r
}

// fuzzSeeds are connections the attacks of issue 9 make, and good ones.
var fuzzSeeds = []string{
	"GET /s/a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n23\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n",
	"GET /first HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding:\tCHUNKED\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /x HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabcGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /s/..;/admin HTTP/1.1\r\nHost: a\r\n\r\nGET /s/..%5Cadmin HTTP/1.1\r\nHost: a\r\n\r\nGET /s/%252e%252e/admin HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /s//evil.example/x HTTP/1.1\r\nHost: a\r\n\r\nGET //evil.example/x HTTP/1.1\r\nHost: a\r\n\r\nGET /s/%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /s/a\\b HTTP/1.1\r\nHost: a\r\n\r\nGET /s/a%00b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /h HTTP/1.1\r\nHost: a\r\nX-Real-IP: 10.0.0.1\r\nTrue-Client-IP: 10.0.0.2\r\nX-Original-URL: /admin\r\nX-Forwarded-Prefix: /admin\r\nX_Real_IP: 1\r\n\r\n",
	"POST /k HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k1\r\nConnection: Idempotency-Key, keep-alive\r\nContent-Length: 2\r\n\r\nhi" +
		"POST /k HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k2\r\nConnection: idempotency-key\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
	// Targets the screen refuses: CONNECT, absolute-form, asterisk-form,
	// dot segments.
	"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
	"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://evil.example/x HTTP/1.1\r\nHost: a\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nGET /a/../admin HTTP/1.1\r\nHost: a\r\n\r\n",
	// Bodies over a route's max_body: announced, and chunked with and
	// without buffer_body.
	"POST /buffered HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n0123456789abcdefg" +
		"POST /buffered HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n0123456789abcdefg\r\n0\r\n\r\n" +
		"POST /buffered HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
	"POST /cut HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n9\r\n89abcdefg\r\n0\r\n\r\n",
	"GET /big HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 2<<20) + "\r\n\r\n",
}

// FuzzRawRequest feeds raw bytes — one or several HTTP/1.1 requests on one
// connection — to a gateway served as spillway serve does (NewListener and
// ConfigureServer) and checks what reaches the upstream: every request
// forwarded matches, in order, a well-framed request of the connection read
// before any with ambiguous framing; its path has no dot segment, "..;",
// backslash, control character or leading "//", decoded up to three
// times; no client-sent X-Real-IP and the like; its Idempotency-Key is the
// client's.
func FuzzRawRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, c := range smugglingCases {
		f.Add([]byte(c.first + c.raw))
	}
	base := &recordingBase{}
	cfg, _, err := config.Parse("fuzz.yaml", []byte(fuzzConfig), nil)
	if err != nil {
		f.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Base: base, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	// open counts the server's connections not yet closed: once it is 0,
	// every request of the connection is done with.
	var open atomic.Int64
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 5 * time.Second, ErrorLog: discardLog(),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		}}
	gateway.ConfigureServer(srv, gateway.ListenerOptions{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(gateway.NewListener(ln, gateway.ListenerOptions{}))
	}()
	f.Cleanup(func() {
		_ = srv.Close()
		<-done
		g.Close()
	})
	addr := ln.Addr().String()
	f.Fuzz(func(t *testing.T, raw []byte) {
		raw = append(raw[:len(raw):len(raw)], fuzzEnd...)
		sendRaw(t, addr, raw, func() bool { return open.Load() == 0 })
		checkForwarded(t, raw, base.take())
	})
}

// fuzzEnd ends each input: a request that closes the connection, so that
// the server closes it once it read everything before (unless a body
// swallowed it).
const fuzzEnd = "GET /end HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

// sendRaw writes raw on a new connection and reads the answers until the
// server closes the connection or stays silent for 300 ms (a body waiting
// for bytes that will not come); then it closes the connection and waits
// until done reports that the server is done with it.
func sendRaw(t *testing.T, addr string, raw []byte, done func() bool) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// The server may close early (a refused request): write errors are
	// expected then.
	_, _ = c.Write(raw)
	buf := make([]byte, 32<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	c.Close()
	for deadline := time.Now().Add(10 * time.Second); !done(); {
		if time.Now().After(deadline) {
			t.Fatal("the server still serves the connection 10s after it closed")
		}
		time.Sleep(time.Millisecond)
	}
}

// inbound is a well-framed request of the connection, as Go's own parser
// reads it.
type inbound struct {
	method, path, key string
	// target is the request target as written.
	target string
}

// wellFramed reads raw as net/http's server does and returns its requests
// up to the first one whose framing is ambiguous (Content-Length with
// Transfer-Encoding, a transfer coding other than chunked, two
// Content-Length fields, Transfer-Encoding in HTTP/1.0) or unreadable.
func wellFramed(raw []byte) []inbound {
	var out []inbound
	br := bufio.NewReaderSize(bytes.NewReader(raw), 64<<10)
	lastPOST := false
	for {
		if lastPOST {
			// net/http's tolerance of a CRLF after a POST body.
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			_, _ = br.Discard(n)
		}
		head, ok := peekHead(br)
		if !ok || ambiguous(head) {
			return out
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return out
		}
		out = append(out, inbound{req.Method, req.URL.Path, req.Header.Get("Idempotency-Key"), req.RequestURI})
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return out
		}
		lastPOST = req.Method == http.MethodPost
	}
}

// peekHead returns the next request head of br (up to its empty line),
// without consuming it.
func peekHead(br *bufio.Reader) ([]byte, bool) {
	for n := 1; n <= br.Size(); n++ {
		b, err := br.Peek(n)
		if err != nil {
			return nil, false
		}
		if bytes.HasSuffix(b, []byte("\n\r\n")) || bytes.HasSuffix(b, []byte("\n\n")) {
			return b, true
		}
	}
	return nil, false
}

// ambiguous reports whether a head's framing must be refused.
func ambiguous(head []byte) bool {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	line, err := tp.ReadLine()
	if err != nil {
		return true
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return true
	}
	te, cl := h.Values("Transfer-Encoding"), h.Values("Content-Length")
	return len(cl) > 1 || len(te) > 0 && (len(cl) > 0 || len(te) > 1 || te[0] != "chunked" || strings.HasSuffix(line, "HTTP/1.0"))
}

// untrustedNames are headers a client may not set for the upstream.
var untrustedNames = []string{"True-Client-Ip", "X-Client-Ip", "Cf-Connecting-Ip", "X-Original-Url", "X-Rewrite-Url",
	"X-Forwarded-Prefix", "X-Original-Uri", "X_real_ip", "X-Forwarded-Port", "Forwarded"}

func checkForwarded(t *testing.T, raw []byte, fwd []forwarded) {
	in := wellFramed(raw)
	i := 0
	for _, f := range fwd {
		for i < len(in) && !(in[i].method == f.method && sentPath(in[i].path) == f.path) {
			i++
		}
		if i == len(in) {
			t.Fatalf("forwarded %s %q, which is no well-framed request of the connection (those: %+v)", f.method, f.path, in)
		}
		if got := f.header.Get("Idempotency-Key"); got != in[i].key {
			t.Errorf("%s %q forwarded with Idempotency-Key %q, the client sent %q", f.method, f.path, got, in[i].key)
		}
		if in[i].method == http.MethodConnect || !strings.HasPrefix(in[i].target, "/") {
			t.Errorf("forwarded %s %q: the gateway is not a forward proxy", in[i].method, in[i].target)
		}
		checkBody(t, f, in[i].path)
		i++
		if reason := unsafeForwardedPath(f.path); reason != "" {
			t.Errorf("forwarded %q: %s", f.path, reason)
		}
		if v := f.header.Values("X-Real-Ip"); len(v) != 1 || v[0] != "127.0.0.1" {
			t.Errorf("forwarded X-Real-IP %q, want the client's address alone", v)
		}
		for _, name := range untrustedNames {
			if v, ok := f.header[name]; ok {
				t.Errorf("forwarded the client's %s: %q", name, v)
			}
		}
	}
}

// checkBody checks that a body forwarded for a request to path on a
// route with a max_body is within it: whole with buffer_body (/buffered),
// else cut where it passes it (/cut).
func checkBody(t *testing.T, f forwarded, path string) {
	buffered := onRoute(path, "/buffered")
	switch {
	case !buffered && !onRoute(path, "/cut"):
	case f.body > fuzzMaxBody:
		t.Errorf("%s %q: the upstream read %d bytes of the body, over max_body %d", f.method, f.path, f.body, fuzzMaxBody)
	case buffered && f.cut:
		t.Errorf("%s %q: a body cut was forwarded on a buffer_body route", f.method, f.path)
	}
}

// onRoute reports whether path is matched by the path_prefix prefix.
func onRoute(path, prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }

// sentPath is the path the gateway sends for p (the /s route strips /s).
func sentPath(p string) string {
	if p == "/s" || strings.HasPrefix(p, "/s/") {
		if p = strings.TrimPrefix(p, "/s"); p == "" {
			p = "/"
		}
	}
	return p
}

// unsafeForwardedPath says why p could be resolved outside its route by
// an upstream that decodes it up to three times, or "".
func unsafeForwardedPath(p string) string {
	if strings.HasPrefix(p, "//") {
		return "a leading //"
	}
	for range 4 {
		if strings.ContainsAny(p, "\\") {
			return "a backslash"
		}
		if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "a control character"
		}
		for _, seg := range strings.Split(p, "/") {
			if base, _, _ := strings.Cut(seg, ";"); base == "." || base == ".." {
				return fmt.Sprintf("the segment %q", seg)
			}
		}
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			return ""
		}
		p = d
	}
	return ""
}
