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
// interval since the previous read, the same figures to a read sooner than
// a second after it, and attempt latency quantiles in the buckets holding
// them.
func TestLiveRates(t *testing.T) {
	var status atomic.Int64
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if s := status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
	}))
	defer be.Close()
	cfg, _, err := config.Parse("t.yaml", []byte(`
upstreams:
  u: {instances: ["`+be.URL+`"], retry: {max_attempts: 1}, breaker: {min_calls: 1000}, outlier: {consecutive_failures: 1000}}
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
	defer g.Close()
	now := time.Unix(1000, 0)
	g.metrics.rates.now = func() time.Time { return now }
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
	now = now.Add(2 * time.Second)
	u, _ := g.Upstream("u")
	r := u.Live.Rates
	if r == nil || r.Interval != 2 || r.Attempts != 5 || r.Failures != 2 || r.Rejections["breaker_open"] != 1.5 ||
		len(r.Rejections) != 1 {
		t.Fatalf("rates %+v, want interval 2, attempts 5/s, failures 2/s, breaker_open 1.5/s", r)
	}
	if r.P50 == nil || *r.P50 <= .025 || *r.P50 > .05 || r.P99 == nil || *r.P99 <= .5 || *r.P99 > 1 {
		t.Fatalf("p50 %v, p99 %v: want in (.025, .05] and (.5, 1]", deref(r.P50), deref(r.P99))
	}
	rr := g.Routes()[0].Live
	if rr == nil || rr.Interval != 2 || rr.Requests != 5 || rr.Fallbacks[FallbackStatic] != 2 {
		t.Fatalf("route live %+v, want requests 5/s, static fallbacks 2/s", rr)
	}

	// Sooner than a second after: the same figures, the reading kept.
	get()
	now = now.Add(500 * time.Millisecond)
	if again, _ := g.Upstream("u"); again.Live.Rates != r {
		t.Fatalf("a read 500ms later: %+v, want the previous figures", again.Live.Rates)
	}
	// Then over the 1.5s since the last reading: one failed attempt, no
	// latency beyond it, no rejection.
	now = now.Add(time.Second)
	u, _ = g.Upstream("u")
	if r := u.Live.Rates; r.Interval != 1.5 || math.Abs(r.Failures-1/1.5) > 1e-12 || r.Attempts != r.Failures || len(r.Rejections) != 0 ||
		r.P50 == nil {
		t.Fatalf("second interval: %+v", r)
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
