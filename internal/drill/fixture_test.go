package drill

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/outage.json from outageReport")

// outageReport is a realistic outage drill at 50 requests/s for 30 s:
// healthy for 6 s, the upstream down for 15 s, 9 s of recovery. The
// breaker opens at 7 s (timeouts and upstream errors until then), probes
// and fails at 12 s and 17 s, probes and closes after the fault (22 s);
// meanwhile a replica serves the fallbacks, and a few requests without
// one fail breaker_open.
func outageReport() *Report {
	r := &Report{
		Pass: true, Scenario: "outage", Upstream: "catalog", Route: "catalog-api",
		Rate: 50, Duration: 30 * time.Second,
		Started: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC),
		Phases: []Phase{
			{Name: "healthy", Start: 0, End: 6 * time.Second},
			{Name: "fault", Start: 6 * time.Second, End: 21 * time.Second},
			{Name: "recovery", Start: 21 * time.Second, End: 30 * time.Second},
		},
	}
	for sec := range 30 {
		r.Series = append(r.Series, outageSecond(sec))
	}
	r.Metrics = outageMetrics(r.Series)
	r.Checks = []Check{
		{Expect: "availability>=95%", Value: r.Metrics.Availability, Pass: true},
		{Expect: "p99<=1500ms", Value: r.Metrics.P99ms, Pass: true},
		{Expect: "amplification<=1.2", Value: r.Metrics.Amplification, Pass: true},
		{Expect: "time_to_open<=2s", Value: r.Metrics.TimeToOpenMs / 1000, Pass: true},
	}
	return r
}

// outageSecond is the fixture's second sec.
func outageSecond(sec int) Sample {
	s := Sample{At: time.Duration(sec) * time.Second, Requests: 50, Breaker: "closed"}
	healthy := func() { s.OK, s.P50ms, s.P99ms, s.MaxMs = 50, 4+float64(sec%3), 12+float64(sec%4), 21+float64(sec%5) }
	open := func() {
		s.Fallbacks, s.Errors = 48, map[string]int{"breaker_open": 2}
		s.P50ms, s.P99ms, s.MaxMs, s.Breaker = 2.5, 7, 9.5, "open"
	}
	switch {
	case sec < 6:
		healthy()
	case sec == 6: // the fault's first second: timeouts until the breaker opens
		s.Fallbacks, s.Errors = 30, map[string]int{"deadline_exceeded": 12, "upstream_error": 8}
		s.P50ms, s.P99ms, s.MaxMs = 240, 1000, 1004
	case sec == 12 || sec == 17: // a probe times out, the breaker opens again
		open()
		s.Errors["deadline_exceeded"] = 1
		s.Fallbacks--
		s.P99ms, s.MaxMs = 1000, 1002
	case sec < 22:
		open()
	case sec == 22: // the probe succeeds
		s.OK, s.Fallbacks, s.Breaker = 10, 40, "half_open"
		s.P50ms, s.P99ms, s.MaxMs = 3, 15, 40
	default:
		healthy()
	}
	return s
}

// outageMetrics sums the series as the drill would.
func outageMetrics(series []Sample) Metrics {
	m := Metrics{
		ErrorsByReason: map[string]int{},
		P50ms:          4, P99ms: 1000, MaxMs: 1004,
		TimeToOpenMs: 850, TimeToRecoverMs: 1400,
	}
	failed, fallbacks := 0, 0
	for _, s := range series {
		m.Requests += s.Requests
		fallbacks += s.Fallbacks
		for reason, n := range s.Errors {
			m.ErrorsByReason[reason] += n
			failed += n
		}
	}
	pct := func(n int) float64 { return float64(n) * 100 / float64(m.Requests) }
	m.Availability, m.FallbackShare, m.ErrorRate = 100-pct(failed), pct(fallbacks), pct(failed)
	m.UpstreamAttempts = m.Requests + 40 // the fault's first second retried once
	m.Amplification = float64(m.UpstreamAttempts) / float64(m.Requests)
	return m
}

// testdata/outage.json is outageReport as spillway drill --json writes it:
// e2e renders it in Chromium through `spillway report`, as it cannot
// import this package. `go test ./internal/drill -run TestOutageFixture
// -update` rewrites it.
func TestOutageFixture(t *testing.T) {
	want, err := json.MarshalIndent(outageReport(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	const file = "testdata/outage.json"
	if *update {
		if err := os.WriteFile(file, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from outageReport: run go test ./internal/drill -run TestOutageFixture -update", file)
	}
}
