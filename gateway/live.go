package gateway

import (
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Live rates: the runtime API's reads turn the gateway's Prometheus
// counters into per-second figures over a fixed trailing window. Each read
// takes the counters now and compares them with a snapshot kept from an
// earlier read, so the figures depend on when they are read, never on who
// read before: two dashboards polling at different cadences see the same
// window. The snapshots are taken lazily on read (at most one a second, no
// goroutine) into a small ring per upstream and route. The proxy path does
// nothing more than feed the collectors it already feeds; only the reads
// take rates.mu.

// rateWindow is the trailing window the live figures cover.
const rateWindow = 10 * time.Second

// snapshotEvery is the shortest spacing of two kept snapshots: with the
// ring trimmed to one snapshot at least rateWindow old, it bounds a key's
// ring to rateWindow/snapshotEvery + 2 entries.
const snapshotEvery = time.Second

// UpstreamRates are an upstream's figures over the trailing window: the
// Interval seconds (at least WindowSeconds once the gateway is that old)
// up to the read.
type UpstreamRates struct {
	// WindowSeconds is the window the figures are meant to cover;
	// Interval the seconds they do cover: from the newest snapshot at
	// least the window old (or the oldest one while the gateway is
	// younger than the window) to the read.
	WindowSeconds float64 `json:"window_seconds"`
	Interval      float64 `json:"interval"`
	// Attempts and Failures are per second; a failure is an attempt whose
	// result (spillway_upstream_attempts_total) is not success.
	Attempts float64 `json:"attempts"`
	Failures float64 `json:"failures"`
	// Rejections are the local refusals per second by reason; a reason
	// with none in the interval is absent.
	Rejections map[string]float64 `json:"rejections"`
	// P50 and P99 are the attempt latency quantiles in seconds, estimated
	// from the histogram's buckets as Prometheus' histogram_quantile does;
	// absent when no attempt ended in the interval.
	P50 *float64 `json:"p50,omitempty"`
	P99 *float64 `json:"p99,omitempty"`
}

// RouteRates are a route's figures over the trailing window, as for
// UpstreamRates.
type RouteRates struct {
	WindowSeconds float64 `json:"window_seconds"`
	Interval      float64 `json:"interval"`
	// Requests are the requests answered per second.
	Requests float64 `json:"requests"`
	// Fallbacks are the degraded answers per second by kind; a kind with
	// none in the interval is absent.
	Fallbacks map[string]float64 `json:"fallbacks"`
}

// counts is one reading of a series group: named counters, and the
// cumulative bucket counts of a histogram (bounds ascending, +Inf last).
type counts struct {
	at      time.Time
	values  map[string]float64
	bounds  []float64
	buckets []float64
}

// rates holds, per key, the snapshots of its counters, oldest first.
type rates struct {
	now  func() time.Time
	mu   sync.Mutex
	snap map[string][]counts
}

func newRates() *rates {
	return &rates{now: time.Now, snap: map[string][]counts{}}
}

// take returns the figures, made by compute from the deltas, between the
// reading cur and key's base snapshot (nil at the first read or when no
// time passed since it), and keeps cur as a snapshot when the newest one
// is at least snapshotEvery old.
func take[T any](r *rates, key string, cur counts, compute func(dt float64, d counts) *T) *T {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur.at = r.now()
	ring := r.snap[key]
	var base counts
	if len(ring) > 0 {
		base = ring[0]
		// The newest snapshot at least the window old; the ones before
		// it are no longer needed by any read from now on.
		for i := len(ring) - 1; i >= 0; i-- {
			if cur.at.Sub(ring[i].at) >= rateWindow {
				base, ring = ring[i], ring[i:]
				break
			}
		}
	}
	if len(ring) == 0 || cur.at.Sub(ring[len(ring)-1].at) >= snapshotEvery {
		ring = append(ring, cur)
	}
	r.snap[key] = ring
	if base.at.IsZero() || !cur.at.After(base.at) {
		return nil
	}
	dt := cur.at.Sub(base.at).Seconds()
	return compute(dt, delta(cur, base))
}

// keep forgets the snapshots of the keys keep reports false for (removed
// upstreams and routes).
func (r *rates) keep(keep func(key string) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.snap {
		if !keep(k) {
			delete(r.snap, k)
		}
	}
}

// delta is cur - prev, a counter that went down (its series was deleted
// and made again) counting from zero.
func delta(cur, prev counts) counts {
	sub := func(c, p float64) float64 {
		if c < p {
			return c
		}
		return c - p
	}
	d := counts{values: map[string]float64{}, bounds: cur.bounds}
	for k, v := range cur.values {
		d.values[k] = sub(v, prev.values[k])
	}
	reset := len(prev.buckets) != len(cur.buckets) ||
		(len(cur.buckets) > 0 && cur.buckets[len(cur.buckets)-1] < prev.buckets[len(prev.buckets)-1])
	for i, v := range cur.buckets {
		if reset {
			d.buckets = append(d.buckets, v)
		} else {
			d.buckets = append(d.buckets, v-prev.buckets[i])
		}
	}
	return d
}

// quantile estimates the q-quantile from cumulative bucket counts, by
// linear interpolation inside the bucket holding it (the lowest bucket
// starts at 0); in the +Inf bucket it is the highest finite bound, as
// histogram_quantile answers. Nil when the buckets count nothing.
func quantile(q float64, bounds, buckets []float64) *float64 {
	if len(buckets) == 0 || buckets[len(buckets)-1] <= 0 {
		return nil
	}
	rank := q * buckets[len(buckets)-1]
	for i, c := range buckets {
		if c < rank {
			continue
		}
		if math.IsInf(bounds[i], 1) {
			v := bounds[len(bounds)-2]
			return &v
		}
		lo, below := 0.0, 0.0
		if i > 0 {
			lo, below = bounds[i-1], buckets[i-1]
		}
		v := lo + (bounds[i]-lo)*(rank-below)/(c-below)
		return &v
	}
	return nil
}

// collect calls fn with the labels and value of each series of c.
func collect(c prometheus.Collector, fn func(labels map[string]string, m *dto.Metric)) {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for pm := range ch {
		var m dto.Metric
		if pm.Write(&m) != nil {
			continue
		}
		l := make(map[string]string, len(m.GetLabel()))
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		fn(l, &m)
	}
}

// upstreamCounts reads the attempts, rejections and attempt durations of
// every upstream: values "attempt:RESULT" and "rejected:REASON".
func (m *metrics) upstreamCounts() map[string]counts {
	out := map[string]counts{}
	get := func(name string) counts {
		c, ok := out[name]
		if !ok {
			c = counts{values: map[string]float64{}}
		}
		return c
	}
	collect(m.attempts, func(l map[string]string, d *dto.Metric) {
		c := get(l["upstream"])
		c.values["attempt:"+l["result"]] += d.GetCounter().GetValue()
		out[l["upstream"]] = c
	})
	collect(m.rejected, func(l map[string]string, d *dto.Metric) {
		c := get(l["upstream"])
		c.values["rejected:"+l["reason"]] += d.GetCounter().GetValue()
		out[l["upstream"]] = c
	})
	collect(m.attemptDur, func(l map[string]string, d *dto.Metric) {
		c := get(l["upstream"])
		c.bounds, c.buckets = nil, nil
		for _, b := range d.GetHistogram().GetBucket() {
			c.bounds = append(c.bounds, b.GetUpperBound())
			c.buckets = append(c.buckets, float64(b.GetCumulativeCount()))
		}
		c.bounds = append(c.bounds, math.Inf(1))
		c.buckets = append(c.buckets, float64(d.GetHistogram().GetSampleCount()))
		out[l["upstream"]] = c
	})
	return out
}

// routeCounts reads the requests and fallbacks of every route: values
// "requests" and "fallback:KIND".
func (m *metrics) routeCounts() map[string]counts {
	out := map[string]counts{}
	add := func(route, key string, v float64) {
		c, ok := out[route]
		if !ok {
			c = counts{values: map[string]float64{}}
			out[route] = c
		}
		c.values[key] += v
	}
	collect(m.requests, func(l map[string]string, d *dto.Metric) {
		add(l["route"], "requests", d.GetCounter().GetValue())
	})
	collect(m.fallbacks, func(l map[string]string, d *dto.Metric) {
		add(l["route"], "fallback:"+l["kind"], d.GetCounter().GetValue())
	})
	return out
}

// upstreamRates returns name's figures from its reading cur.
func (r *rates) upstreamRates(name string, cur counts) *UpstreamRates {
	return take(r, "upstream:"+name, cur, func(dt float64, d counts) *UpstreamRates {
		out := &UpstreamRates{WindowSeconds: rateWindow.Seconds(), Interval: dt, Rejections: map[string]float64{}}
		for k, n := range d.values {
			if result, ok := strings.CutPrefix(k, "attempt:"); ok {
				out.Attempts += n / dt
				if result != resultSuccess {
					out.Failures += n / dt
				}
			} else if reason, ok := strings.CutPrefix(k, "rejected:"); ok && n > 0 {
				out.Rejections[reason] = n / dt
			}
		}
		out.P50 = quantile(.5, d.bounds, d.buckets)
		out.P99 = quantile(.99, d.bounds, d.buckets)
		return out
	})
}

// routeRates returns name's figures from its reading cur.
func (r *rates) routeRates(name string, cur counts) *RouteRates {
	return take(r, "route:"+name, cur, func(dt float64, d counts) *RouteRates {
		out := &RouteRates{WindowSeconds: rateWindow.Seconds(), Interval: dt, Requests: d.values["requests"] / dt, Fallbacks: map[string]float64{}}
		for k, n := range d.values {
			if kind, ok := strings.CutPrefix(k, "fallback:"); ok && n > 0 {
				out.Fallbacks[kind] = n / dt
			}
		}
		return out
	})
}
