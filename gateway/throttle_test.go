package gateway_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway/config"
)

// throttledYAML is an upstream guarded by the throttle alone (the breaker
// disabled, no retry, no ejection), so that every refusal is the
// throttle's. Its window is short for the test: 1s, in 100ms buckets.
const throttledYAML = `
upstreams:
  svc:
    instances: ["${B}"]
    throttle: {k: 2, window: 1s}
    breaker: {mode: disabled}
    retry: {max_attempts: 1}
    outlier: {consecutive_failures: 0}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`

// TestThrottleRefusesAtTheFormulasRateAndRecovers drives an upstream that
// fails 80 % of the calls it gets: the gateway starts refusing requests
// locally (429 throttled), at the rate its throttle's probability says
// (the formula, here at its 90 % cap: what the upstream accepts falls
// with what it is sent), counts them and shows the probability; once the
// upstream recovers, the refusals fade.
func TestThrottleRefusesAtTheFormulasRateAndRecovers(t *testing.T) {
	var calls int64
	b := newBackend(t, "ok")
	h := start(t, parse(t, throttledYAML, map[string]string{"B": b.URL}))
	failing := func() { // 4 calls in 5 fail
		calls = b.hits.Load()
		if calls%5 != 4 {
			b.status.Store(503)
		} else {
			b.status.Store(0)
		}
	}
	throttled := 0
	get := func() bool {
		failing()
		resp, body := h.do(t, "GET", "/", nil, "")
		if resp.StatusCode != 429 {
			return false
		}
		if r := resp.Header.Get("Spillway-Reason"); r != "throttled" || resp.Header.Get("Retry-After") != "1" ||
			!strings.Contains(body, `"reason":"throttled"`) {
			t.Fatalf("refusal: %d, Spillway-Reason %q, Retry-After %q, %s", resp.StatusCode, r, resp.Header.Get("Retry-After"), body)
		}
		throttled++
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for !get() {
		if time.Now().After(deadline) {
			t.Fatal("no request throttled in 10s of an upstream failing 80 % of its calls")
		}
	}
	// Settled at the cap: measure the refusals against the probability.
	for range 200 {
		get()
	}
	p := liveThrottle(t, h).RejectionProbability
	before, n := throttled, 1000
	for range n {
		get()
	}
	rate := float64(throttled-before) / float64(n)
	if math.Abs(rate-p) > 0.05 || math.Abs(rate-0.9) > 0.05 {
		t.Errorf("refused %.3f of the requests, the throttle's probability was %.3f, its cap 0.9", rate, p)
	}
	if got := metricValue(t, h, "spillway_rejected_total", "upstream", "svc", "reason", "throttled"); got != float64(throttled) {
		t.Errorf("spillway_rejected_total{reason=throttled} = %v, %d requests were throttled", got, throttled)
	}
	if g := metricValue(t, h, "spillway_throttle_rejection_probability", "upstream", "svc"); g <= 0 || g > 0.9 {
		t.Errorf("spillway_throttle_rejection_probability = %v, want in (0, 0.9]", g)
	}
	if lt := liveThrottle(t, h); lt.Requests == 0 || lt.Accepts > lt.Requests || lt.Rejected != uint64(throttled) {
		t.Errorf("live throttle = %+v, %d throttled", lt, throttled)
	}

	// The upstream recovers: the refusals fade with the window.
	b.status.Store(0)
	failing = func() {}
	// 100 requests without a refusal do not prove the probability 0 (at
	// 0.003 most such runs see none): wait for the probability itself,
	// then check that nothing is refused at 0.
	deadline = time.Now().Add(20 * time.Second)
	for {
		before := throttled
		for range 100 {
			get()
		}
		p := liveThrottle(t, h).RejectionProbability
		if p == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rejection probability %v, %d of 100 requests throttled, 20s after the upstream recovered (window 1s)", p, throttled-before)
		}
	}
	before = throttled
	for range 100 {
		get()
	}
	if throttled != before {
		t.Errorf("%d of 100 requests throttled at a rejection probability of 0", throttled-before)
	}
}

type throttleLive struct {
	RejectionProbability float64
	Requests, Accepts    int64
	Rejected             uint64
}

// liveThrottle reads the runtime API's live.throttle of upstream svc.
func liveThrottle(t *testing.T, h *harness) throttleLive {
	t.Helper()
	v, ok := h.gw.Upstream("svc")
	if !ok || v.Live.Throttle == nil || v.Policies.Throttle == nil {
		t.Fatalf("upstream svc has no throttle in the runtime API: %+v", v)
	}
	lt := v.Live.Throttle
	return throttleLive{RejectionProbability: lt.RejectionProbability, Requests: lt.Requests, Accepts: lt.Accepts, Rejected: lt.Rejected}
}

