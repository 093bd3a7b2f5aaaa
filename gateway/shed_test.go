package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/gateway"
)

const shedYAML = `
upstreams:
  svc:
    instances: ["${S}"]
    bulkhead: {max_concurrent: 4}
    retry: {max_attempts: 1}
    shed: {sheddable_at: 50%, default_at: 75%}
routes:
  - name: open
    match: {path_prefix: /open}
    upstream: svc
  - name: batch
    match: {path_prefix: /batch}
    upstream: svc
    priority: {default: sheddable, trust_header: false}
`

// holder is an upstream that holds the requests to /open/hold until
// released and answers the others at once.
type holder struct {
	*httptest.Server
	held    atomic.Int64
	release chan struct{}
}

func newHolder(t *testing.T) *holder {
	h := &holder{release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/hold") {
			h.held.Add(1)
			<-h.release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(h.Close)
	return h
}

// hold sends n requests that the upstream holds, waits until it holds
// them all, and returns a function that lets them go and waits for them.
func (hd *holder) hold(t *testing.T, h *harness, n int) func() {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", h.srv.URL+"/open/hold", nil)
			req.Header.Set(gateway.PriorityHeader, "critical")
			if resp, err := h.srv.Client().Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for hd.held.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("the upstream holds %d requests, want %d", hd.held.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	return func() {
		close(hd.release)
		wg.Wait()
	}
}

// TestShedByPriority holds the bulkhead at 3 of 4: sheddable and default
// requests are refused 503 bulkhead_full, a critical one passes; the
// header's word is taken only where the route trusts it.
func TestShedByPriority(t *testing.T) {
	up := newHolder(t)
	h := start(t, parse(t, shedYAML, map[string]string{"S": up.URL}))
	status := func(path, prio string) (int, string) {
		hdr := map[string]string{}
		if prio != "" {
			hdr[gateway.PriorityHeader] = prio
		}
		resp, _ := h.do(t, "GET", path, hdr, "")
		return resp.StatusCode, resp.Header.Get("Spillway-Reason")
	}

	// Nothing held: every class passes, except on the batch route none.
	for _, p := range []string{"sheddable", "default", "critical", ""} {
		if code, _ := status("/open/x", p); code != 200 {
			t.Errorf("idle, %q: %d", p, code)
		}
	}
	done := up.hold(t, h, 2) // 50 %
	if code, reason := status("/open/x", "sheddable"); code != 503 || reason != "bulkhead_full" {
		t.Errorf("2 of 4 held, sheddable: %d %q, want 503 bulkhead_full", code, reason)
	}
	if code, _ := status("/open/x", "bogus"); code != 200 {
		t.Errorf("2 of 4 held, an unknown class (default): %d, want 200", code)
	}
	if code, _ := status("/batch/x", "critical"); code != 503 {
		t.Errorf("2 of 4 held, a critical claim on a route that does not trust it: %d, want 503", code)
	}
	v, _ := h.gw.Upstream("svc")
	if v.Live.Shed == nil || v.Live.Shed.Sheddable != 2 || v.Live.Shed.Default != 0 || v.Policies.Shed == nil || v.Policies.Shed.DefaultAt != 0.75 {
		t.Errorf("runtime view: live %+v, policies %+v", v.Live.Shed, v.Policies.Shed)
	}
	done()

	up.release = make(chan struct{})
	up.held.Store(0)
	done = up.hold(t, h, 3) // 75 %
	defer done()
	for _, p := range []string{"sheddable", "default", ""} {
		if code, reason := status("/open/x", p); code != 503 || reason != "bulkhead_full" {
			t.Errorf("3 of 4 held, %q: %d %q, want 503 bulkhead_full", p, code, reason)
		}
	}
	if code, _ := status("/open/x", "critical"); code != 200 {
		t.Errorf("3 of 4 held, critical: %d, want 200", code)
	}
	if got := metricValue(t, h, "spillway_rejected_total", "upstream", "svc", "reason", "bulkhead_full"); got != 5 {
		t.Errorf("spillway_rejected_total{reason=bulkhead_full} = %v, want 5", got)
	}
}

// TestApplyShedAndSlowStart: a reload changes the shedder's thresholds in
// place (its counts kept), adds and drops it, and turns slow start on for
// the breaker and the instances; each is named in the reload's answer.
func TestApplyShedAndSlowStart(t *testing.T) {
	up := newHolder(t)
	vars := map[string]string{"S": up.URL}
	h := start(t, parse(t, shedYAML, vars))
	done := up.hold(t, h, 2)
	defer done()
	if resp, _ := h.do(t, "GET", "/batch/x", nil, ""); resp.StatusCode != 503 {
		t.Fatalf("2 of 4 held, batch: %d, want 503", resp.StatusCode)
	}

	cs, err := h.gw.Apply(parse(t, strings.Replace(shedYAML, "sheddable_at: 50%", "sheddable_at: 75%", 1), vars))
	if err != nil {
		t.Fatal(err)
	}
	if !hasChange(cs.Applied, "shed", "shed.sheddable_at 0.5 → 0.75; its counts kept") {
		t.Errorf("reload answer: %+v", cs.Applied)
	}
	if resp, _ := h.do(t, "GET", "/batch/x", nil, ""); resp.StatusCode != 200 {
		t.Errorf("after raising sheddable_at to 75 %%, batch at 2 of 4: %d, want 200", resp.StatusCode)
	}
	v, _ := h.gw.Upstream("svc")
	if v.Live.Shed == nil || v.Live.Shed.Sheddable != 1 || v.Policies.Shed.SheddableAt != 0.75 {
		t.Errorf("after the reload: live %+v, policies %+v; want the count kept and 0.75", v.Live.Shed, v.Policies.Shed)
	}

	slow := strings.Replace(shedYAML, "    shed: {sheddable_at: 50%, default_at: 75%}\n", "    slow_start: {window: 30s}\n", 1)
	if cs, err = h.gw.Apply(parse(t, slow, vars)); err != nil {
		t.Fatal(err)
	}
	if !hasChange(cs.Applied, "shed", "shed") || !hasChange(cs.Applied, "breaker", "slow_start.window 0s → 30s") ||
		!hasChange(cs.Applied, "pool", "slow_start.window 0s → 30s") {
		t.Errorf("reload answer: %+v", cs.Applied)
	}
	v, _ = h.gw.Upstream("svc")
	if v.Policies.Shed != nil || v.Live.Shed != nil || v.Policies.SlowStart.Window != "30s" {
		t.Errorf("after dropping shed: and adding slow_start: policies %+v %+v, live %+v", v.Policies.Shed, v.Policies.SlowStart, v.Live.Shed)
	}
	if resp, _ := h.do(t, "GET", "/batch/x", nil, ""); resp.StatusCode != 200 {
		t.Errorf("without shed:, batch: %d, want 200", resp.StatusCode)
	}
}

// TestSlowStartInTheInstanceStatus: an instance restored by hand ramps
// up, and the runtime API's instance status shows its weight and the time
// left (the pool's own tests hold the ramp's shape to an explicit clock).
func TestSlowStartInTheInstanceStatus(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	h := start(t, parse(t, `
upstreams:
  svc:
    instances: ["${A}", "${B}"]
    slow_start: {window: 1h}
routes:
  - name: r
    upstream: svc
`, map[string]string{"A": a.URL, "B": b.URL}))
	if _, err := h.gw.SetInstance(operator, "svc", b.URL, "eject"); err != nil {
		t.Fatal(err)
	}
	v, err := h.gw.SetInstance(operator, "svc", b.URL, "restore")
	if err != nil {
		t.Fatal(err)
	}
	st := v.Instances[1]
	if left, err := time.ParseDuration(st.RampingFor); err != nil || left < 59*time.Minute || st.Weight < 0.1 || st.Weight > 0.11 {
		t.Errorf("restored instance: weight %v ramping for %q, want about 0.1 and 1h", st.Weight, st.RampingFor)
	}
	if v.Instances[0].Weight != 0 || v.Instances[0].RampingFor != "" {
		t.Errorf("the other instance ramps: %+v", v.Instances[0])
	}
}
