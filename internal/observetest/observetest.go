// Package observetest holds what spillwayhttp's and spillwaygrpc's tests
// share to check that one Config.Observer instruments every downstream: an
// event recorder and the check of a downstream's exported gauges; and the
// pipeline of overload policies (Overload) whose metrics spillwayprom's and
// spillwayotel's tests check.
package observetest

import (
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway-dev/spillway"
)

// Recorder counts the events it observes by "policy kind reason".
type Recorder struct {
	mu     sync.Mutex
	events map[string]int
}

// Observe counts e.
func (r *Recorder) Observe(e spillway.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		r.events = map[string]int{}
	}
	r.events[e.Policy+" "+e.Kind.String()+" "+string(e.Reason)]++
}

// ExpectEvents fails t for each of want ("policy kind reason") that r did
// not see.
func (r *Recorder) ExpectEvents(t testing.TB, want ...string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range want {
		if r.events[w] == 0 {
			t.Errorf("no %q event", w)
		}
	}
}

// Expect fails t for each of the events a downstream's policies report when
// its bulkhead refused a call and its breaker opened and refused one, after
// a retry, that r did not see: attempt is the integration's Policy ("http",
// "grpc").
func (r *Recorder) Expect(t testing.TB, attempt string) {
	t.Helper()
	r.ExpectEvents(t, attempt+" attempt ", "bulkhead rejection bulkhead_full", "retry retry ",
		"breaker transition ", "breaker rejection breaker_open")
}

// ExpectGauges fails t unless reg exports the gauges of the downstream key
// whose breaker is open and whose bulkhead admits one call, and one retry
// budget: they were registered without a Register call of the test's.
func ExpectGauges(t testing.TB, reg *prometheus.Registry, key string) {
	t.Helper()
	var want strings.Builder
	want.WriteString("# HELP spillway_bulkhead_limit Concurrent calls the bulkhead admits.\n" +
		"# TYPE spillway_bulkhead_limit gauge\n" +
		`spillway_bulkhead_limit{name="` + key + "\"} 1\n" +
		"# HELP spillway_circuit_state Circuit breaker state: 1 for the current state, 0 for the others.\n" +
		"# TYPE spillway_circuit_state gauge\n")
	for _, s := range []string{"closed", "disabled", "forced_open", "half_open", "metrics_only", "open"} {
		v := "0"
		if s == "open" {
			v = "1"
		}
		want.WriteString(`spillway_circuit_state{name="` + key + `",state="` + s + `"} ` + v + "\n")
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()), "spillway_bulkhead_limit", "spillway_circuit_state"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(reg, "spillway_retry_budget_remaining")
	if err != nil || n != 1 {
		t.Errorf("%d retry budget series (%v), want 1", n, err)
	}
}

// Value returns the value of the series of family that has the labels
// (name, value pairs) among those reg gathers, failing t when there is none.
func Value(t testing.TB, reg prometheus.Gatherer, family string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
					continue series
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Errorf("no %s series %v", family, labels)
	return 0
}
