package gateway_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// smuggled is a request the upstream must never see.
const smuggled = "GET /app/admin HTTP/1.1\r\nHost: a\r\n\r\n"

// smugglingCases are connections carrying a request that a proxy in front
// could frame otherwise: each must be answered 400, closed, and nothing
// of it or after it forwarded. first, when set, is a request sent and
// answered (200) before raw is sent on the same connection.
var smugglingCases = []struct {
	name, first, raw string
	// goAnswers: the answer is net/http's own (plain text), the request
	// never reaching the gateway's handler.
	goAnswers bool
	// pipelined: raw starts with a good request; it may be answered 200
	// (read alone) or 400 (read with the bad one, which refuses the whole
	// connection).
	pipelined bool
}{
	{name: "CL.TE", raw: "POST /app/a HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG" + smuggled},
	{name: "TE.CL", raw: fmt.Sprintf("POST /app/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)},
	{name: "keep-alive hiding a second request", first: "GET /app/first HTTP/1.1\r\nHost: a\r\n\r\n",
		raw: "POST /app/a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
	// Pipelined behind a good request, the bad one refuses the whole
	// connection: the good one's handler runs once the bad head was read.
	{name: "pipelined behind a good request", raw: "GET /app/first HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /app/a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		pipelined: true},
	{name: "chunked, identity", raw: "POST /app/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, goAnswers: true},
	{name: "two Transfer-Encoding fields", raw: "POST /app/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + smuggled, goAnswers: true},
	{name: "space before the colon", raw: "POST /app/a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled, goAnswers: true},
	{name: "tab before the value", raw: "POST /app/a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n" + smuggled},
	{name: "upper case chunked", raw: "POST /app/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n" + smuggled},
	{name: "obs-fold", raw: "POST /app/a HTTP/1.1\r\nHost: a\r\nX-Pad: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled},
	{name: "Transfer-Encoding in HTTP/1.0", raw: "POST /app/a HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
	{name: "two equal Content-Length fields", raw: "POST /app/a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + smuggled},
	{name: "bare LF", raw: "POST /app/a HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\nhello" + smuggled},
}

// TestSmugglingIsRefusedAndTheConnectionClosed runs each case over a raw
// connection to a real listener, plain and over TLS.
func TestSmugglingIsRefusedAndTheConnectionClosed(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	for _, mode := range []struct {
		name   string
		server *tls.Config
		client *tls.Config
	}{{"plain", nil, nil}, {"tls", serverTLS, clientTLS}} {
		for _, c := range smugglingCases {
			t.Run(mode.name+"/"+c.name, func(t *testing.T) {
				up := newRecordingUpstream(t)
				addr := servePublic(t, parse(t, fmt.Sprintf(appRoute, up.URL), nil), gateway.ListenerOptions{TLSConfig: mode.server})
				var chunks []string
				var wantStatus []int
				var wantPaths []string
				if c.first != "" {
					chunks, wantStatus, wantPaths = append(chunks, c.first), append(wantStatus, 200), append(wantPaths, "/app/first")
				}
				res := rawExchange(t, addr, mode.client, 10*time.Second, append(chunks, c.raw)...)
				if c.pipelined && len(res.status) == 2 {
					wantStatus, wantPaths = append(wantStatus, 200), append(wantPaths, "/app/first")
				}
				wantStatus = append(wantStatus, http.StatusBadRequest)
				if !slices.Equal(res.status, wantStatus) || !res.closed {
					t.Fatalf("answers %v, closed %v; want %v and the connection closed", res.status, res.closed, wantStatus)
				}
				if got := up.paths(); !slices.Equal(got, wantPaths) {
					t.Errorf("the upstream saw %q, want %q", got, wantPaths)
				}
				last := res.resp[len(res.resp)-1]
				if !c.goAnswers && (last.Header.Get(spillwayhttp.ReasonHeader) != gateway.ReasonBadRequest || !last.Close) {
					t.Errorf("answer: %s %v, want Spillway-Reason bad_request and Connection: close", last.Status, last.Header)
				}
			})
		}
	}
}

// TestKeepAliveWithChunkedAndSizedBodiesStillWorks: a well-framed
// connection of several requests goes through, bodies intact.
func TestKeepAliveWithChunkedAndSizedBodiesStillWorks(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	raw := "POST /app/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n" +
		"POST /app/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
		"\r\nGET /app/3 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"PUT /app/4 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\nX-Trailer: 1\r\n\r\n" +
		"POST /app/5 HTTP/1.1\r\nHost: a\r\nContent-Length: " + fmt.Sprint(len(smuggled)) + "\r\nConnection: close\r\n\r\n" + smuggled
	for _, mode := range []struct {
		name           string
		server, client *tls.Config
	}{{"plain", nil, nil}, {"tls", serverTLS, clientTLS}} {
		t.Run(mode.name, func(t *testing.T) {
			up := newRecordingUpstream(t)
			addr := servePublic(t, parse(t, fmt.Sprintf(appRoute, up.URL), nil), gateway.ListenerOptions{TLSConfig: mode.server})
			res := rawExchange(t, addr, mode.client, 10*time.Second, raw)
			if want := []int{200, 200, 200, 200, 200}; !slices.Equal(res.status, want) {
				t.Fatalf("answers %v, want %v", res.status, want)
			}
			var got []string
			for _, r := range up.requests() {
				got = append(got, r.method+" "+r.path+" "+r.body)
			}
			want := []string{"POST /app/1 hello world", "POST /app/2 abc", "GET /app/3 ", "PUT /app/4 xyz", "POST /app/5 " + smuggled}
			if !slices.Equal(got, want) {
				t.Errorf("the upstream saw %q, want %q", got, want)
			}
		})
	}
}

// TestTLSListenerServesHTTP2AndTellsTheUpstreamHTTPS: the listener that
// terminates TLS keeps HTTP/2 working, and the upstream still learns the
// client came over TLS.
func TestTLSListenerServesHTTP2AndTellsTheUpstreamHTTPS(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	up := newRecordingUpstream(t)
	addr := servePublic(t, parse(t, fmt.Sprintf(appRoute, up.URL), nil), gateway.ListenerOptions{TLSConfig: serverTLS})
	for _, h2 := range []bool{true, false} {
		tc := clientTLS.Clone()
		tc.NextProtos = nil
		tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, err := (&http.Client{Transport: tr}).Post("https://"+addr+"/app/x", "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if wantMajor := map[bool]int{true: 2, false: 1}[h2]; resp.StatusCode != 200 || string(b) != "ok" || resp.ProtoMajor != wantMajor {
			t.Errorf("h2 %v: %d %s %q, want 200 over HTTP/%d", h2, resp.StatusCode, resp.Proto, b, wantMajor)
		}
	}
	for i, r := range up.requests() {
		if r.header.Get("X-Forwarded-Proto") != "https" || r.body != "body" {
			t.Errorf("request %d: X-Forwarded-Proto %q, body %q; want https and the body", i, r.header.Get("X-Forwarded-Proto"), r.body)
		}
	}
}
