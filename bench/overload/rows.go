package overload

import (
	"fmt"
	"strings"
	"time"

	"github.com/spillway-dev/spillway/bulkhead"
)

// Throttle settings shared by spillway's and failsafe-go's throttler rows:
// K as the brief's `throttle: {k: 2, window: 2m}`, but a window short
// enough to move within a 60 s run (2 minutes would span all of it).
const (
	throttleK      = 2
	throttleWindow = 10 * time.Second
)

// tunedAIMD backs off after a window whose average latency exceeds 1.2 L
// (the default, Netflix's, is 5 s: only the client's timeouts would count).
// It is the harness's, not a default: no constant threshold fits every
// downstream (docs/benchmarks.md).
func tunedAIMD(cfg Config) bulkhead.Adaptive {
	return bulkhead.Adaptive{Algorithm: bulkhead.AIMD, Timeout: cfg.Latency * 12 / 10}
}

// Rows returns the strategies of the comparison, in the order of the tables.
func Rows(cfg Config) []Row {
	return []Row{
		Unprotected(),
		Static("static 4C (too high)", 4*cfg.Capacity),
		Static("static C (right)", cfg.Capacity),
		Adaptive("spillway gradient2", bulkhead.Adaptive{Algorithm: bulkhead.Gradient2}),
		Adaptive("spillway aimd", bulkhead.Adaptive{Algorithm: bulkhead.AIMD}),
		Adaptive("spillway aimd tuned", tunedAIMD(cfg)),
		Adaptive("spillway vegas", bulkhead.Adaptive{Algorithm: bulkhead.Vegas}),
		Throttler(throttleK, throttleWindow),
		FailsafeLimiter(),
		FailsafeThrottler(throttleK, throttleWindow),
	}
}

// StepConfig is the scenario where the static limits are wrong by turns:
// the offered load of DefaultConfig (4,000 calls/s) on a downstream that
// loses half its capacity at 30 s (C 20 → 10: half its instances gone) and
// scales to twice it at 60 s (C → 40), for 90 s.
func StepConfig() Config {
	cfg := DefaultConfig()
	cfg.Duration = 90 * time.Second
	cfg.Steps = []Step{{At: 30 * time.Second, Capacity: cfg.Capacity / 2},
		{At: 60 * time.Second, Capacity: 2 * cfg.Capacity}}
	return cfg
}

// OtherModels are DefaultConfig's 2× overload on two other downstreams, a
// slow one (C = 50, L = 50 ms) and a small fast one (C = 5, L = 2 ms), the
// client's timeout 10 L as in DefaultConfig: the defaults must not be tuned
// to one capacity and latency.
func OtherModels() []Config {
	var out []Config
	for _, m := range []struct {
		capacity int
		latency  time.Duration
	}{{50, 50 * time.Millisecond}, {5, 2 * time.Millisecond}} {
		cfg := DefaultConfig()
		cfg.Capacity, cfg.Latency, cfg.Timeout = m.capacity, m.latency, 10*m.latency
		out = append(out, cfg)
	}
	return out
}

// SpikeConfig is a metastable failure: half the capacity's throughput
// offered (1,000 calls/s), a one-second spike to 2× at 20 s, then half
// again until 60 s. A downstream that thrashes stays collapsed after the
// spike unless something limits its concurrency.
func SpikeConfig() Config {
	cfg := DefaultConfig()
	cfg.Load = 0.5
	cfg.Steps = []Step{{At: 20 * time.Second, Load: 2}, {At: 21 * time.Second, Load: 0.5}}
	return cfg
}

// PhaseTable formats each row's mean goodput per phase of cfg.Steps, each
// phase's first 5 s (or half, if shorter) left out: the time to adapt is in
// the charts.
func PhaseTable(cfg Config, results []Result) string {
	bounds := []time.Duration{cfg.Warmup}
	for _, s := range cfg.Steps {
		bounds = append(bounds, s.At)
	}
	bounds = append(bounds, cfg.Duration)
	from := func(i int) time.Duration { return bounds[i] + min(5*time.Second, (bounds[i+1]-bounds[i])/2) }
	var b strings.Builder
	b.WriteString("| row |")
	for i := range len(bounds) - 1 {
		capacity, load := cfg.at(bounds[i])
		fmt.Fprintf(&b, " %v–%v (C = %d, %.0f/s offered) |", from(i), bounds[i+1], capacity, load*cfg.Throughput())
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(bounds)-1) + "\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s |", r.Name)
		for i := range len(bounds) - 1 {
			fmt.Fprintf(&b, " %.1f %% |", meanGoodput(r.Series, from(i), bounds[i+1]))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ColumnsTable formats each row's goodput and p99 (as a multiple of its
// column's uncontended p99) for each column: results[i][j] is row j's
// result in column i.
func ColumnsTable(columns []string, results [][]Result, uncontended []time.Duration) string {
	var b strings.Builder
	b.WriteString("| row |")
	for _, c := range columns {
		fmt.Fprintf(&b, " %s: goodput, p99 |", c)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(columns)) + "\n")
	for j := range results[0] {
		fmt.Fprintf(&b, "| %s |", results[0][j].Name)
		for i := range columns {
			r := results[i][j]
			fmt.Fprintf(&b, " %.1f %%, %s |", r.Goodput, ratio(r.P99, uncontended[i]))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// meanGoodput is the mean of the buckets' goodput in (from, to].
func meanGoodput(series []Point, from, to time.Duration) float64 {
	sum, n := 0.0, 0
	for _, p := range series {
		if p.T > from && p.T <= to {
			sum += p.Goodput
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// Table formats results as a Markdown table; uncontended is the p99 of the
// same downstream at half its capacity, the yardstick of the latency target.
func Table(results []Result, uncontended time.Duration) string {
	var b strings.Builder
	b.WriteString("| row | goodput (% of C/L) | p50 | p99 | p99 / uncontended p99 | rejected | timed out |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %.1f %% | %s | %s | %s | %.1f %% | %.1f %% |\n", r.Name, r.Goodput,
			ms(r.P50), ms(r.P99), ratio(r.P99, uncontended), r.RejectedPct(), r.FailedPct())
	}
	return b.String()
}

// ratio is p99 as a multiple of uncontended, "–" when there was no success.
func ratio(p99, uncontended time.Duration) string {
	if p99 == 0 || uncontended == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(p99)/float64(uncontended))
}

func ms(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
