package drill

import (
	"math"
	"slices"
	"time"
)

// tally counts a set of requests.
type tally struct {
	n, ok, fallbacks int
	errors           map[string]int
	latencies        []time.Duration
}

func (t *tally) add(r result) {
	t.n++
	t.latencies = append(t.latencies, r.latency)
	switch r.outcome {
	case outcomeOK:
		t.ok++
	case outcomeFallback:
		t.fallbacks++
	default:
		if t.errors == nil {
			t.errors = map[string]int{}
		}
		t.errors[r.reason]++
	}
}

// percentiles returns the p50, p99 and max of t's latencies in
// milliseconds (nearest rank), zeros when t is empty.
func (t *tally) percentiles() (p50, p99, maxMs float64) {
	if len(t.latencies) == 0 {
		return 0, 0, 0
	}
	slices.Sort(t.latencies)
	rank := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(t.latencies)))) - 1
		return ms(t.latencies[max(i, 0)])
	}
	return rank(0.50), rank(0.99), ms(t.latencies[len(t.latencies)-1])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percent returns n of total as a percentage, 0 when total is 0.
func percent(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}

// summarize computes what the clients saw over the drill of length d
// (results sorted by start) and one sample per second; attempts are the
// upstream attempts the gateway counted meanwhile.
func summarize(results []result, phases []Phase, d time.Duration, w *watcher, attempts float64) (Metrics, []Sample) {
	var all tally
	seconds := int(math.Ceil(d.Seconds()))
	per := make([]tally, seconds)
	for _, r := range results {
		all.add(r)
		if i := int(r.at / time.Second); i >= 0 && i < seconds {
			per[i].add(r)
		}
	}
	m := Metrics{Requests: all.n, Availability: percent(all.ok+all.fallbacks, all.n), FallbackShare: percent(all.fallbacks, all.n),
		ErrorsByReason: all.errors, UpstreamAttempts: int(attempts)}
	m.ErrorRate = percent(all.n-all.ok-all.fallbacks, all.n)
	if m.ErrorsByReason == nil {
		m.ErrorsByReason = map[string]int{}
	}
	m.P50ms, m.P99ms, m.MaxMs = all.percentiles()
	if all.n > 0 {
		m.Amplification = attempts / float64(all.n)
	}
	fault := phases[1]
	m.TimeToOpenMs = -1
	if at := w.opened(fault.Start, d); at >= 0 {
		m.TimeToOpenMs = ms(at - fault.Start)
	}
	m.TimeToRecoverMs = timeToRecover(results, fault.End, d, w)
	// The last poll came after the load's end.
	m.QueueBacklog, m.QueueBacklogMax = w.backlog(time.Duration(math.MaxInt64))
	series := make([]Sample, seconds)
	for i := range per {
		t := &per[i]
		s := Sample{At: time.Duration(i) * time.Second, Requests: t.n, OK: t.ok, Fallbacks: t.fallbacks, Errors: t.errors}
		if s.Errors == nil {
			s.Errors = map[string]int{}
		}
		s.P50ms, s.P99ms, s.MaxMs = t.percentiles()
		end := min(time.Duration(i+1)*time.Second, d)
		s.Breaker = w.stateAt(end)
		s.QueueBacklog, _ = w.backlog(end)
		series[i] = s
	}
	return m, series
}

// timeToRecover returns the milliseconds from faultEnd until the upstream
// was back: the later of the start of the first request after which
// every request started before d was answered by the upstream itself (no
// fallback, no error), and the breaker seen closed again. -1 when the
// drill ended before that, or no request was sent after faultEnd.
func timeToRecover(results []result, faultEnd, d time.Duration, w *watcher) float64 {
	from := slices.IndexFunc(results, func(r result) bool { return r.at >= faultEnd })
	if from < 0 {
		return -1
	}
	back := results[from].at
	for i := from; i < len(results); i++ {
		if results[i].outcome == outcomeOK {
			continue
		}
		if i+1 == len(results) {
			return -1 // the last request still failed
		}
		back = results[i+1].at
	}
	// A breaker in a manual mode (disabled, metrics_only) lets every call
	// through: it counts as closed.
	closed := time.Duration(-1)
	for _, s := range []string{"closed", "disabled", "metrics_only"} {
		if at := w.firstAfter(faultEnd, s); at >= 0 && (closed < 0 || at < closed) {
			closed = at
		}
	}
	if closed < 0 || closed >= d {
		return -1
	}
	return ms(max(back, closed) - faultEnd)
}
