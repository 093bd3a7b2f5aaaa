package gateway_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"

	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// recordingUpstream is an upstream instance that records what reaches it.
type recordingUpstream struct {
	*httptest.Server
	status atomic.Int64 // 0: 200
	mu     sync.Mutex
	seen   []seenRequest
}

type seenRequest struct {
	method, path, rawPath string
	header                http.Header
	body                  string
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawPath, r.Header.Clone(), string(b)})
		u.mu.Unlock()
		if s := u.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

func (u *recordingUpstream) paths() []string {
	var ps []string
	for _, r := range u.requests() {
		ps = append(ps, r.path)
	}
	return ps
}

// appRoute is a configuration with the route /app to the instance %s.
const appRoute = `upstreams:
  app: {instances: ["%s"]}
routes:
  - name: app
    match: {path_prefix: /app}
    upstream: app
`

// servePublic serves a gateway of cfg as spillway serve does: through a
// NewListener on 127.0.0.1 and an http.Server set up by ConfigureServer.
// It returns the listener's address.
func servePublic(t *testing.T, cfg *config.Config, o gateway.ListenerOptions) string {
	_, addr := serveGateway(t, cfg, o)
	return addr
}

// serveGateway is servePublic returning the gateway too.
func serveGateway(t *testing.T, cfg *config.Config, o gateway.ListenerOptions) (*gateway.Gateway, string) {
	return serveGatewayWith(t, cfg, o, gateway.Options{})
}

// serveGatewayWith is serveGateway with the gateway's options opts (its
// Logger discards).
func serveGatewayWith(t *testing.T, cfg *config.Config, o gateway.ListenerOptions, opts gateway.Options) (*gateway.Gateway, string) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := gateway.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second, ErrorLog: discardLog()}
	gateway.ConfigureServer(srv, o)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(gateway.NewListener(ln, o))
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
		g.Close()
	})
	return g, ln.Addr().String()
}

// rawResult is what a client writing raw bytes on one connection got: the
// answers in order, and whether the server closed the connection after
// them.
type rawResult struct {
	status []int
	resp   []*http.Response
	closed bool
}

// rawExchange writes each chunk on one new connection to addr (over TLS,
// HTTP/1.1, when tc is set), reading one answer after each chunk but the
// last, then the answers until the server closes the connection or stays
// silent for quiet.
func rawExchange(t *testing.T, addr string, tc *tls.Config, quiet time.Duration, chunks ...string) rawResult {
	t.Helper()
	var c net.Conn
	var err error
	if tc != nil {
		c, err = tls.Dial("tcp", addr, tc)
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var res rawResult
	br := bufio.NewReader(c)
	// read reads one answer; false when there is none.
	read := func() bool {
		_ = c.SetReadDeadline(time.Now().Add(quiet))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			res.closed = !(errors.As(err, &ne) && ne.Timeout())
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res.status = append(res.status, resp.StatusCode)
		res.resp = append(res.resp, resp)
		return true
	}
	for i, chunk := range chunks {
		if _, err := io.WriteString(c, chunk); err != nil {
			t.Fatal(err)
		}
		if i < len(chunks)-1 && !read() {
			return res
		}
	}
	for read() {
	}
	return res
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }

// selfSigned returns a server certificate for 127.0.0.1 and a client
// configuration trusting it.
func selfSigned(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	c := spillwaytest.LoopbackCert(t)
	server = &tls.Config{Certificates: []tls.Certificate{c.TLS()}, MinVersion: tls.VersionTLS12}
	return server, &tls.Config{RootCAs: c.Roots(), NextProtos: []string{"http/1.1"}}
}
