package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
)

const reloadYAML = `
upstreams:
  kept:
    instances: ["${A}"]
    retry: {max_attempts: 1}
    breaker: {window: {type: count, size: 2}, min_calls: 2, failure_rate: 50%%, open_for: 1h, max_open_for: 1h}
  changed:
    instances: ["${B}"]
    retry: {max_attempts: 1}
    breaker: {window: {type: count, size: 2}, min_calls: 2, failure_rate: %s, open_for: 1h, max_open_for: 1h}
routes:
  - {name: kept, match: {path_prefix: /kept}, upstream: kept}
  - {name: changed, match: {path_prefix: /changed}, upstream: changed}
`

func TestReloadKeepsStateOfUnchangedUpstreams(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.status.Store(500)
	b.status.Store(500)
	vars := map[string]string{"A": a.URL, "B": b.URL}
	h := start(t, parse(t, fmt.Sprintf(reloadYAML, "50%"), vars))
	for range 2 {
		h.do(t, "GET", "/kept", nil, "")
		h.do(t, "GET", "/changed", nil, "")
	}
	st := h.gw.Status()
	if st.Upstreams["kept"].Breaker.State != "open" || st.Upstreams["changed"].Breaker.State != "open" {
		t.Fatalf("before reload: %+v", st)
	}
	if err := h.gw.Reload(parse(t, fmt.Sprintf(reloadYAML, "60%"), vars)); err != nil {
		t.Fatal(err)
	}
	st = h.gw.Status()
	if st.Upstreams["kept"].Breaker.State != "open" {
		t.Errorf("unchanged upstream's breaker %s after reload, want still open", st.Upstreams["kept"].Breaker.State)
	}
	if st.Upstreams["changed"].Breaker.State != "open" {
		t.Errorf("changed upstream's breaker %s after reload, want still open (reconfigured in place)", st.Upstreams["changed"].Breaker.State)
	}
	if resp, _ := h.do(t, "GET", "/kept", nil, ""); resp.Header.Get("Spillway-Reason") != "breaker_open" {
		t.Errorf("kept: got %d, want breaker_open", resp.StatusCode)
	}
	if err := h.gw.Reload(nil); err == nil {
		t.Error("Reload(nil) succeeded")
	}
	if h.gw.Status().Upstreams["kept"].Breaker.State != "open" {
		t.Error("a failed reload changed the running state")
	}
}

func TestMetricsAndStatus(t *testing.T) {
	be := newBackend(t, "ok")
	h := start(t, parse(t, `
upstreams:
  svc: {instances: ["${B}"]}
routes:
  - name: svc
    match: {path_prefix: /}
    upstream: svc
    fallback: [{static: {body: x}}]
`, map[string]string{"B": be.URL}))
	h.do(t, "GET", "/", nil, "")
	be.status.Store(503)
	h.do(t, "GET", "/", nil, "")
	mfs, err := h.gw.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{
		"spillway_requests_total", "spillway_request_duration_seconds", "spillway_upstream_attempts_total",
		"spillway_upstream_attempt_duration_seconds", "spillway_retries_total", "spillway_circuit_state",
		"spillway_circuit_failure_rate", "spillway_bulkhead_in_flight", "spillway_bulkhead_limit",
		"spillway_retry_budget_remaining", "spillway_fallback_total", "spillway_instance_healthy",
		"spillway_outlier_ejections_active",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("metric %s missing (have %v)", want, names)
		}
	}
	expect := `
# HELP spillway_requests_total Requests the gateway answered, by route and outcome.
# TYPE spillway_requests_total counter
spillway_requests_total{outcome="fallback",route="svc"} 1
spillway_requests_total{outcome="success",route="svc"} 1
`
	if err := testutil.GatherAndCompare(h.gw.Registry(), strings.NewReader(expect), "spillway_requests_total"); err != nil {
		t.Error(err)
	}
	if err := testutil.GatherAndCompare(h.gw.Registry(), strings.NewReader(`
# HELP spillway_upstream_attempts_total Attempts sent to an upstream's instances, by result.
# TYPE spillway_upstream_attempts_total counter
spillway_upstream_attempts_total{result="status_failure",upstream="svc"} 3
spillway_upstream_attempts_total{result="success",upstream="svc"} 1
# HELP spillway_retries_total Retries scheduled to an upstream.
# TYPE spillway_retries_total counter
spillway_retries_total{upstream="svc"} 2
# HELP spillway_circuit_state 1 for the breaker's current state, 0 for the others.
# TYPE spillway_circuit_state gauge
spillway_circuit_state{state="closed",upstream="svc"} 1
spillway_circuit_state{state="disabled",upstream="svc"} 0
spillway_circuit_state{state="forced_open",upstream="svc"} 0
spillway_circuit_state{state="half_open",upstream="svc"} 0
spillway_circuit_state{state="metrics_only",upstream="svc"} 0
spillway_circuit_state{state="open",upstream="svc"} 0
# HELP spillway_instance_healthy 1 when the instance passes its health checks and is not ejected.
# TYPE spillway_instance_healthy gauge
spillway_instance_healthy{instance="`+be.URL+`",upstream="svc"} 1
`), "spillway_upstream_attempts_total", "spillway_retries_total", "spillway_circuit_state", "spillway_instance_healthy"); err != nil {
		t.Error(err)
	}

	b, err := json.Marshal(h.gw.Status())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"upstreams":{"svc":{"breaker":{"state":"closed","failure_rate":0.75},"in_flight":0,"instances":[{"url":"` + be.URL + `","healthy":true,"ejected":false,"in_flight":0}]}}}`
	if string(b) != want {
		t.Errorf("status %s\nwant   %s", b, want)
	}
	if !h.gw.Ready() {
		t.Error("not Ready")
	}
}

func TestAccessLog(t *testing.T) {
	be := newBackend(t, "ok")
	h := start(t, parse(t, `
