package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/internal/natstest"
	"github.com/spillway-dev/spillway/queue"
)

// sharedLimitYAML is a route whose one bucket (key: route) of 20 requests
// every gateway shares through the queue's NATS cluster; at 60/h, no more
// than one token comes back during a test.
const sharedLimitYAML = `
queue: {servers: ["${NATS}"]}
upstreams: {api: {instances: ["${B}"]}}
routes:
  - {name: api, match: {path_prefix: /}, upstream: api, rate_limit: {rate: 60/h, burst: 20, key: route, shared: true}}
`

// TestRateLimitSharedByTwoGateways: two gateways on one NATS server, each
// with its queue, serve a route whose limit is shared: together they admit
// one burst (20, less the leases left unspent: 2 of 2 tokens each), where
// two local limits would admit 40; both say the limit is shared.
func TestRateLimitSharedByTwoGateways(t *testing.T) {
	s := natstest.Start(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		JetStreamMaxMemory: 16 << 20, JetStreamMaxStore: 4 << 30, NoSigs: true, NoLog: true})
	gateway.SetSharedLeaseTimeout(t, time.Second)
	be := newBackend(t, "ok")
	cfg := parse(t, sharedLimitYAML, map[string]string{"B": be.URL, "NATS": s.ClientURL()})
	var hs [2]*harness
	for i := range hs {
		hs[i] = startAsync(t, cfg, openQueueWith(t, queue.Config{Servers: []string{s.ClientURL()}}))
	}
	deadline := time.Now().Add(20 * time.Second)
	for metricValue(t, hs[0], "spillway_rate_limit_shared_replicas", "route", "api") != 2 ||
		metricValue(t, hs[1], "spillway_rate_limit_shared_replicas", "route", "api") != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the gateways did not count each other: %v %v", metricValue(t, hs[0], "spillway_rate_limit_shared_replicas", "route", "api"), metricValue(t, hs[0], "spillway_rate_limit_shared", "route", "api"))
		}
		time.Sleep(10 * time.Millisecond)
	}

	var admitted, throttled [2]int
	for i := range 60 {
		resp, _ := hs[i%2].do(t, "GET", "/x", nil, "")
		switch {
		case resp.StatusCode == http.StatusOK:
			admitted[i%2]++
		case resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Spillway-Reason") == "throttled":
			throttled[i%2]++
		default:
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, resp.Header.Get("Spillway-Reason"))
		}
	}
	total := admitted[0] + admitted[1]
	t.Logf("admitted %v, throttled %v", admitted, throttled)
	if total < 16 || total > 21 || admitted[0] == 0 || admitted[1] == 0 || throttled[0] == 0 || throttled[1] == 0 {
		t.Fatalf("admitted %v, throttled %v: want 16-21 admitted in all (one burst of 20, less unspent leases, plus a refill), by both", admitted, throttled)
	}
	for i, h := range hs {
		if got := metricValue(t, h, "spillway_rate_limit_shared", "route", "api"); got != 1 {
			t.Errorf("gateway %d: spillway_rate_limit_shared = %v, want 1", i, got)
		}
		if got := metricValue(t, h, "spillway_rate_limit_shared_fallbacks_total", "route", "api"); got != 0 {
			t.Errorf("gateway %d: %v fallbacks", i, got)
		}
		if v := routeView(t, h.gw, "api").RateLimit; v == nil || v.Shared == nil || *v.Shared != (gateway.SharedLimitView{Active: true, Replicas: 2}) {
			t.Errorf("gateway %d: the route view's rate_limit %+v, want shared, active, 2 replicas", i, v)
		}
	}
}

// TestRateLimitSharedNeedsQueue: a gateway without a queue refuses a
// shared limit (serve opens one for it); validate builds it without
// connecting.
func TestRateLimitSharedNeedsQueue(t *testing.T) {
	cfg := parse(t, sharedLimitYAML, map[string]string{"B": "http://127.0.0.1:1", "NATS": "nats://127.0.0.1:1"})
	if g, err := gateway.New(cfg, gateway.Options{}); err == nil {
		g.Close()
		t.Fatal("a shared limit without a queue was accepted")
	}
	if _, err := gateway.Check(cfg); err != nil {
		t.Fatalf("check: %v", err)
	}
	if !gateway.NeedsQueue(cfg) {
		t.Fatal("NeedsQueue: false for a shared limit")
	}
}

// TestRateLimitSharedReload: a reload that changes a shared limit makes a
// new limiter, says that the buckets in NATS are kept, and stops the old
// one's heartbeat; a reload that removes it stops it too (goleak checks
// at the end of the package).
func TestRateLimitSharedReload(t *testing.T) {
	s := natstest.Start(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		JetStreamMaxMemory: 16 << 20, JetStreamMaxStore: 4 << 30, NoSigs: true, NoLog: true})
	gateway.SetSharedLeaseTimeout(t, time.Second)
	vars := map[string]string{"B": "http://127.0.0.1:1", "NATS": s.ClientURL()}
	h := startAsync(t, parse(t, sharedLimitYAML, vars), openQueueWith(t, queue.Config{Servers: []string{s.ClientURL()}}))
	cs, err := h.gw.Apply(parse(t, strings.Replace(sharedLimitYAML, "burst: 20", "burst: 30", 1), vars))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cs.Resets {
		found = found || c.Route == "api" && c.Part == "rate_limit" && strings.Contains(c.Detail, "every key's bucket kept in NATS")
	}
	if !found {
		t.Fatalf("resets %+v: want the shared limiter's", cs.Resets)
	}
	if got := metricValue(t, h, "spillway_rate_limit_shared", "route", "api"); got != 1 {
		t.Fatalf("after the reload: spillway_rate_limit_shared = %v", got)
	}
	if _, err := h.gw.Apply(parse(t, strings.Replace(sharedLimitYAML, ", rate_limit: {rate: 60/h, burst: 20, key: route, shared: true}", "", 1), vars)); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, h, "spillway_rate_limit_shared", "route", "api"); got != -1 {
		t.Fatalf("without the limit: spillway_rate_limit_shared = %v, want no series", got)
	}
}