func TestThrottleReloadKeepsItsWindow(t *testing.T) {
	b := newBackend(t, "ok")
	vars := map[string]string{"B": b.URL}
	h := start(t, parse(t, strings.Replace(throttledYAML, "window: 1s", "window: 1m", 1), vars))
	b.status.Store(503)
	for range 10 {
		h.do(t, "GET", "/", nil, "")
	}
	before := liveThrottle(t, h)
	if before.Requests != 10 || before.Accepts != 0 {
		t.Fatalf("live throttle = %+v, want 10 requests, 0 accepts", before)
	}
	cs, err := h.gw.Apply(parse(t, strings.Replace(throttledYAML, "{k: 2, window: 1s}", "{k: 1.5, window: 2m, max_rejection: 50%}", 1), vars))
	if err != nil {
		t.Fatal(err)
	}
	var named bool
	for _, c := range cs.Applied {
		if c.Upstream == "svc" && c.Part == "throttle" {
			named = strings.Contains(c.Detail, "throttle.k 2 → 1.5") && strings.Contains(c.Detail, "kept")
		}
	}
	if !named {
		t.Errorf("the reload's answer does not name the throttle's change: %+v", cs.Applied)
	}
	if after := liveThrottle(t, h); after.Requests != before.Requests || after.RejectionProbability != 0.5 {
		t.Errorf("live throttle after the reload = %+v, want the 10 requests kept and the new cap 0.5", after)
	}
	if v, _ := h.gw.Upstream("svc"); v.Policies.Throttle.K != 1.5 || v.Policies.Throttle.Window != "2m0s" || v.Policies.Throttle.MaxRejection != 0.5 {
		t.Errorf("policies.throttle after the reload = %+v", *v.Policies.Throttle)
	}
	// Removing throttle: stops throttling; adding it back starts an empty window.
	if _, err := h.gw.Apply(parse(t, strings.Replace(throttledYAML, "    throttle: {k: 2, window: 1s}\n", "", 1), vars)); err != nil {
		t.Fatal(err)
	}
	if v, _ := h.gw.Upstream("svc"); v.Live.Throttle != nil || v.Policies.Throttle != nil {
		t.Errorf("a removed throttle still shows: %+v", v)
	}
	if metricValue(t, h, "spillway_throttle_rejection_probability", "upstream", "svc") != -1 {
		t.Error("a removed throttle still has its gauge")
	}
}

func TestThrottleConfig(t *testing.T) {
	for _, tt := range []struct{ throttle, want string }{
		{"{k: 0.5}", "test.yaml:4:19: upstreams.svc.throttle.k: 0.5 is less than 1"},
		{"{window: 0s}", "upstreams.svc.throttle.window: must be more than 0"},
		{"{max_rejection: 0%}", "upstreams.svc.throttle.max_rejection: must be more than 0% (at 0% the throttle would refuse nothing: leave throttle: out)"},
		{"{max_rejection: 120%}", "upstreams.svc.throttle.max_rejection: 120% is not between 0% and 100%"},
		{"{kk: 2}", `unknown key "kk" in upstreams.svc.throttle; did you mean "k"?`},
	} {
		yaml := "upstreams:\n  svc:\n    instances: [http://127.0.0.1:1]\n    throttle: " + tt.throttle + "\nroutes: [{name: r, upstream: svc}]\n"
		_, _, err := config.Parse("test.yaml", []byte(yaml), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("throttle: %s: got %v, want %q", tt.throttle, err, tt.want)
		}
	}
	cfg, _, err := config.Parse("test.yaml", []byte("upstreams:\n  svc:\n    instances: [http://127.0.0.1:1]\n    throttle: {k: 1, max_rejection: 100%}\nroutes: [{name: r, upstream: svc}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := checkWarnings(t, cfg)
	want := []string{
		"test.yaml:4:19: upstreams.svc.throttle.k: K is 1: the first failed call in the window starts refusing calls (the SRE book suggests 2, or 1.1 to throttle sooner)",
		"test.yaml:4:37: upstreams.svc.throttle.max_rejection: MaxRejectionRate is 1: once the downstream accepts nothing, all but one call in requests+1 is refused for as long as calls keep coming, so the throttle hardly learns that it recovered",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Check warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A throttled gRPC call is answered in gRPC's terms: RESOURCE_EXHAUSTED,
// the trailer spillway-reason throttled and a pushback of one second.
func TestGRPCThrottledIsResourceExhausted(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	u.setScript(func(context.Context, int64) error { return status.Error(codes.Unavailable, "overloaded") })
	c := h2cGateway(t, u, "    throttle: {k: 2}\n    breaker: {mode: disabled}\n    outlier: {consecutive_failures: 0}")
	ctx := grpcCtx(t)
	for {
		var trailer metadata.MD
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
		s := status.Convert(err)
		if s.Code() == codes.Unavailable && strings.Contains(s.Message(), "overloaded") {
			continue // the upstream's own answer; the throttle learns from it
		}
		if s.Code() != codes.ResourceExhausted || !strings.HasPrefix(s.Message(), "throttled: ") {
			t.Fatalf("status %v %q, want ResourceExhausted throttled: ...", s.Code(), s.Message())
		}
		if got := trailer.Get("spillway-reason"); len(got) != 1 || got[0] != "throttled" {
			t.Errorf("spillway-reason %q, want [throttled]", got)
		}
		if got := trailer.Get("grpc-retry-pushback-ms"); len(got) != 1 || got[0] != "1000" {
			t.Errorf("grpc-retry-pushback-ms %q, want [1000]", got)
		}
		return
	}
}
