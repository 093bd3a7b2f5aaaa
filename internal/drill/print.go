package drill

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// progressEvery is how often the live progress line is rewritten.
const progressEvery = 250 * time.Millisecond

// progress rewrites one line on p.o.Progress until ctx ends: elapsed time,
// phase, the rate and availability of the last second, the breaker.
func (p *plan) progress(ctx context.Context, rec *recorder, w *watcher, began time.Time) {
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(p.o.Progress)
			return
		case <-tick.C:
		}
		at := time.Since(began)
		n, ok := rec.since(at - time.Second)
		fmt.Fprintf(p.o.Progress, "\r%6.1fs / %s  %-8s  %5d rps  availability %6.2f%%  breaker %-10s",
			at.Seconds(), p.o.Duration, phaseAt(p.phases, at), n, percent(ok, n), w.stateAt(at))
	}
}

// phaseAt names the phase at offset at.
func phaseAt(phases []Phase, at time.Duration) string {
	for _, ph := range phases {
		if at < ph.End {
			return ph.Name
		}
	}
	return phases[len(phases)-1].Name
}

// PrintVerdict writes the report as a table: the metrics, then one line
// per expectation with PASS or FAIL, then the verdict.
func PrintVerdict(out io.Writer, r *Report) error {
	m := r.Metrics
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "drill\t%s on upstream %s (route %s), %g req/s for %s\n", r.Scenario, r.Upstream, r.Route, r.Rate, r.Duration)
	for _, ph := range r.Phases {
		fmt.Fprintf(tw, "  %s\t%s → %s\n", ph.Name, ph.Start, ph.End)
	}
	fmt.Fprintf(tw, "requests\t%d\n", m.Requests)
	fmt.Fprintf(tw, "availability\t%.2f%% (fallbacks %.2f%%)\n", m.Availability, m.FallbackShare)
	fmt.Fprintf(tw, "error_rate\t%.2f%%%s\n", m.ErrorRate, formatReasons(m.ErrorsByReason))
	fmt.Fprintf(tw, "latency\tp50 %.1fms  p99 %.1fms  max %.1fms\n", m.P50ms, m.P99ms, m.MaxMs)
	fmt.Fprintf(tw, "amplification\t%.2f (%d upstream attempts)\n", m.Amplification, m.UpstreamAttempts)
	fmt.Fprintf(tw, "time_to_open\t%s\n", formatTime(m.TimeToOpenMs))
	fmt.Fprintf(tw, "time_to_recover\t%s\n", formatTime(m.TimeToRecoverMs))
	fmt.Fprintf(tw, "queue_backlog\t%d (at most %d)\n", m.QueueBacklog, m.QueueBacklogMax)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "EXPECT\tVALUE\tRESULT")
	for _, c := range r.Checks {
		res := "PASS"
		if !c.Pass {
			res = "FAIL"
		}
		value := fmt.Sprintf("%.4g", c.Value)
		if c.Never {
			value = "never"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Expect, value, res)
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(tw, "\nverdict\t%s\n", verdict)
	return tw.Flush()
}

func formatTime(msValue float64) string {
	if msValue < 0 {
		return "never"
	}
	return fmt.Sprintf("%.0fms", msValue)
}

func formatReasons(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return " (" + strings.Join(parts, " ") + ")"
}
