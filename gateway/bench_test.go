package gateway_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
)

// benchBody is the upstream's answer: 200 bytes, as in bench/gwbench.
var benchBody = strings.Repeat("x", 200)

// benchConfig is bench/gwbench's spillway configuration: every policy on
// (retry with budget, breaker, bulkhead, timeouts, outlier ejection), one
// instance at %s.
const benchConfig = `upstreams:
  app:
    instances: [http://%s]
    timeouts: {connect: 1s, attempt: 2s, total: 5s}
    retry:
      max_attempts: 3
      backoff: {initial: 100ms, max: 5s, multiplier: 2, jitter: full}
      budget: {ratio: 0.2, window: 10s, min_per_second: 10}
    breaker:
      window: {type: count, size: 100}
      min_calls: 20
      failure_rate: 50%%
      open_for: 30s
      half_open_probes: 5
    bulkhead: {max_concurrent: 1024, max_waiting: 0, max_wait: 0s}
    outlier: {consecutive_failures: 5, ejection: 30s, max_ejection: 300s, max_ejected: 50%%}
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
`

// failFastConfig is bench/gwbench's fail-fast configuration: the breaker
// stays open for minutes once it opened.
const failFastConfig = `upstreams:
  app:
    instances: [http://%s]
    timeouts: {connect: 1s, attempt: 2s, total: 5s}
    breaker:
      window: {type: count, size: 100}
      min_calls: 20
      failure_rate: 50%%
      open_for: 5m
      max_open_for: 5m
    outlier: {consecutive_failures: 0}
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
`

// benchUpstream is a Go server on loopback answering benchBody.
func benchUpstream(b *testing.B) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, benchBody)
	}))
	b.Cleanup(s.Close)
	return s
}

// benchGateway serves a gateway of configuration tmpl (one instance at
// upstream) on loopback as spillway serve does (NewListener with its
// framing check and write timeout, ConfigureServer), its access log going
// to io.Discard.
func benchGateway(b *testing.B, tmpl, upstream string) (*gateway.Gateway, *httptest.Server) {
	cfg, _, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(tmpl, upstream)), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{
		AccessLogWriter: io.Discard,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	s := httptest.NewUnstartedServer(g)
	o := gateway.ListenerOptions{WriteTimeout: cfg.Server.WriteTimeout}
	s.Listener = gateway.NewListener(s.Listener, o)
	gateway.ConfigureServer(s.Config, o)
	s.Start()
	b.Cleanup(func() {
		s.Close()
		g.Close()
	})
	return g, s
}

// benchServe serves h on loopback.
func benchServe(b *testing.B, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	b.Cleanup(s.Close)
	return s
}

// benchParallelism makes RunParallel use 16 clients per core (32 on two
// cores), keep-alive: the load of wrk -c64 on a two-core box, within reason.
const benchParallelism = 16

// benchGet sends GETs to u from benchParallelism×GOMAXPROCS keep-alive
// clients and checks every answer's status.
func benchGet(b *testing.B, u string, want int) {
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	// One round before the timer, so that the loop measures warm connections.
	resp, err := c.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(u)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				b.Errorf("status %d, want %d", resp.StatusCode, want)
				return
			}
		}
	})
}

// BenchmarkProxy measures a proxied GET of 200 bytes over both hops (client
// to proxy, proxy to upstream, all on loopback, keep-alive): Spillway with
// every policy on, beside a bare httputil.ReverseProxy with a BufferPool, the
// reference of issue 4's throughput target (>= 0.9x). The client, the proxy
// and the upstream share the machine, as in bench/gwbench: compare the
// sub-benchmarks of one run, not runs of different days.
func BenchmarkProxy(b *testing.B) {
	up := benchUpstream(b)
	host := up.Listener.Addr().String()
	b.Run("Spillway", func(b *testing.B) {
		_, s := benchGateway(b, benchConfig, host)
		benchGet(b, s.URL+"/", http.StatusOK)
	})
	b.Run("SpillwayEventStream", func(b *testing.B) {
		g, s := benchGateway(b, benchConfig, host)
		benchSubscribe(b, g)
		benchGet(b, s.URL+"/", http.StatusOK)
	})
	b.Run("SpillwayRateLimited", func(b *testing.B) {
		// Every request admitted: the cost of the client's bucket.
		_, s := benchGateway(b, benchConfig+"    rate_limit: {rate: 1000000000/s}\n", host)
		benchGet(b, s.URL+"/", http.StatusOK)
	})
	b.Run("ReverseProxyPooled", func(b *testing.B) {
		target, _ := url.Parse(up.URL)
		tr := &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024}
		b.Cleanup(tr.CloseIdleConnections)
		rp := &httputil.ReverseProxy{
			Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target); r.SetXForwarded() },
			Transport: tr,
		}
		rp.BufferPool = &syncPool{p: sync.Pool{New: func() any { return new([32 << 10]byte) }}}
		benchGet(b, benchServe(b, rp).URL+"/", http.StatusOK)
	})
}

// syncPool is the BufferPool of the reference proxy (bench/gwbench's).
type syncPool struct{ p sync.Pool }

func (s *syncPool) Get() []byte { return s.p.Get().(*[32 << 10]byte)[:] }

func (s *syncPool) Put(b []byte) {
	if cap(b) >= 32<<10 {
		s.p.Put((*[32 << 10]byte)(b[:32<<10]))
	}
}

// BenchmarkFailFast measures the answers Spillway makes from memory while
// the upstream refuses connections and its breaker is open (503
// breaker_open), beside the upstream's own answer (Upstream, a Go server's
// 200 bytes): issue 4's target is >= 0.8x of the latter.
func BenchmarkFailFast(b *testing.B) {
	for _, stream := range []bool{false, true} {
		name := "Spillway"
		if stream {
			name += "EventStream"
		}
		b.Run(name, func(b *testing.B) { benchFailFast(b, stream) })
	}
	b.Run("SpillwayThrottled", func(b *testing.B) {
		// Every request over the limit: 429 throttled from memory.
		_, s := benchGateway(b, failFastConfig+"    rate_limit: {rate: 1/h, burst: 1, key: route}\n", benchUpstream(b).Listener.Addr().String())
		resp, err := s.Client().Get(s.URL + "/") // the one token
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		benchGet(b, s.URL+"/", http.StatusTooManyRequests)
	})
	b.Run("Upstream", func(b *testing.B) {
		benchGet(b, benchUpstream(b).URL+"/", http.StatusOK)
	})
}

// benchFailFast is BenchmarkFailFast's Spillway, with an event stream
// attached when stream is set (the rejections it publishes, sampled).
func benchFailFast(b *testing.B, stream bool) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there: every dial is refused
	g, s := benchGateway(b, failFastConfig, dead)
	if stream {
		benchSubscribe(b, g)
	}
	c := s.Client()
	for i := 0; g.Status().Upstreams["app"].Breaker.State != "open"; i++ {
		if i == 1000 {
			b.Fatal("the breaker did not open")
		}
		resp, err := c.Get(s.URL + "/")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	benchGet(b, s.URL+"/", http.StatusServiceUnavailable)
}

// benchSubscribe attaches a client of g's event stream (GET
// /api/v1/events on its admin API) that reads until the benchmark ends.
func benchSubscribe(b *testing.B, g *gateway.Gateway) {
	s := benchServe(b, admin.Handler(g, admin.Options{Token: "t"}))
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := s.Client().Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("event stream: %v %v", resp, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	b.Cleanup(func() {
		_ = resp.Body.Close()
		<-done
	})
}
