package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
	"github.com/spillway-dev/spillway/queue"
)

const faultYAML = `upstreams:
  app:
    instances: ["${URL}"]
    retry: {max_attempts: 1}
    breaker: {min_calls: 4, failure_rate: 50%, window: {size: 4}}
    timeouts: {attempt: 50ms}
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
    fallback: [static: {status: 200, body: degraded}]
    fault: ${FAULT}
`

func faultHarness(t *testing.T, fault string) (*harness, *backend) {
	t.Helper()
	be := newBackend(t, "ok")
	return start(t, faultConfig(t, be, fault)), be
}

// faultConfig is faultYAML with the route's fault: mapping.
func faultConfig(t *testing.T, be *backend, fault string) *config.Config {
	return parse(t, strings.Replace(faultYAML, "${FAULT}", fault, 1), map[string]string{"URL": be.URL})
}

func faultsInjected(t *testing.T, h *harness, route, kind string) float64 {
	t.Helper()
	return max(0, metricValue(t, h, "spillway_faults_injected_total", "route", route, "kind", kind))
}

// TestAFileAbortIsAFailureTheBreakerCountsAndTheFallbackServes: an abort
// is an attempt the upstream answered 503, without reaching it.
func TestAFileAbortIsAFailureTheBreakerCountsAndTheFallbackServes(t *testing.T) {
	h, be := faultHarness(t, "{abort: {percent: 100, status: 503}}")
	for range 4 {
		resp, body := h.do(t, "GET", "/x", nil, "")
		if resp.StatusCode != 200 || body != "degraded" || resp.Header.Get(gateway.FallbackHeader) != gateway.FallbackStatic {
			t.Fatalf("answer %d %q %v, want the static fallback", resp.StatusCode, body, resp.Header)
		}
	}
	if be.hits.Load() != 0 {
		t.Errorf("the upstream got %d requests, want 0", be.hits.Load())
	}
	if v, _ := h.gw.Upstream("app"); v.Live.Breaker.State != "open" {
		t.Errorf("breaker %q, want open: the injected aborts are failures", v.Live.Breaker.State)
	}
	if n := faultsInjected(t, h, "app", gateway.FaultAbort); n != 4 {
		t.Errorf("spillway_faults_injected_total{kind=abort} = %v, want 4", n)
	}
	if !strings.Contains(h.log.String(), `"fault":"abort"`) {
		t.Errorf("access log without the fault:\n%s", h.log.String())
	}
}

