package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// The harness is three pieces on loopback:
//
//	client (spillwayhttp.Transport over a counting base) → toxiproxy → upstream (httptest)
//
// The upstream counts the requests its handlers saw (the attempts that reached
// it) and the state of every connection; the base round tripper counts the
// attempts the client made and the dialer the connections it tried, which is
// what a downstream sees when the proxy refuses every connection.

// upstream is the real HTTP server behind the proxy.
type upstream struct {
	srv      *httptest.Server
	attempts atomic.Int64

	mu     sync.Mutex
	opened int                         // connections accepted so far
	conns  map[net.Conn]http.ConnState // last state of each connection not yet closed
}

// newUpstream starts an upstream on 127.0.0.1:0 serving mux, counting every
// request before mux sees it. It is closed when the test ends.
func newUpstream(t *testing.T, mux *http.ServeMux) *upstream {
	t.Helper()
	u := &upstream{conns: make(map[net.Conn]http.ConnState)}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.attempts.Add(1)
		mux.ServeHTTP(w, r)
	}))
	u.srv.Config.ConnState = u.track
	u.srv.Start()
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) track(c net.Conn, s http.ConnState) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch s {
	case http.StateNew:
		u.opened++
		u.conns[c] = s
	case http.StateClosed, http.StateHijacked:
		delete(u.conns, c)
	default:
		u.conns[c] = s
	}
}

// connections returns how many connections the upstream accepted and how
// many of those are still open, and among them active (serving a request).
func (u *upstream) connections() (opened, open, active int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range u.conns {
		if s == http.StateActive {
			active++
		}
	}
	return u.opened, len(u.conns), active
}

// proxy is an in-process toxiproxy proxy in front of an upstream.
type proxy struct {
	*toxiproxy.Proxy
	addr string // the proxy's listening address, fixed at the first start
}

// newProxy starts a toxiproxy proxy on 127.0.0.1:0 forwarding to target.
// When the test ends it removes every toxic (which interrupts the ones
// holding data, such as slow_close's delay) and stops the proxy, which closes
// every connection it holds, so no toxiproxy goroutine outlives the test.
func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "upstream", "127.0.0.1:0", target)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(func() {
		p.Toxics.ResetToxics(context.Background())
		p.Stop()
	})
	return &proxy{Proxy: p, addr: p.Listen}
}

// toxic adds a toxic given as toxiproxy's JSON, for example
// {"type":"latency","stream":"downstream","attributes":{"latency":300}}.
func (p *proxy) toxic(t *testing.T, spec string) {
	t.Helper()
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
		t.Fatalf("add toxic %s: %v", spec, err)
	}
}

// url returns the address of path through the proxy.
func (p *proxy) url(path string) string { return "http://" + p.addr + path }

// countingBase is the client's base round tripper: a real *http.Transport
// whose attempts and dials are counted.
type countingBase struct {
	*http.Transport
	attempts atomic.Int64
	dials    atomic.Int64
}

func (c *countingBase) RoundTrip(r *http.Request) (*http.Response, error) {
	c.attempts.Add(1)
	return c.Transport.RoundTrip(r)
}

// settings are the policies of one test's downstream. The zero value is
// filled in by newDownstream with short, test-sized limits.
type settings struct {
	maxAttempts int
	attempt     time.Duration // per-attempt timeout; default 100ms
	total       time.Duration // default 5s
	breaker     breaker.Config
	budget      retry.BudgetConfig
	noBreaker   bool // disable the breaker: the budget alone bounds retries
}

// newDownstream builds the downstream's policies: 3 attempts with 1-5ms
// backoff, a breaker that judges from 10 calls and opens for 200ms, a
// bulkhead of 100, and the budget of s.
func newDownstream(t *testing.T, s settings) *spillwayhttp.Downstream {
	t.Helper()
	if s.maxAttempts == 0 {
		s.maxAttempts = 3
	}
	if s.attempt == 0 {
		s.attempt = 100 * time.Millisecond
	}
	if s.total == 0 {
		s.total = 5 * time.Second
	}
	bc := s.breaker
	bc.Name = "upstream"
	if bc.MinCalls == 0 {
		bc.MinCalls = 10
	}
	if bc.WindowSize == 0 {
		bc.WindowSize = 20
	}
	if bc.OpenFor == 0 {
		bc.OpenFor = 200 * time.Millisecond
		bc.MaxOpenFor = 200 * time.Millisecond
	}
	br, err := breaker.New(bc)
	if err != nil {
		t.Fatal(err)
	}
	if s.noBreaker {
		br.Disable()
	}
	budget, err := retry.NewBudget(s.budget)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := retry.New(retry.Config{
		Name:        "upstream",
		MaxAttempts: s.maxAttempts,
		Initial:     time.Millisecond,
		Max:         5 * time.Millisecond,
		Budget:      budget,
	})
	if err != nil {
		t.Fatal(err)
	}
	bh, err := bulkhead.New(bulkhead.Config{Name: "upstream"})
	if err != nil {
		t.Fatal(err)
	}
	return &spillwayhttp.Downstream{
		Breaker:  br,
		Retry:    rp,
		Bulkhead: bh,
		Timeouts: spillwayhttp.Timeouts{
			Connect:        time.Second,
			ResponseHeader: s.attempt,
			BodyIdle:       time.Second,
			Attempt:        s.attempt,
			Total:          s.total,
		},
	}
}

// client is the client side of a test: an *http.Client over a
// spillwayhttp.Transport over a countingBase.
type client struct {
	*http.Client
	base *countingBase
	down *spillwayhttp.Downstream
}

// newClient builds the client with the policies of d for every key. Its idle
// connections are closed when the test ends.
func newClient(t *testing.T, d *spillwayhttp.Downstream) *client {
	t.Helper()
	tr := spillwayhttp.NewBaseTransport(d.Timeouts)
	base := &countingBase{Transport: tr}
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		base.dials.Add(1)
		return dial(ctx, network, addr)
	}
	st, err := spillwayhttp.New(spillwayhttp.Config{
		Base:          base,
		NewDownstream: func(string, spillway.Observer) (*spillwayhttp.Downstream, error) { return d, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{Client: &http.Client{Transport: st}, base: base, down: d}
}

// do sends a request with an optional header (name: value) and returns the
// response with its body read and closed, or the error of the request or of
// the body read.
func (c *client) do(t *testing.T, method, url string, header ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// eventually polls cond every few milliseconds until it holds or the
// deadline passes: the way these tests wait for a state, never a fixed sleep.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
