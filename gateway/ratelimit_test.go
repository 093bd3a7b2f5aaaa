package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway/gateway"
)

// rateLimitYAML is a route limited per %s; the rate is 1/h, so that no
// token comes back during a test.
const rateLimitYAML = `
upstreams:
  api: {instances: ["${B}"]}
routes:
  - name: api
    match: {path_prefix: /}
    upstream: api
    rate_limit: {rate: 1/h, burst: %d, key: %s}
`

// routeView returns the runtime API's view of route name.
func routeView(t *testing.T, g *gateway.Gateway, name string) gateway.RouteView {
	t.Helper()
	for _, v := range g.Routes() {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no route %q", name)
	return gateway.RouteView{}
}

// TestRateLimitPerClientKey: many clients, each with its own API key and
// bucket; one client's flood is answered 429 throttled with Retry-After
// and the JSON error, before its upstream sees it, while the others keep
// their own limit; requests without the header share one bucket.
func TestRateLimitPerClientKey(t *testing.T) {
	be := newBackend(t, "ok")
	h := start(t, parse(t, fmt.Sprintf(rateLimitYAML, 3, "'header:X-Api-Key'"), map[string]string{"B": be.URL}))
	for c := range 20 {
		for i := range 3 {
			if resp, _ := h.do(t, "GET", "/x", map[string]string{"X-Api-Key": "client-" + strconv.Itoa(c)}, ""); resp.StatusCode != http.StatusOK {
				t.Fatalf("client %d request %d: %d, want 200 (within its burst)", c, i, resp.StatusCode)
			}
		}
	}
	for i := range 50 {
		resp, body := h.do(t, "GET", "/x", map[string]string{"X-Api-Key": "client-0"}, "")
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Spillway-Reason") != "throttled" || ra < 1 || ra > 3600 {
			t.Fatalf("flood request %d: %d, reason %q, Retry-After %q; want 429 throttled, 1 to 3600 s", i, resp.StatusCode,
				resp.Header.Get("Spillway-Reason"), resp.Header.Get("Retry-After"))
		}
		var e struct {
			Error struct {
				Reason, Upstream  string
				RetryAfterSeconds int `json:"retry_after_seconds"`
			}
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Reason != "throttled" || e.Error.Upstream != "api" || e.Error.RetryAfterSeconds != ra {
			t.Fatalf("flood request %d: body %s, want the JSON error of throttled, upstream api, retry_after_seconds %d", i, body, ra)
		}
	}
	if resp, _ := h.do(t, "GET", "/x", map[string]string{"X-Api-Key": "client-new"}, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("a new client during the flood: %d, want 200", resp.StatusCode)
	}
	for i, want := range []int{200, 200, 200, 429} {
		if resp, _ := h.do(t, "GET", "/x", nil, ""); resp.StatusCode != want {
			t.Fatalf("request %d without the header: %d, want %d (one shared bucket of 3)", i, resp.StatusCode, want)
		}
	}
	if n := be.hits.Load(); n != 20*3+1+3 {
		t.Errorf("upstream saw %d requests, want %d: a refused one never reaches it", n, 20*3+1+3)
	}
	if got := metricValue(t, h, "spillway_rejected_total", "upstream", "api", "reason", "throttled"); got != 51 {
		t.Errorf("spillway_rejected_total{reason=throttled} = %v, want 51", got)
	}
	if got := metricValue(t, h, "spillway_rate_limit_keys", "route", "api"); got != 22 {
		t.Errorf("spillway_rate_limit_keys = %v, want 22 (21 clients and the anonymous bucket)", got)
	}
	want := gateway.RateLimitView{Rate: "1/h", Burst: 3, Key: "header:X-Api-Key", MaxKeys: 100_000, TrackedKeys: 22, Rejected: 51}
	if got := routeView(t, h.gw, "api").RateLimit; got == nil || *got != want {
		t.Errorf("route view's rate_limit = %+v, want %+v", got, want)
	}
	if !strings.Contains(h.log.String(), `"reason":"throttled"`) {
		t.Errorf("access log has no throttled line:\n%s", h.log)
	}
}

// TestRateLimitClientIPIsThePeer: key client_ip is the TCP peer's address;
// an X-Forwarded-For a client writes does not give it a new bucket.
func TestRateLimitClientIPIsThePeer(t *testing.T) {
	be := newBackend(t, "ok")
	h := start(t, parse(t, fmt.Sprintf(rateLimitYAML, 1, "client_ip"), map[string]string{"B": be.URL}))
	if resp, _ := h.do(t, "GET", "/", nil, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	for _, xff := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		if resp, _ := h.do(t, "GET", "/", map[string]string{"X-Forwarded-For": xff, "X-Real-Ip": xff}, ""); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("request claiming to be %s: %d, want 429 (the peer is the key)", xff, resp.StatusCode)
		}
	}
}

