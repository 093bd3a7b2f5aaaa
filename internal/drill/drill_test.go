package drill

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/internal/server"
)

// drillConfig is the gateway of the drill tests, in front of
// ${DRILL_UPSTREAM} (see the file).
const drillConfig = "testdata/drill.yaml"

// startUpstream starts a healthy upstream on loopback and returns the
// drill's configuration in front of it.
func startUpstream(t *testing.T) string {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	t.Setenv("DRILL_UPSTREAM", up.URL)
	t.Setenv("DRILL_TOKEN", "drill-token")
	return drillConfig
}

func runScenario(t *testing.T, scenario string, d time.Duration, expects ...string) *Report {
	t.Helper()
	file := startUpstream(t)
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	r, err := Run(ctx, Options{File: file, Scenario: scenario, Upstream: "svc", Rate: 100, Duration: d,
		Expects: expects, Latency: 400 * time.Millisecond, FlapEvery: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m := r.Metrics
	t.Logf("%s: requests %d availability %.2f%% fallbacks %.2f%% errors %.2f%% %v p50 %.1fms p99 %.1fms max %.1fms amplification %.3f open %.0fms recover %.0fms",
		scenario, m.Requests, m.Availability, m.FallbackShare, m.ErrorRate, m.ErrorsByReason, m.P50ms, m.P99ms, m.MaxMs,
		m.Amplification, m.TimeToOpenMs, m.TimeToRecoverMs)
	for _, c := range r.Checks {
		if !c.Pass {
			t.Errorf("%s: %s failed: %v", scenario, c.Expect, c.Value)
		}
	}
	return r
}

func TestDrillOutage(t *testing.T) {
	r := runScenario(t, "outage", 4*time.Second,
		"time_to_open<=1s", "amplification<=1.2", "fallback_share>0", "availability>=95%", "time_to_recover<=1s")
	if len(r.Series) != 4 {
		t.Errorf("series: %d samples, want 4", len(r.Series))
	}
}

func TestDrillBlackhole(t *testing.T) {
	// Attempts time out at 200ms: the breaker judges from 10 calls.
	runScenario(t, "blackhole", 5*time.Second,
		"time_to_open<=1500ms", "amplification<=1.5", "fallback_share>0", "availability>=95%", "time_to_recover<=1s")
}

func TestDrillLatency(t *testing.T) {
	runScenario(t, "latency", 5*time.Second,
		"time_to_open<=1500ms", "amplification<=1.5", "fallback_share>0", "availability>=95%", "time_to_recover<=1s")
}

func TestDrillErrors(t *testing.T) {
	runScenario(t, "errors", 4*time.Second,
		"time_to_open<=1s", "amplification<=1.5", "fallback_share>0", "availability>=95%", "time_to_recover<=1s")
}

func TestDrillFlapping(t *testing.T) {
	r := runScenario(t, "flapping", 4*time.Second, "amplification<=1.5", "availability>=95%", "time_to_recover<=1s")
	// The fault phase (0.8s to 2.8s) turns the outage on and off every 500ms:
	// the breaker opened during it.
	if r.Metrics.TimeToOpenMs < 0 {
		t.Error("the breaker never opened while the upstream flapped")
	}
}

func TestDrillRecovery(t *testing.T) {
	// The outage ends at 1.6s; open_for 500ms and two probes bring the
	// upstream back well within the 2.4s of recovery.
	runScenario(t, "recovery", 4*time.Second, "time_to_open<=1s", "time_to_recover<=1s", "availability>=95%")
}

// A bad input is refused, as an *InputError, before any request reaches
// the upstream.
func TestDrillRefusesBadInputBeforeLoad(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer up.Close()
	t.Setenv("DRILL_UPSTREAM", up.URL)
	t.Setenv("DRILL_TOKEN", "drill-token")
	file := drillConfig
	good := Options{File: file, Scenario: "outage", Upstream: "svc", Rate: 10, Duration: 5 * time.Second}
	for name, change := range map[string]func(*Options){
		"no file":              func(o *Options) { o.File = "" },
		"missing file":         func(o *Options) { o.File = "testdata/none.yaml" },
		"no upstream":          func(o *Options) { o.Upstream = "" },
		"unknown scenario":     func(o *Options) { o.Scenario = "meteor" },
		"unknown upstream":     func(o *Options) { o.Upstream = "nope" },
		"unknown route":        func(o *Options) { o.Route = "nope" },
		"unknown metric":       func(o *Options) { o.Expects = []string{"uptime>=99%"} },
		"unknown unit":         func(o *Options) { o.Expects = []string{"p99<=3h"} },
		"zero rate":            func(o *Options) { o.Rate = 0 },
		"negative rate":        func(o *Options) { o.Rate = -5 },
		"short duration":       func(o *Options) { o.Duration = time.Second },
		"relative path":        func(o *Options) { o.Path = "svc" },
		"gateway alone":        func(o *Options) { o.Gateway = "http://127.0.0.1:8080" },
		"gateway off loopback": func(o *Options) { o.Gateway, o.Admin = "http://10.0.0.1:8080", "http://127.0.0.1:9901" },
		"admin off loopback":   func(o *Options) { o.Gateway, o.Admin = "http://127.0.0.1:8080", "http://example.com:9901" },
		"flapping too slow": func(o *Options) {
			o.Scenario, o.FlapEvery = "flapping", 2*time.Second
		},
	} {
		o := good
		change(&o)
		_, err := Run(context.Background(), o)
		var bad *InputError
		if !errors.As(err, &bad) {
			t.Errorf("%s: got %v, want an *InputError", name, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the upstream got %d requests from refused drills", n)
	}
}

// Ending the context stops the load, the proxies and the gateway at once,
// leaving no goroutine behind.
func TestDrillStopsWhenInterrupted(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // after the upstream's cleanup
	file := startUpstream(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel) // during the fault phase
	start := time.Now()
	_, err := Run(ctx, Options{File: file, Scenario: "blackhole", Upstream: "svc", Rate: 50, Duration: 20 * time.Second})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stopped after %s, want soon after the interruption", d)
	}
}

// With --gateway and --admin, the drill repoints the running gateway's
// instances at its fault proxy through the runtime API, and back after.
func TestDrillRunningGateway(t *testing.T) {
	file := startUpstream(t)
	cfg, _, err := server.LoadAndCheck(file)
	if err != nil {
		t.Fatal(err)
	}
	// The "running" gateway: started as a drill starts one, its own
	// fault proxy left alone.
	gw, err := startLocal(context.Background(), cfg, "svc", time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gw.stop() }()
	var before gateway.UpstreamView
	if err := gw.getJSON(context.Background(), "/api/v1/upstreams/svc", &before); err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), Options{File: file, Scenario: "errors", Upstream: "svc", Rate: 100, Duration: 4 * time.Second,
		Gateway: gw.public, Admin: gw.admin, Token: "drill-token", Expects: []string{"time_to_open<=1s", "fallback_share>0", "time_to_recover<=1s"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("running gateway, errors: availability %.2f%% fallbacks %.2f%% open %.0fms recover %.0fms",
		r.Metrics.Availability, r.Metrics.FallbackShare, r.Metrics.TimeToOpenMs, r.Metrics.TimeToRecoverMs)
	for _, c := range r.Checks {
		if !c.Pass {
			t.Errorf("%s failed: %v", c.Expect, c.Value)
		}
	}
	var after gateway.UpstreamView
	if err := gw.getJSON(context.Background(), "/api/v1/upstreams/svc", &after); err != nil {
		t.Fatal(err)
	}
	if after.Instances[0].URL != before.Instances[0].URL {
		t.Errorf("instances after the drill: %s, want %s back", after.Instances[0].URL, before.Instances[0].URL)
	}
	// The gateway had no override: the drill cleared its own.
	var ovs struct{ Overrides []json.RawMessage }
	if err := gw.getJSON(context.Background(), "/api/v1/overrides", &ovs); err != nil || len(ovs.Overrides) != 0 {
		t.Errorf("overrides after the drill: %s (%v), want none", ovs.Overrides, err)
	}
}

// Through an async route the clients get their 202 all along, the jobs
// pile up in the queue while the upstream is out (2s at 50/s), and the
// queue drains in the 1.2s of recovery (backoff at most 200ms, 8
// deliveries at once): at the end only the last requests' jobs may wait.
func TestDrillAsyncBacklog(t *testing.T) {
	file := startUpstream(t)
	r, err := Run(context.Background(), Options{File: file, Scenario: "outage", Upstream: "svc", Route: "jobs", Rate: 50, Duration: 4 * time.Second,
		Expects: []string{"availability>=99%", "fallback_share==0", "queue_backlog_max>=40", "queue_backlog<=10"}})
	if err != nil {
		t.Fatal(err)
	}
	m := r.Metrics
	t.Logf("async outage: requests %d availability %.2f%% p99 %.1fms amplification %.3f open %.0fms recover %.0fms backlog at the end %d, at most %d",
		m.Requests, m.Availability, m.P99ms, m.Amplification, m.TimeToOpenMs, m.TimeToRecoverMs, m.QueueBacklog, m.QueueBacklogMax)
	for _, c := range r.Checks {
		if !c.Pass {
			t.Errorf("%s failed: %v", c.Expect, c.Value)
		}
	}
}