// TestAFileDelayTripsTheAttemptTimeout: the delay waits inside the attempt.
func TestAFileDelayTripsTheAttemptTimeout(t *testing.T) {
	h, be := faultHarness(t, "{delay: {percent: 100, duration: 1m}}")
	start := time.Now()
	resp, body := h.do(t, "GET", "/x", nil, "")
	if resp.StatusCode != 200 || body != "degraded" {
		t.Fatalf("answer %d %q, want the fallback after the attempt timeout", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("answered after %s: the attempt timeout (50ms) did not end the delay", d)
	}
	if be.hits.Load() != 0 || faultsInjected(t, h, "app", gateway.FaultDelay) != 1 {
		t.Errorf("hits %d, delays %v", be.hits.Load(), faultsInjected(t, h, "app", gateway.FaultDelay))
	}
	if !strings.Contains(h.log.String(), `"reason":"deadline_exceeded"`) {
		t.Errorf("the attempt did not time out:\n%s", h.log.String())
	}
}

func pct(v float64) *float64 { return &v }

// TestRuntimeFaults: added, listed, removed one by one and all at once,
// refused naming the field, and kept by a reload.
func TestRuntimeFaults(t *testing.T) {
	h, be := faultHarness(t, "{headers: false}")
	abort := gateway.FaultSpec{Route: "app", Abort: &gateway.FaultAbortSpec{Percent: pct(100), Status: 503}, ExpiresIn: "10m"}
	f, err := h.gw.AddFault(operator, abort)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.ID) != 16 || f.Who != "admin" || time.Until(f.ExpiresAt) < 9*time.Minute || time.Until(f.ExpiresAt) > 10*time.Minute {
		t.Errorf("fault = %+v", f)
	}
	if _, body := h.do(t, "GET", "/x", nil, ""); body != "degraded" || be.hits.Load() != 0 {
		t.Errorf("with the fault: %q, %d hits", body, be.hits.Load())
	}
	if l := h.gw.Faults(); len(l) != 1 || l[0].ID != f.ID {
		t.Errorf("Faults() = %+v", l)
	}
	if _, err := h.gw.Apply(h.gw.Config()); err != nil || len(h.gw.Faults()) != 1 {
		t.Fatalf("after a reload: %v, %+v", err, h.gw.Faults())
	}
	if _, body := h.do(t, "GET", "/x", nil, ""); body != "degraded" {
		t.Errorf("after a reload the fault is gone: %q", body)
	}
	if err := h.gw.RemoveFault(operator, f.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.gw.RemoveFault(operator, f.ID); !errors.Is(err, gateway.ErrUnknown) {
		t.Errorf("removing it again: %v", err)
	}
	if _, body := h.do(t, "GET", "/x", nil, ""); body != "ok" {
		t.Errorf("fault removed: %q", body)
	}
	g, _ := h.gw.AddFault(operator, abort)
	h2, _ := h.gw.AddFault(operator, abort)
	if g.ID == h2.ID {
		t.Errorf("two faults share the id %s", g.ID)
	}
	if n := h.gw.ClearFaults(operator); n != 2 || len(h.gw.Faults()) != 0 {
		t.Errorf("ClearFaults = %d, left %+v", n, h.gw.Faults())
	}
	var kinds []string
	evs, _ := h.gw.Events().Read(0, make([]gateway.Event, 64))
	for _, e := range evs {
		if e.Kind == gateway.EventFault {
			kinds = append(kinds, e.Data.(gateway.FaultEvent).Action)
		}
	}
	if strings.Join(kinds, ",") != "add,remove,add,add,clear" {
		t.Errorf("fault events %v", kinds)
	}
}

func TestARuntimeFaultIsValidatedAsTheFile(t *testing.T) {
	h, _ := faultHarness(t, "{headers: false}")
	for _, tt := range []struct {
		spec  gateway.FaultSpec
		field string
	}{
		{gateway.FaultSpec{Route: "app", Delay: &gateway.FaultDelaySpec{Percent: pct(150), Duration: "1s"}, ExpiresIn: "1m"}, "delay.percent"},
		{gateway.FaultSpec{Route: "app", Delay: &gateway.FaultDelaySpec{Duration: "1s"}, ExpiresIn: "1m"}, "delay.percent"},
		{gateway.FaultSpec{Route: "app", Delay: &gateway.FaultDelaySpec{Percent: pct(1), Duration: "2m"}, ExpiresIn: "1m"}, "delay.duration"},
		{gateway.FaultSpec{Route: "app", Abort: &gateway.FaultAbortSpec{Percent: pct(1), Status: 200}, ExpiresIn: "1m"}, "abort.status"},
		{gateway.FaultSpec{Route: "app", Abort: &gateway.FaultAbortSpec{Percent: pct(1), Status: 503}}, "expires_in"},
		{gateway.FaultSpec{Route: "app", Abort: &gateway.FaultAbortSpec{Percent: pct(1), Status: 503}, ExpiresIn: "2h"}, "expires_in"},
		{gateway.FaultSpec{Route: "app", ExpiresIn: "1m"}, ""},
	} {
		_, err := h.gw.AddFault(operator, tt.spec)
		var re *gateway.RefusedError
		if !errors.As(err, &re) || re.Field != tt.field {
			t.Errorf("AddFault(%+v) = %v, want refused at %q", tt.spec, err, tt.field)
		}
	}
	spec := gateway.FaultSpec{Route: "nope", Abort: &gateway.FaultAbortSpec{Percent: pct(1), Status: 503}, ExpiresIn: "1m"}
	if _, err := h.gw.AddFault(operator, spec); !errors.Is(err, gateway.ErrUnknown) {
		t.Errorf("unknown route: %v", err)
	}
	spec.Route = "app"
	for range gateway.MaxFaults {
		if _, err := h.gw.AddFault(operator, spec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.gw.AddFault(operator, spec); !errors.Is(err, gateway.ErrTooManyFaults) {
		t.Errorf("past MaxFaults: %v", err)
	}
}

// TestFaultHeaders: honoured only where fault.headers is true, never
// forwarded upstream.
func TestFaultHeaders(t *testing.T) {
	for _, on := range []bool{true, false} {
		h, be := faultHarness(t, map[bool]string{true: "{headers: true}", false: "{headers: false}"}[on])
		resp, body := h.do(t, "GET", "/x", map[string]string{gateway.FaultAbortHeader: "503"}, "")
		if want := map[bool]string{true: "degraded", false: "ok"}[on]; body != want {
			t.Errorf("headers %v: abort header answered %d %q, want %q", on, resp.StatusCode, body, want)
		}
		_, body = h.do(t, "GET", "/x", map[string]string{gateway.FaultDelayHeader: "1ms", "Spillway_Fault_Abort": "500"}, "")
		if body != "ok" {
			t.Errorf("headers %v: delay header answered %q", on, body)
		}
		for name := range be.last().Header {
			if strings.HasPrefix(strings.ToLower(name), "spillway-fault") || strings.HasPrefix(strings.ToLower(name), "spillway_fault") {
				t.Errorf("headers %v: %s forwarded upstream", on, name)
			}
		}
		resp, _ = h.do(t, "GET", "/x", map[string]string{gateway.FaultDelayHeader: "2m"}, "")
		if want := map[bool]int{true: 400, false: 200}[on]; resp.StatusCode != want {
			t.Errorf("headers %v: a delay over the bound answered %d, want %d", on, resp.StatusCode, want)
		}
	}
}

// TestAFaultChangedByAReloadAppliesInPlace.
func TestAFaultChangedByAReloadAppliesInPlace(t *testing.T) {
	be := newBackend(t, "ok")
	h := start(t, faultConfig(t, be, "{headers: false}"))
	cs, err := h.gw.Apply(faultConfig(t, be, "{abort: {percent: 100, status: 502}}"))
	if err != nil {
		t.Fatal(err)
	}
	if lines, _ := cs.Lines(); !strings.Contains(strings.Join(lines, "\n"), "fault") {
		t.Errorf("changes %v do not name the fault", lines)
	}
	if _, body := h.do(t, "GET", "/x", nil, ""); body != "degraded" || be.hits.Load() != 0 {
		t.Errorf("after the reload: %q, %d hits", body, be.hits.Load())
	}
}

// TestAnExpiredRuntimeFaultIsGone: once the gateway's clock passes its
// expiry, a runtime fault is drawn no more, listed no more, and not counted
// by the kill switch; nothing had to run for that.
func TestAnExpiredRuntimeFaultIsGone(t *testing.T) {
	h, be := faultHarness(t, "{headers: false}")
	var now atomic.Int64
	now.Store(time.Unix(1000, 0).UnixNano())
	gateway.SetClock(h.gw, func() time.Time { return time.Unix(0, now.Load()) })
	f, err := h.gw.AddFault(operator, gateway.FaultSpec{Route: "app", Abort: &gateway.FaultAbortSpec{Percent: pct(100), Status: 503}, ExpiresIn: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	if !f.ExpiresAt.Equal(time.Unix(1600, 0)) {
		t.Errorf("expires_at %s, want 10m after the gateway's clock", f.ExpiresAt)
	}
	if _, body := h.do(t, "GET", "/x", nil, ""); body != "degraded" {
		t.Fatalf("before the expiry: %q", body)
	}
	now.Store(time.Unix(1600, 0).UnixNano())
	if _, body := h.do(t, "GET", "/x", nil, ""); body != "ok" || be.hits.Load() != 1 {
		t.Errorf("expired, still drawn: %q, %d hits", body, be.hits.Load())
	}
	if l := h.gw.Faults(); len(l) != 0 {
		t.Errorf("expired, still listed: %+v", l)
	}
	if n := h.gw.ClearFaults(operator); n != 0 {
		t.Errorf("the kill switch counted %d expired faults", n)
	}
}

// TestAnAsyncRoutesDeliveriesDrawItsFault: a delivery is an attempt of
// the route too; aborted every time, the job ends in the dead letters
// without the upstream seeing it.
func TestAnAsyncRoutesDeliveriesDrawItsFault(t *testing.T) {
	u := newRecording(t)
	yml := fmt.Sprintf(asyncYAML, "", "") + "    fault: {abort: {percent: 100, status: 503}}\n"
	h := startAsync(t, parse(t, yml, map[string]string{"U": u.URL}), openQueue(t))
	a := h.post(t, "/orders/new", nil, `{"order":1}`)
	if st := h.waitState(t, a.ID, queue.StateDead); st.LastStatus != 503 {
		t.Errorf("status %+v", st)
	}
	if u.count() != 0 || faultsInjected(t, h, "orders", gateway.FaultAbort) < 3 {
		t.Errorf("%d deliveries reached the upstream, %v aborts injected", u.count(), faultsInjected(t, h, "orders", gateway.FaultAbort))
	}
}

// TestAClientGoneEndsAnInjectedDelay: the delay waits on the attempt's
// context, which the client's departure ends.
func TestAClientGoneEndsAnInjectedDelay(t *testing.T) {
	be := newBackend(t, "ok")
	cfg := strings.Replace(strings.Replace(faultYAML, "${FAULT}", "{delay: {percent: 100, duration: 1m}}", 1), "attempt: 50ms", "attempt: 5m, total: 10m", 1)
	h := start(t, parse(t, cfg, map[string]string{"URL": be.URL}))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/x", nil)
	if resp, err := h.srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d within the 1m delay", resp.StatusCode)
	}
	eventually(t, "the request ended", func() bool { return strings.Contains(h.log.String(), `"outcome":"canceled"`) })
	if be.hits.Load() != 0 {
		t.Errorf("the upstream got the request after the client left")
	}
}

// TestFaultChangesAreAuditLogged: who added, removed and cleared which
// faults, one line each.
func TestFaultChangesAreAuditLogged(t *testing.T) {
	var log spillwaytest.Buffer
	gw, err := gateway.New(faultConfig(t, newBackend(t, "ok"), "{headers: false}"), gateway.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	f, err := gw.AddFault(gateway.Actor{Who: "ops", Call: "POST /api/v1/faults"}, gateway.FaultSpec{Route: "app",
		Abort: &gateway.FaultAbortSpec{Percent: pct(1), Status: 503}, ExpiresIn: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	_ = gw.RemoveFault(gateway.Actor{Who: "ops", Call: "DELETE"}, f.ID)
	gw.ClearFaults(gateway.Actor{Who: "oncall", Call: "DELETE"})
	for _, want := range []string{"who=ops call=\"POST /api/v1/faults\" action=add ids=[" + f.ID + "]", "action=remove ids=[" + f.ID + "]", "who=oncall call=DELETE action=clear ids=[]"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("audit log lacks %q:\n%s", want, log.String())
		}
	}
}