// TestRateLimitReloadInPlace: a reload that changes the rate keeps every
// bucket's tokens and says so; one that changes the key starts new buckets
// and says so.
func TestRateLimitReloadInPlace(t *testing.T) {
	be := newBackend(t, "ok")
	vars := map[string]string{"B": be.URL}
	h := start(t, parse(t, fmt.Sprintf(rateLimitYAML, 1, "route"), vars))
	h.do(t, "GET", "/", nil, "")
	if resp, _ := h.do(t, "GET", "/", nil, ""); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second request: %d, want 429", resp.StatusCode)
	}
	cs, err := h.gw.Apply(parse(t, strings.Replace(fmt.Sprintf(rateLimitYAML, 2, "route"), "1/h", "2/h", 1), vars))
	if err != nil {
		t.Fatal(err)
	}
	if !hasChange(cs.Applied, "rate_limit", "rate 1/h → 2/h, burst 1 → 2: applied in place") {
		t.Errorf("reload answer %+v does not name the rate_limit change applied in place", cs.Applied)
	}
	// No token kept, none come for half an hour: a fresh bucket would
	// admit 2.
	if resp, _ := h.do(t, "GET", "/", nil, ""); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after the reload: %d, want 429 (the bucket kept its state)", resp.StatusCode)
	}
	if v := routeView(t, h.gw, "api").RateLimit; v.Rate != "2/h" || v.Burst != 2 || v.Rejected != 2 {
		t.Errorf("view after the reload: %+v, want 2/h, burst 2, the 2 refusals kept", v)
	}
	cs, err = h.gw.Apply(parse(t, fmt.Sprintf(rateLimitYAML, 2, "'header:X-K'"), vars))
	if err != nil {
		t.Fatal(err)
	}
	if !hasChange(cs.Resets, "rate_limit", "key route → header:X-K") {
		t.Errorf("reload resets %+v do not name the new buckets", cs.Resets)
	}
	if resp, _ := h.do(t, "GET", "/", map[string]string{"X-K": "a"}, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the key changed: %d, want 200 (new buckets)", resp.StatusCode)
	}
}

// TestRateLimitAsyncRefusesBeforeEnqueue: an async route's refused request
// is answered 429 and never stored.
func TestRateLimitAsyncRefusesBeforeEnqueue(t *testing.T) {
	u := newRecording(t)
	cfg := parse(t, fmt.Sprintf(asyncYAML, "", "")+"    rate_limit: {rate: 1/h, burst: 2, key: route}\n", map[string]string{"U": u.URL})
	h := startAsync(t, cfg, openQueue(t))
	h.post(t, "/orders/a", nil, "1")
	h.post(t, "/orders/b", nil, "2")
	resp, _ := h.do(t, "POST", "/orders/c", nil, "3")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Spillway-Reason") != "throttled" {
		t.Fatalf("third POST: %d %q, want 429 throttled", resp.StatusCode, resp.Header.Get("Spillway-Reason"))
	}
	eventually(t, "two deliveries", func() bool { return u.count() == 2 })
	if got := metricValue(t, h, "spillway_requests_total", "route", "orders", "outcome", "accepted"); got != 2 {
		t.Errorf("accepted = %v, want 2: the refused request was not stored", got)
	}
}

// TestRateLimitGRPCIsResourceExhausted: a gRPC call over the limit gets
// RESOURCE_EXHAUSTED, the throttled reason and a pushback.
func TestRateLimitGRPCIsResourceExhausted(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	cfg := parse(t, fmt.Sprintf(grpcRoute, "http", u.addr, "")+"    rate_limit: {rate: 1/h, burst: 1, key: route}\n", nil)
	_, addr := serveGatewayWith(t, cfg, gateway.ListenerOptions{H2C: true}, gateway.Options{})
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	c := testpb.NewTestServiceClient(cc)
	if _, err := c.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	var trailer metadata.MD
	_, err = c.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
	if s := status.Convert(err); s.Code() != codes.ResourceExhausted || !strings.HasPrefix(s.Message(), "throttled: ") {
		t.Fatalf("second call: %v %q, want ResourceExhausted throttled: ...", s.Code(), s.Message())
	}
	if got := trailer.Get("spillway-reason"); len(got) != 1 || got[0] != "throttled" {
		t.Errorf("spillway-reason %q, want [throttled]", got)
	}
	if ms, _ := strconv.Atoi(strings.Join(trailer.Get("grpc-retry-pushback-ms"), "")); ms < 1 {
		t.Errorf("grpc-retry-pushback-ms %q, want a positive wait", trailer.Get("grpc-retry-pushback-ms"))
	}
	if n := u.unary.Load(); n != 1 {
		t.Errorf("upstream saw %d calls, want 1", n)
	}
}

// TestRateLimitCheck: validate (gateway.Check) builds the route's limit as
// serve does.
func TestRateLimitCheck(t *testing.T) {
	cfg := parse(t, fmt.Sprintf(rateLimitYAML, 5, "'header:X-Api-Key'"), map[string]string{"B": "http://127.0.0.1:1"})
	if ws, err := gateway.Check(cfg); err != nil || len(ws) != 0 {
		t.Fatalf("Check = %v, %v; want no warning, no error", ws, err)
	}
}
