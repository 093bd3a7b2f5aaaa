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
// counters into per-second figures by keeping, per upstream and route, the
// previous reading. The proxy path does nothing more than feed the
// collectors it already feeds; only the reads take rates.mu.

// minRateInterval is the shortest interval rates are taken over: a read
// sooner than that after the previous one gets the figures computed then.
const minRateInterval = time.Second

// UpstreamRates are an upstream's figures over Interval, the seconds since
// the previous read of the runtime API (at least one second: a read sooner
// than that gets the same figures as the previous one).
type UpstreamRates struct {
	Interval float64 `json:"interval"`
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

// RouteRates are a route's figures over Interval, as for UpstreamRates.
type RouteRates struct {
	Interval float64 `json:"interval"`
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

// rates holds the previous readings and the figures computed from them.
type rates struct {
	now  func() time.Time
	mu   sync.Mutex
	prev map[string]counts
	last map[string]any
}

func newRates() *rates {
	return &rates{now: time.Now, prev: map[string]counts{}, last: map[string]any{}}
}

// take records cur as key's reading and returns the figures over the
// interval since the previous one (nil at the first read), made by
// compute from the deltas.
func take[T any](r *rates, key string, cur counts, compute func(dt float64, d counts) *T) *T {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur.at = r.now()
	p, ok := r.prev[key]
	if ok && cur.at.Sub(p.at) < minRateInterval {
		last, _ := r.last[key].(*T)
		return last
	}
	r.prev[key] = cur
	if !ok {
		return nil
	}
	dt := cur.at.Sub(p.at).Seconds()
	out := compute(dt, delta(cur, p))
	r.last[key] = out
	return out
}

// keep forgets the readings of the keys keep reports false for (removed
// upstreams and routes).
func (r *rates) keep(keep func(key string) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.prev {
		if !keep(k) {
			delete(r.prev, k)
			delete(r.last, k)
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
		out := &UpstreamRates{Interval: dt, Rejections: map[string]float64{}}
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
		out := &RouteRates{Interval: dt, Requests: d.values["requests"] / dt, Fallbacks: map[string]float64{}}
		for k, n := range d.values {
			if kind, ok := strings.CutPrefix(k, "fallback:"); ok && n > 0 {
				out.Fallbacks[kind] = n / dt
			}
		}
		return out
	})
}
