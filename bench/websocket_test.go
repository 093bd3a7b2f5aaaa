package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
)

// The WebSocket comparison (issue 15): a 64-byte message echoed by a
// coder/websocket server on loopback, sent direct or through a Spillway
// gateway (every policy of the brief on the upgrade), or through a bare
// httputil.ReverseProxy (net/http's own upgrade handling: the floor of a
// Go proxy hop), over one connection (Serial: the round trip) and
// over 32 connections at once (Conns32). It reports msgs/s and the p99 of
// the round trips. -count repeats each sub-benchmark in a row; for
// rounds that alternate direct and Spillway, run the binary in a loop:
//
//	go test -c -o ws.test . && for i in 1 2 3 4 5; do
//		./ws.test -test.run='^$' -test.bench=WebSocket -test.benchtime=1s
//	done | tee ws.txt

const wsConfig = `upstreams:
  echo: {instances: ["%s"]}
routes: [{name: echo, match: {path_prefix: /}, upstream: echo}]
`

func newEchoServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil || c.Write(r.Context(), typ, msg) != nil {
				return
			}
		}
	}))
	b.Cleanup(srv.Close)
	return srv
}

func newWSGateway(b *testing.B, upstream string) string {
	cfg, _, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(wsConfig, upstream)), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{AccessLogWriter: io.Discard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	// Served as a handler: past its 101 a tunnel is the same whether the
	// listener follows the request framing or not.
	s := httptest.NewServer(g)
	b.Cleanup(func() {
		g.CloseUpgrades()
		s.Close()
		g.Close()
	})
	return s.URL
}

func BenchmarkWebSocket(b *testing.B) {
	echo := newEchoServer(b)
	target, _ := url.Parse(echo.URL)
	rp := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }})
	b.Cleanup(rp.Close)
	targets := []struct{ name, url string }{{"Direct", echo.URL}, {"ReverseProxy", rp.URL}, {"Spillway", newWSGateway(b, echo.URL)}}
	for _, conns := range []int{1, 32} {
		for _, tg := range targets {
			b.Run(fmt.Sprintf("%s/Conns%d", tg.name, conns), func(b *testing.B) { benchEcho(b, "ws"+tg.url[len("http"):], conns) })
		}
	}
}

// benchEcho sends b.N messages over conns connections, each waiting for
// its echo, and reports msgs/s and the p99 round trip.
func benchEcho(b *testing.B, u string, conns int) {
	ctx := context.Background()
	cs := make([]*websocket.Conn, conns)
	for i := range cs {
		c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		cs[i] = c
	}
	msg := make([]byte, 64)
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, c := range cs {
		n := b.N / conns
		if i < b.N%conns {
			n++
		}
		wg.Go(func() {
			l := make([]time.Duration, 0, n)
			for range n {
				t0 := time.Now()
				if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
					b.Error(err)
					return
				}
				if _, _, err := c.Read(ctx); err != nil {
					b.Error(err)
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}
