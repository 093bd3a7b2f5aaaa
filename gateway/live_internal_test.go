package gateway

import (
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
)

// TestLiveRates: the runtime API's reads give per-second rates over the
// trailing window (here the two seconds since the first read, the gateway
// being younger than the window), and attempt latency quantiles in the
// buckets holding them.
func TestLiveRates(t *testing.T) {
	var status atomic.Int64
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if s := status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
	}))
	defer be.Close()
	g, now := liveGateway(t, be.URL)
	get := func() {
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}

	get() // before the first read: not in the figures
	if u, _ := g.Upstream("u"); u.Live.Rates != nil {
		t.Fatalf("first read: rates %+v, want none", u.Live.Rates)
	}
	if rs := g.Routes(); rs[0].Live != nil {
		t.Fatalf("first read: route live %+v, want none", rs[0].Live)
	}

	for range 6 {
		get()
	}
	status.Store(503)
	for range 4 {
		get() // 503: a failed attempt, the static fallback served
	}
	g.metrics.rejected.WithLabelValues("u", "breaker_open").Add(3)
	// Known latencies: the 10 attempts above are well under 25ms; 98 at
	// 30ms and 2 at 700ms put the median in (25ms, 50ms] and p99 in
	// (500ms, 1s].
	for i := range 100 {
		d := .03
		if i < 2 {
			d = .7
		}
		g.metrics.attemptDur.WithLabelValues("u").Observe(d)
	}
	*now = now.Add(2 * time.Second)
	u, _ := g.Upstream("u")
	r := u.Live.Rates
	if r == nil || r.WindowSeconds != 10 || r.Interval != 2 || r.Attempts != 5 || r.Failures != 2 ||
		r.Rejections["breaker_open"] != 1.5 || len(r.Rejections) != 1 {
		t.Fatalf("rates %+v, want window 10, interval 2, attempts 5/s, failures 2/s, breaker_open 1.5/s", r)
	}
	if r.P50 == nil || *r.P50 <= .025 || *r.P50 > .05 || r.P99 == nil || *r.P99 <= .5 || *r.P99 > 1 {
		t.Fatalf("p50 %v, p99 %v: want in (.025, .05] and (.5, 1]", deref(r.P50), deref(r.P99))
	}
	rr := g.Routes()[0].Live
	if rr == nil || rr.WindowSeconds != 10 || rr.Interval != 2 || rr.Requests != 5 || rr.Fallbacks[FallbackStatic] != 2 {
		t.Fatalf("route live %+v, want requests 5/s, static fallbacks 2/s", rr)
	}

	// Half a second later, one more failed attempt: still from the first
	// read, over 2.5s.
	get()
	*now = now.Add(500 * time.Millisecond)
	u, _ = g.Upstream("u")
	if r := u.Live.Rates; r.Interval != 2.5 || r.Failures != 2 || r.Attempts != 11/2.5 {
		t.Fatalf("2.5s after the first read: %+v", r)
	}
}

// liveGateway is a gateway with upstream u on url, route r with a static
// fallback, and its rates' clock at the returned time.
func liveGateway(t *testing.T, url string) (*Gateway, *time.Time) {
	t.Helper()
	cfg, _, err := config.Parse("t.yaml", []byte(`
upstreams:
  u: {instances: ["`+url+`"], retry: {max_attempts: 1}, breaker: {min_calls: 1000}, outlier: {consecutive_failures: 1000}}
routes:
  - {name: r, match: {path_prefix: /}, upstream: u, fallback: [{static: {body: x}}]}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	now := time.Unix(1000, 0)
	g.metrics.rates.now = func() time.Time { return now }
	return g, &now
}

// TestLiveRatesFixedWindow: the figures cover the trailing ten seconds
// whoever reads and however often. Two gateways get the same traffic (k
// attempts and k requests in second k); one is read by a slow reader every
// 5s, the other by the same slow reader and a fast one every second. At
// every instant both readers read, all three figures are the same, and
// they are those of the last ten seconds, never those since the other
// reader's read.
func TestLiveRatesFixedWindow(t *testing.T) {
	alone, nowA := liveGateway(t, "http://127.0.0.1:1")
	shared, nowS := liveGateway(t, "http://127.0.0.1:1")
	read := func(g *Gateway) (*UpstreamRates, *RouteRates) {
		u, _ := g.Upstream("u")
		return u.Live.Rates, g.Routes()[0].Live
	}
	read(alone)
	read(shared)
	for k := 1; k <= 40; k++ {
		for _, g := range []*Gateway{alone, shared} {
			g.metrics.attempts.WithLabelValues("u", resultSuccess).Add(float64(k))
			g.metrics.requests.WithLabelValues("r", "ok").Add(float64(k))
		}
		*nowA, *nowS = nowA.Add(time.Second), nowS.Add(time.Second)
		fastU, fastR := read(shared) // the fast reader, every second
		if k%5 != 0 {
			continue
		}
		slowU, slowR := read(shared)
		aloneU, aloneR := read(alone)
		span := min(k, 10)
		// Seconds k-span+1 .. k: k+(k-1)+...+(k-span+1) per span seconds.
		want := float64(span*(2*k-span+1)/2) / float64(span)
		for i, r := range []*UpstreamRates{fastU, slowU, aloneU} {
			if r == nil || r.Interval != float64(span) || r.Attempts != want || r.WindowSeconds != 10 {
				t.Fatalf("second %d, upstream reader %d: %+v, want interval %d, attempts %v/s", k, i, r, span, want)
			}
		}
		for i, r := range []*RouteRates{fastR, slowR, aloneR} {
			if r == nil || r.Interval != float64(span) || r.Requests != want {
				t.Fatalf("second %d, route reader %d: %+v, want interval %d, requests %v/s", k, i, r, span, want)
			}
		}
	}
	// The snapshots kept stay within the window's bound.
	for key, ring := range shared.metrics.rates.snap {
		if n := len(ring); n > int(rateWindow/snapshotEvery)+2 {
			t.Errorf("%s keeps %d snapshots", key, n)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestQuantile: linear interpolation inside the bucket, as
// histogram_quantile does; the +Inf bucket answers the highest finite
// bound; nothing counted, no quantile.
func TestQuantile(t *testing.T) {
	bounds := []float64{.1, .2, .4, math.Inf(1)}
	for _, c := range []struct {
		q       float64
		buckets []float64
		want    any
	}{
		{.5, []float64{0, 10, 10, 10}, .15},
		{.25, []float64{10, 10, 10, 10}, .025},
		{.99, []float64{0, 0, 1, 10}, .4},
		{.5, []float64{0, 0, 0, 0}, nil},
	} {
		got := deref(quantile(c.q, bounds, c.buckets))
		if f, ok := got.(float64); ok && math.Abs(f-c.want.(float64)) < 1e-12 {
			continue
		}
		if got != c.want {
			t.Errorf("quantile(%v, %v) = %v, want %v", c.q, c.buckets, got, c.want)
		}
	}
}
