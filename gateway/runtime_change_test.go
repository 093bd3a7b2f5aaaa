package gateway_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/gateway"
)

const changeYAML = `upstreams:
  app:
    instances: ["${URL}"]
    bulkhead: {max_concurrent: 10}
  other:
    instances: ["${URL}"]
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
`

var operator = gateway.Actor{Who: "admin", Call: "test"}

func TestPatchUpstreamAppliesInPlaceAndRecordsAnOverride(t *testing.T) {
	be := newBackend(t, "ok")
	h := start(t, parse(t, changeYAML, map[string]string{"URL": be.URL}))
	v, err := h.gw.PatchUpstream(operator, "app", []byte(`{"bulkhead":{"max_concurrent":50},"breaker":{"failure_rate":"30%"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if v.Policies.Bulkhead.MaxConcurrent != 50 || v.Policies.Breaker.FailureRate != 0.3 {
		t.Errorf("answer: bulkhead %+v, breaker %+v", v.Policies.Bulkhead, v.Policies.Breaker)
	}
	ovs := h.gw.Overrides()
	if len(ovs) != 1 || ovs[0].Who != "admin" || ovs[0].Upstream != "app" ||
		ovs[0].Before["bulkhead.max_concurrent"] != 10.0 || ovs[0].After["bulkhead.max_concurrent"] != 50.0 ||
		ovs[0].After["breaker.failure_rate"] != 0.3 || len(ovs[0].After) != 2 {
		t.Errorf("overrides = %+v", ovs)
	}
	if st := h.gw.Status(); len(st.Overrides) != 1 {
		t.Errorf("status overrides = %+v", st.Overrides)
	}
}

func TestARefusedChangeChangesNothing(t *testing.T) {
	be := newBackend(t, "ok")
	h := start(t, parse(t, changeYAML, map[string]string{"URL": be.URL}))
	before := h.gw.Config()
	for _, tt := range []struct{ patch, field string }{
		{`{"bulkhead":{"max_concurrent":50},"breaker":{"failure_rate":"300%"}}`, "breaker.failure_rate"},
		{`{"bulkhead":{"max_concurent":5}}`, "bulkhead.max_concurent"},
		{`{"timeouts":{"attempt":"1m"}}`, "timeouts.attempt"},
	} {
		_, err := h.gw.PatchUpstream(operator, "app", []byte(tt.patch))
		var re *gateway.RefusedError
		if !errors.As(err, &re) || re.Field != tt.field {
			t.Errorf("PatchUpstream(%s) = %v, want refused at %s", tt.patch, err, tt.field)
		}
	}
	if _, err := h.gw.PatchUpstream(operator, "nope", []byte(`{}`)); !errors.Is(err, gateway.ErrUnknown) {
		t.Errorf("unknown upstream: %v", err)
	}
	if _, err := h.gw.SetBreaker(operator, "app", "shut"); err == nil {
		t.Error("state shut accepted")
	}
	v, _ := h.gw.Upstream("app")
	if h.gw.Config() != before || v.Policies.Bulkhead.MaxConcurrent != 10 || len(h.gw.Overrides()) != 0 {
		t.Errorf("a refused change changed the gateway: %+v, overrides %+v", v.Policies.Bulkhead, h.gw.Overrides())
	}
}

func TestForcedOpenBreakerStaysOpenAcrossABulkheadPatch(t *testing.T) {
	be := newBackend(t, "ok")
	h := start(t, parse(t, changeYAML, map[string]string{"URL": be.URL}))
	if v, err := h.gw.SetBreaker(operator, "app", "forced_open"); err != nil || v.Live.Breaker.State != "forced_open" {
		t.Fatalf("SetBreaker: %+v, %v", v.Live.Breaker, err)
	}
	v, err := h.gw.PatchUpstream(operator, "app", []byte(`{"bulkhead":{"max_concurrent":3}}`))
	if err != nil || v.Live.Breaker.State != "forced_open" || v.Policies.Bulkhead.MaxConcurrent != 3 {
		t.Fatalf("after the patch: %+v %+v, %v", v.Live.Breaker, v.Policies.Bulkhead, err)
	}
	if resp, _ := h.do(t, "GET", "/x", nil, ""); resp.StatusCode != 503 {
		t.Errorf("forced open: %d, want 503", resp.StatusCode)
	}
	if v, err := h.gw.SetBreaker(operator, "app", "auto"); err != nil || v.Live.Breaker.State != "closed" {
		t.Errorf("auto: %+v, %v", v.Live.Breaker, err)
	}
	ovs := h.gw.Overrides()
	if len(ovs) != 3 || ovs[0].Before["breaker.state"] != "closed" || ovs[0].After["breaker.state"] != "forced_open" {
		t.Errorf("overrides = %+v", ovs)
	}
}

func TestReloadKeepsOverridesAndClearRestoresTheFile(t *testing.T) {
	be := newBackend(t, "ok")
	vars := map[string]string{"URL": be.URL}
	h := start(t, parse(t, changeYAML, vars))
	if _, err := h.gw.PatchUpstream(operator, "app", []byte(`{"bulkhead":{"max_concurrent":50}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.gw.SetBreaker(operator, "other", "forced_open"); err != nil {
		t.Fatal(err)
	}
	// The new file changes app's retries and removes other.
	cs, err := h.gw.Apply(parse(t, `upstreams:
  app:
    instances: ["${URL}"]
    bulkhead: {max_concurrent: 10}
    retry: {max_attempts: 2}
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
`, vars))
	if err != nil {
		t.Fatal(err)
	}
	if cs.Overrides == nil || len(cs.Overrides.Kept) != 1 || cs.Overrides.Kept[0].Upstream != "app" ||
		len(cs.Overrides.Dropped) != 1 || cs.Overrides.Dropped[0].Upstream != "other" {
		t.Fatalf("reload overrides = %+v", cs.Overrides)
	}
	v, _ := h.gw.Upstream("app")
	if v.Policies.Bulkhead.MaxConcurrent != 50 || v.Policies.Retry.MaxAttempts != 2 {
		t.Errorf("after the reload: bulkhead %+v, max_attempts %d; want the override on the new file", v.Policies.Bulkhead, v.Policies.Retry.MaxAttempts)
	}
	if _, err := h.gw.ClearOverrides(operator); err != nil {
		t.Fatal(err)
	}
	v, _ = h.gw.Upstream("app")
	if v.Policies.Bulkhead.MaxConcurrent != 10 || v.Policies.Retry.MaxAttempts != 2 || len(h.gw.Overrides()) != 0 {
		t.Errorf("after clearing: bulkhead %+v, max_attempts %d, overrides %v; want the new file's", v.Policies.Bulkhead, v.Policies.Retry.MaxAttempts, h.gw.Overrides())
	}
}

func TestInstanceEjectedByHandUntilRestoredOrCleared(t *testing.T) {
	be, other := newBackend(t, "one"), newBackend(t, "two")
	yaml := `upstreams:
  app:
    instances: ["${A}", "${B}"]
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
`
	vars := map[string]string{"A": be.URL, "B": other.URL}
	h := start(t, parse(t, yaml, vars))
	v, err := h.gw.SetInstance(operator, "app", be.URL, "eject")
	if err != nil || !v.Instances[0].Ejected || !v.Instances[0].Manual {
		t.Fatalf("eject: %+v, %v", v.Instances, err)
	}
	for range 4 {
		if _, body := h.do(t, "GET", "/x", nil, ""); body != "two" {
			t.Fatalf("answered %q by the instance ejected", body)
		}
	}
	var re *gateway.RefusedError
	if _, err := h.gw.SetInstance(operator, "app", "http://127.0.0.1:1", "eject"); !errors.As(err, &re) || re.Field != "url" {
		t.Errorf("unknown instance: %v", err)
	}
	if _, err := h.gw.SetInstance(operator, "app", be.URL, "drain"); !errors.As(err, &re) || re.Field != "action" {
		t.Errorf("unknown action: %v", err)
	}
	if _, err := h.gw.Apply(parse(t, yaml, vars)); err != nil {
		t.Fatal(err)
	}
	if v, _ := h.gw.Upstream("app"); !v.Instances[0].Manual || len(h.gw.Overrides()) != 1 {
		t.Fatalf("after a reload: %+v, overrides %+v", v.Instances, h.gw.Overrides())
	}
	if _, err := h.gw.ClearOverrides(operator); err != nil {
		t.Fatal(err)
	}
	if v, _ := h.gw.Upstream("app"); v.Instances[0].Ejected {
		t.Errorf("cleared, still ejected: %+v", v.Instances)
	}
}

func TestAnOptionalRouteSwitchedOffAnswersItsDefault(t *testing.T) {
	be := newBackend(t, "live")
	yaml := `upstreams:
  app:
    instances: ["${URL}"]
routes:
  - name: recs
    match: {path_prefix: /recs}
    upstream: app
    optional: true
    default: {status: 200, body: "[]"}
  - name: app
    match: {path_prefix: /}
    upstream: app
`
	vars := map[string]string{"URL": be.URL}
	h := start(t, parse(t, yaml, vars))
	v, err := h.gw.SetRoute(operator, "recs", false)
	if err != nil || v.Enabled {
		t.Fatalf("SetRoute: %+v, %v", v, err)
	}
	if _, body := h.do(t, "GET", "/recs", nil, ""); body != "[]" {
		t.Errorf("switched off: %q, want the default", body)
	}
	var re *gateway.RefusedError
	if _, err := h.gw.SetRoute(operator, "app", false); !errors.As(err, &re) || re.Field != "enabled" || !strings.Contains(re.Message, "not optional") {
		t.Errorf("a route not optional: %v", err)
	}
	if _, err := h.gw.SetRoute(operator, "nope", false); !errors.Is(err, gateway.ErrUnknown) {
		t.Errorf("unknown route: %v", err)
	}
	// A reload keeps it off; an upstream patch (a rebuilt table) too.
	if _, err := h.gw.Apply(parse(t, yaml, vars)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.gw.PatchUpstream(operator, "app", []byte(`{"bulkhead":{"max_concurrent":5}}`)); err != nil {
		t.Fatal(err)
	}
	if _, body := h.do(t, "GET", "/recs", nil, ""); body != "[]" {
		t.Errorf("after a reload and a patch: %q, want the default", body)
	}
	if _, err := h.gw.SetRoute(operator, "recs", true); err != nil {
		t.Fatal(err)
	}
	if _, body := h.do(t, "GET", "/recs", nil, ""); body != "live" {
		t.Errorf("switched on: %q, want the upstream's answer", body)
	}
	if _, err := h.gw.SetRoute(operator, "recs", false); err != nil {
		t.Fatal(err)
	}
	if _, err := h.gw.ClearOverrides(operator); err != nil {
		t.Fatal(err)
	}
	if _, body := h.do(t, "GET", "/recs", nil, ""); body != "live" {
		t.Errorf("overrides cleared: %q, want the upstream's answer", body)
	}
}
