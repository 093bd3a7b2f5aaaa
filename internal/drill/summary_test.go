package drill

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	phases := []Phase{{PhaseHealthy, 0, time.Second}, {PhaseFault, time.Second, 2 * time.Second}, {PhaseRecovery, 2 * time.Second, 3 * time.Second}}
	// The breaker opens 300ms into the fault and closes 400ms after it.
	w := &watcher{states: []stateAt{{0, "closed"}, {1300 * ms, "open"}, {1800 * ms, "half_open"}, {2400 * ms, "closed"}}}
	var results []result
	for at := time.Duration(0); at < 3*time.Second; at += 100 * ms {
		r := result{at: at, latency: 10 * ms}
		switch {
		case at >= time.Second && at < 1300*ms: // failed before the breaker opened
			r.outcome, r.reason, r.latency = outcomeError, "upstream_error", 200*ms
		case at >= 1300*ms && at < 2300*ms: // served by the fallback
			r.outcome = outcomeFallback
		}
		results = append(results, r)
	}
	m, series := summarize(results, phases, 3*time.Second, w, 33)
	if m.Requests != 30 || m.ErrorsByReason["upstream_error"] != 3 || m.Availability != 90 || m.FallbackShare != 100.0/3 || m.ErrorRate != 10 {
		t.Errorf("counts: %+v", m)
	}
	if m.P50ms != 10 || m.P99ms != 200 || m.MaxMs != 200 || m.Amplification != 1.1 {
		t.Errorf("latency or amplification: %+v", m)
	}
	if m.TimeToOpenMs != 300 {
		t.Errorf("time_to_open %gms, want 300", m.TimeToOpenMs)
	}
	// The last fallback started at 2.2s, the breaker closed at 2.4s: the
	// later one counts.
	if m.TimeToRecoverMs != 400 {
		t.Errorf("time_to_recover %gms, want 400", m.TimeToRecoverMs)
	}
	if len(series) != 3 || series[1].Requests != 10 || series[1].Fallbacks != 7 || series[1].Errors["upstream_error"] != 3 ||
		series[0].Breaker != "closed" || series[1].Breaker != "half_open" || series[2].Breaker != "closed" {
		t.Errorf("series: %+v", series)
	}
}

// An upstream that still fails at the drill's end never recovered.
func TestTimeToRecoverNever(t *testing.T) {
	w := &watcher{states: []stateAt{{0, "closed"}, {500 * time.Millisecond, "open"}}}
	results := []result{{at: 900 * time.Millisecond}, {at: 1100 * time.Millisecond, outcome: outcomeFallback}, {at: 1900 * time.Millisecond, outcome: outcomeFallback}}
	if got := timeToRecover(results, time.Second, 2*time.Second, w); got != -1 {
		t.Errorf("got %gms, want -1", got)
	}
}
