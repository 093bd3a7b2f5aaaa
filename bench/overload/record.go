package overload

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Config is the workload of a run, shared by the simulation and the real run.
type Config struct {
	// Capacity is C, the calls the downstream serves at full speed at once.
	Capacity int
	// Latency is L, a call's mean latency at full speed.
	Latency time.Duration
	// Kappa is the downstream's thrashing coefficient (see Downstream).
	Kappa float64
	// Timeout is the client's timeout: a slower call fails.
	Timeout time.Duration
	// Load is the offered load as a multiple of the capacity's throughput
	// C/L (Poisson arrivals, open loop).
	Load float64
	// Duration is how long a row runs. The summary counts the calls that
	// arrive after Warmup and at least Timeout before the end (so that each
	// has its outcome); the time series covers the whole run.
	Duration, Warmup time.Duration
	// Bucket is the time series' step.
	Bucket time.Duration
	// Seed seeds the arrivals, the work and the strategies' random numbers.
	Seed uint64
	// Steps change the downstream's capacity or the offered load during
	// the run (simulation only).
	Steps []Step
}

// Step is a change at a point of a run: from At on, C is Capacity and the
// offered load Load × the initial C/L; a zero field keeps its value.
type Step struct {
	At       time.Duration
	Capacity int
	Load     float64
}

// at returns C and the offered load (a multiple of the initial C/L) at time t.
func (c Config) at(t time.Duration) (capacity int, load float64) {
	capacity, load = c.Capacity, c.Load
	for _, s := range c.Steps {
		if t < s.At {
			break
		}
		capacity, load = cmp.Or(s.Capacity, capacity), cmp.Or(s.Load, load)
	}
	return capacity, load
}

// capacityAt is C at time t.
func (c Config) capacityAt(t time.Duration) int {
	capacity, _ := c.at(t)
	return capacity
}

// throughputAt is C/L at time t.
func (c Config) throughputAt(t time.Duration) float64 {
	return float64(c.capacityAt(t)) / c.Latency.Seconds()
}

// capacityCalls is the calls the capacity could complete from t0 to t1.
func (c Config) capacityCalls(t0, t1 time.Duration) float64 {
	const step = 10 * time.Millisecond
	calls := 0.0
	for t := t0; t < t1; t += step {
		calls += c.throughputAt(t) * min(step, t1-t).Seconds()
	}
	return calls
}

// DefaultConfig is the workload of docs/benchmarks.md: C = 20 calls at
// L = 10 ms (2,000 calls/s), a 100 ms client timeout, 2× overload for 60 s.
func DefaultConfig() Config {
	return Config{Capacity: 20, Latency: 10 * time.Millisecond, Kappa: 1,
		Timeout: 100 * time.Millisecond, Load: 2, Duration: 60 * time.Second,
		Warmup: 10 * time.Second, Bucket: 100 * time.Millisecond, Seed: 1}
}

// Throughput is the initial capacity's throughput C/L, in calls per second.
func (c Config) Throughput() float64 { return float64(c.Capacity) / c.Latency.Seconds() }

// arrivalRate is the offered load at time t, in calls per second.
func (c Config) arrivalRate(t time.Duration) float64 {
	_, load := c.at(t)
	return load * c.Throughput()
}

// Result is one row's outcome.
type Result struct {
	Name string
	// The calls that arrived after the warm-up: all of them, those the
	// strategy refused, those that completed within the timeout and those
	// that timed out.
	Offered, Rejected, Succeeded, Failed int
	// Goodput is Succeeded per second after the warm-up, in % of C/L (of
	// the mean C/L over the window when Config.Steps change C).
	Goodput float64
	// P50 and P99 are the latencies of the successes after the warm-up.
	P50, P99 time.Duration
	// Series is the run's time series, one point per Config.Bucket.
	Series []Point
}

// RejectedPct is the share of the offered calls the strategy refused, in %.
func (r Result) RejectedPct() float64 { return pct(r.Rejected, r.Offered) }

// FailedPct is the share of the offered calls that timed out, in %.
func (r Result) FailedPct() float64 { return pct(r.Failed, r.Offered) }

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// Point is one bucket of a time series.
type Point struct {
	// T is the bucket's end.
	T time.Duration
	// Limit is the strategy's limit at T (0: none); InFlight the calls in
	// the downstream at T.
	Limit, InFlight int
	// Goodput is the bucket's successes per second in % of the C/L of the time.
	Goodput float64
	// P99 is the p99 latency of the bucket's successes (0: none succeeded).
	P99 time.Duration
	// Rejected is the share of the bucket's arrivals the strategy refused, in %.
	Rejected float64
}

// recorder accumulates a row's counts and time series. It is not safe for
// concurrent use (the real run locks around it).
type recorder struct {
	cfg     Config
	res     Result
	lat     []time.Duration // the successes' latencies after the warm-up
	bucket  []time.Duration // the current bucket's success latencies
	arrived int             // the current bucket's arrivals
	refused int             // and refusals
}

func newRecorder(cfg Config, name string) *recorder {
	return &recorder{cfg: cfg, res: Result{Name: name}}
}

// counted reports whether a call arriving at t is in the summary: after the
// warm-up, and early enough that its outcome is known before the run ends.
func (r *recorder) counted(t time.Duration) bool {
	return t >= r.cfg.Warmup && t < r.cfg.Duration-r.cfg.Timeout
}

func (r *recorder) arrival(t time.Duration, admitted bool) {
	r.arrived++
	if !admitted {
		r.refused++
	}
	if r.counted(t) {
		r.res.Offered++
		if !admitted {
			r.res.Rejected++
		}
	}
}

// success records a call that arrived at start and succeeded at end: the
// summary counts it by its arrival, the time series by its completion.
func (r *recorder) success(start, end time.Duration) {
	latency := end - start
	r.bucket = append(r.bucket, latency)
	if r.counted(start) {
		r.res.Succeeded++
		r.lat = append(r.lat, latency)
	}
}

// failure records a call that arrived at start and timed out.
func (r *recorder) failure(start time.Duration) {
	if r.counted(start) {
		r.res.Failed++
	}
}

// sample closes the bucket ending at t.
func (r *recorder) sample(t time.Duration, limit, inFlight int) {
	slices.Sort(r.bucket)
	perSec := float64(len(r.bucket)) / r.cfg.Bucket.Seconds()
	r.res.Series = append(r.res.Series, Point{T: t, Limit: limit, InFlight: inFlight,
		Goodput: 100 * perSec / r.cfg.throughputAt(t-r.cfg.Bucket), P99: quantile(r.bucket, 0.99),
		Rejected: pct(r.refused, r.arrived)})
	r.bucket, r.arrived, r.refused = r.bucket[:0], 0, 0
}

func (r *recorder) result() Result {
	slices.Sort(r.lat)
	r.res.P50, r.res.P99 = quantile(r.lat, 0.5), quantile(r.lat, 0.99)
	r.res.Goodput = 100 * float64(r.res.Succeeded) / r.cfg.capacityCalls(r.cfg.Warmup, r.cfg.Duration-r.cfg.Timeout)
	return r.res
}

// quantile returns the q-quantile of sorted (nearest rank), 0 when empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, i)]
}
