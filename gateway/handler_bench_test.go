package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
)

// memRT answers every request with benchBody from memory: the handler's
// own cost, without the network's.
type memRT struct{}

func (memRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	h := http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"200"}}
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(benchBody)), ContentLength: 200, Request: r, ProtoMajor: 1, ProtoMinor: 1}, nil
}

// discardRW is a ResponseWriter that keeps the status and counts the bytes.
type discardRW struct {
	h    http.Header
	code int
	n    int
}

func (d *discardRW) Header() http.Header         { return d.h }
func (d *discardRW) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
func (d *discardRW) WriteHeader(c int)           { d.code = c }

// benchHandler serves one parsed GET at a time through h, as its server
// would, checking each answer.
func benchHandler(b *testing.B, h http.Handler) {
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: gw.example\r\n\r\n")))
	if err != nil {
		b.Fatal(err)
	}
	req.RemoteAddr = "127.0.0.1:1234"
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	b.ReportAllocs()
	for b.Loop() {
		w := &discardRW{h: make(http.Header, 4)}
		h.ServeHTTP(w, req)
		if w.code != 200 || w.n != 200 {
			b.Fatalf("code %d n %d %v", w.code, w.n, w.h)
		}
	}
}

// BenchmarkHandler measures the gateway's handler alone (every policy of
// bench/gwbench's configuration on, the access log written), the upstream
// answering from memory, beside an httputil.ReverseProxy with a BufferPool
// doing the same: what a request costs the gateway above the network's
// share, which BenchmarkProxy includes.
func BenchmarkHandler(b *testing.B) {
	b.Run("Spillway", func(b *testing.B) {
		cfg, _, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(benchConfig, "127.0.0.1:1")), func(string) (string, bool) { return "", false })
		if err != nil {
			b.Fatal(err)
		}
		g, err := gateway.New(cfg, gateway.Options{AccessLogWriter: io.Discard, Base: memRT{},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		defer g.Close()
		benchHandler(b, g)
	})
	b.Run("ReverseProxy", func(b *testing.B) {
		target, _ := url.Parse("http://127.0.0.1:1")
		rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target); r.SetXForwarded() }, Transport: memRT{}}
		rp.BufferPool = &syncPool{p: sync.Pool{New: func() any { return new([32 << 10]byte) }}}
		benchHandler(b, rp)
	})
}
