package overload

import (
	"fmt"
	"strings"
	"time"
)

// Throttle settings shared by spillway's and failsafe-go's throttler rows:
// the brief's `throttle: {k: 2, window: 2m}` would remember the first two
// minutes of a 60 s run; the rows use a window the run can show.
const (
	throttleK      = 2
	throttleWindow = 10 * time.Second
)

// Rows returns the strategies of the comparison, in the order of the tables.
func Rows(cfg Config) []Row {
	return []Row{
		Unprotected(),
		Static("static 4C (too high)", 4*cfg.Capacity),
		Static("static C (right)", cfg.Capacity),
		FailsafeLimiter(),
		FailsafeThrottler(throttleK, throttleWindow),
	}
}

// Table formats results as a Markdown table; uncontended is the p99 of the
// same downstream at half its capacity, the yardstick of the latency target.
func Table(cfg Config, results []Result, uncontended time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| row | goodput (%% of C/L = %.0f/s) | p50 | p99 | p99 / uncontended p99 | rejected | timed out |\n",
		cfg.Throughput())
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		ratio := "–"
		if r.P99 > 0 && uncontended > 0 {
			ratio = fmt.Sprintf("%.2f×", float64(r.P99)/float64(uncontended))
		}
		fmt.Fprintf(&b, "| %s | %.1f %% | %s | %s | %s | %.1f %% | %.1f %% |\n", r.Name, r.Goodput,
			ms(r.P50), ms(r.P99), ratio, r.RejectedPct(), r.FailedPct())
	}
	return b.String()
}

func ms(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
