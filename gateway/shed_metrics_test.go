package gateway_test

import (
	"strings"
	"testing"
	"time"
)

// TestShedAndSlowStartMetrics: the requests shed appear in
// spillway_shed_total by class (and still in spillway_rejected_total
// {reason="bulkhead_full"}), a ramping instance's weight in
// spillway_instance_weight and a ramping breaker's share in
// spillway_circuit_slow_start_share; 1 for what does not ramp.
func TestShedAndSlowStartMetrics(t *testing.T) {
	up, a, b := newHolder(t), newBackend(t, "a"), newBackend(t, "b")
	yaml := strings.Replace(shedYAML, "routes:\n", `  ramp:
    instances: ["${A}", "${B}"]
    slow_start: {window: 1h}
    retry: {max_attempts: 1}
    breaker: {window: {type: count, size: 2}, min_calls: 2, failure_rate: 50%, open_for: 20ms, half_open_probes: 1}
routes:
  - name: ramp
    match: {path_prefix: /ramp}
    upstream: ramp
`, 1)
	h := start(t, parse(t, yaml, map[string]string{"S": up.URL, "A": a.URL, "B": b.URL}))
	if got := metricValue(t, h, "spillway_circuit_slow_start_share", "upstream", "ramp"); got != 1 {
		t.Errorf("spillway_circuit_slow_start_share of a breaker that does not ramp = %v, want 1", got)
	}
	done := up.hold(t, h, 2) // 50 % of 4
	for _, p := range []string{"sheddable", "sheddable", "default"} {
		if resp, _ := h.do(t, "GET", "/open/x", map[string]string{"Spillway-Priority": p}, ""); p == "sheddable" && resp.StatusCode != 503 {
			t.Errorf("2 of 4 held, sheddable: %d, want 503", resp.StatusCode)
		}
	}
	done()
	for class, want := range map[string]float64{"sheddable": 2, "default": 0} {
		if got := metricValue(t, h, "spillway_shed_total", "upstream", "svc", "priority", class); got != want {
			t.Errorf("spillway_shed_total{priority=%q} = %v, want %v", class, got, want)
		}
	}
	if got := metricValue(t, h, "spillway_rejected_total", "upstream", "svc", "reason", "bulkhead_full"); got != 2 {
		t.Errorf("spillway_rejected_total{reason=bulkhead_full} = %v, want 2 (the shed requests)", got)
	}

	if _, err := h.gw.SetInstance(operator, "ramp", b.URL, "eject"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.gw.SetInstance(operator, "ramp", b.URL, "restore"); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, h, "spillway_instance_weight", "upstream", "ramp", "instance", b.URL); got < 0.1 || got > 0.11 {
		t.Errorf("spillway_instance_weight of the restored instance = %v, want about 0.1", got)
	}
	if got := metricValue(t, h, "spillway_instance_weight", "upstream", "ramp", "instance", a.URL); got != 1 {
		t.Errorf("spillway_instance_weight of an instance that does not ramp = %v, want 1", got)
	}

	// Two failures open the breaker; after open_for, a probe that succeeds
	// closes it, and it ramps.
	a.status.Store(500)
	b.status.Store(500)
	for range 2 {
		h.do(t, "GET", "/ramp/x", nil, "")
	}
	a.status.Store(0)
	b.status.Store(0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, _ := h.gw.Upstream("ramp")
		if v.Live.Breaker.SlowStartLeft != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the breaker did not close into its slow start: %+v", v.Live.Breaker)
		}
		h.do(t, "GET", "/ramp/x", nil, "")
		time.Sleep(5 * time.Millisecond)
	}
	if got := metricValue(t, h, "spillway_circuit_slow_start_share", "upstream", "ramp"); got < 0.1 || got > 0.11 {
		t.Errorf("spillway_circuit_slow_start_share of a breaker that has just closed = %v, want about 0.1", got)
	}
}
