package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestUpstreamsShowEffectivePoliciesAndLiveFigures(t *testing.T) {
	be := newBackend(t, "ok")
	h := start(t, parse(t, `upstreams:
  app:
    instances: ["${URL}"]
    breaker: {mode: forced_open, failure_rate: 30%, window: {type: time, size: 20s}}
    bulkhead: {max_concurrent: 7}
    health: {path: /health}
  spare:
    instances: ["${URL}"]
    retry: {max_attempts: 1}
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
    optional: true
    default: {body: none}
    fallback: [{upstream: spare}, {static: {body: x}}]
`, map[string]string{"URL": be.URL}))

	ups := h.gw.Upstreams()
	if len(ups) != 2 || ups[0].Name != "app" || ups[1].Name != "spare" {
		t.Fatalf("Upstreams = %+v, want app and spare", ups)
	}
	b, err := json.Marshal(ups[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"mode":"forced_open"`, `"failure_rate":0.3`, `"window":{"type":"time","size":"20s"}`,
		`"max_concurrent":7`, `"health":{"path":"/health"`, `"timeouts":{"connect":"2s","attempt":"5s","total":"15s"}`,
		`"budget":{"ratio":0.2`, `"outlier":{"consecutive_failures":5`,
		`"live":{"breaker":{"state":"forced_open"`, `"bulkhead":{"in_use":0`, `"budget_left":`,
		`"instances":[{"url":"` + be.URL + `","healthy":true`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("upstream app lacks %s:\n%s", want, b)
		}
	}
	if spare, ok := h.gw.Upstream("spare"); !ok || spare.Policies.Retry.MaxAttempts != 1 || spare.Policies.Health != nil {
		t.Errorf("Upstream(spare) = %+v, %v; want max_attempts 1 and no health check", spare, ok)
	}
	if _, ok := h.gw.Upstream("nope"); ok {
		t.Error("Upstream(nope) found")
	}
	rs := h.gw.Routes()
	if len(rs) != 1 || !rs[0].Optional || strings.Join(rs[0].Fallback, ",") != "upstream:spare,static" {
		t.Errorf("Routes = %+v", rs)
	}
}