upstreams:
  svc: {instances: ["${B}"]}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`, map[string]string{"B": be.URL}))
	h.do(t, "GET", "/items?token=secret", map[string]string{"X-Api-Key": "hidden"}, "")
	line := strings.TrimSpace(h.log.String())
	var got map[string]any
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	for k, v := range map[string]any{"msg": "request", "route": "svc", "upstream": "svc", "method": "GET", "path": "/items",
		"status": 200.0, "attempts": 1.0, "reason": "", "fallback": "", "outcome": "success"} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["duration"].(float64); !ok {
		t.Errorf("duration %v", got["duration"])
	}
	if strings.Contains(line, "secret") || strings.Contains(line, "hidden") {
		t.Errorf("the log line leaks the query or a header: %s", line)
	}
}

// Example runs a gateway in front of one upstream.
func Example() {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "items of ", r.URL.Path)
	}))
	defer up.Close()
	cfg, _, err := config.Parse("spillway.yaml", []byte(`
upstreams:
  catalog: {instances: ["${CATALOG}"]}
routes:
  - name: catalog
    match: {path_prefix: /catalog, methods: [GET]}
    upstream: catalog
    strip_prefix: true
`), func(string) (string, bool) { return up.URL, true })
	if err != nil {
		panic(err)
	}
	gw, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		panic(err)
	}
	defer gw.Close()
	srv := httptest.NewServer(gw)
	defer srv.Close()

	for _, path := range []string{"/catalog/shoes", "/basket"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
	}
	// Output:
	// 200 items of /shoes
	// 404 {"error":{"reason":"no_route","message":"no route matches the request"}}
}

// TestReloadForgetsTheSeriesOfRemovedUpstreamsAndRoutes: after a reload
// that removes an upstream and its route, /metrics has no series of them,
// and the kept ones stay.
func TestReloadForgetsTheSeriesOfRemovedUpstreamsAndRoutes(t *testing.T) {
	be := newBackend(t, "ok")
	const both = `
upstreams:
  kept: {instances: ["${B}"]}
  gone: {instances: ["${B}"]}
routes:
  - {name: kept, match: {path_prefix: /kept}, upstream: kept}
  - {name: gone, match: {path_prefix: /gone}, upstream: gone, fallback: [stale_cache: {}]}
`
	const one = `
upstreams:
  kept: {instances: ["${B}"]}
routes:
  - {name: kept, match: {path_prefix: /kept}, upstream: kept}
`
	vars := map[string]string{"B": be.URL}
	h := start(t, parse(t, both, vars))
	h.do(t, "GET", "/kept", nil, "")
	h.do(t, "GET", "/gone", nil, "")
	series := func(value string) int {
		mfs, err := h.gw.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if (lp.GetName() == "upstream" || lp.GetName() == "route") && lp.GetValue() == value {
						n++
					}
				}
			}
		}
		return n
	}
	if n, err := testutil.GatherAndCount(h.gw.Registry(), "spillway_cache_bytes", "spillway_cache_entries"); err != nil || n != 2 {
		t.Fatalf("before reload: %d series of the stale cache (%v), want 2", n, err)
	}
	if series("gone") == 0 || series("kept") == 0 {
		t.Fatalf("before reload: %d series of gone, %d of kept; want both > 0", series("gone"), series("kept"))
	}
	if err := h.gw.Reload(parse(t, one, vars)); err != nil {
		t.Fatal(err)
	}
	if n := series("gone"); n != 0 {
		t.Errorf("after reload: %d series of the removed upstream and route, want 0", n)
	}
	if n, _ := testutil.GatherAndCount(h.gw.Registry(), "spillway_cache_bytes", "spillway_cache_entries"); n != 0 {
		t.Errorf("after reload: %d series of the removed route's stale cache, want 0", n)
	}
	if series("kept") == 0 {
		t.Error("after reload: the kept upstream's series are gone")
	}
}
