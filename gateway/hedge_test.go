package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hedgeConfig is an upstream of two instances, the first of which never
// answers a GET until the gateway gives up on it, and a hedge after 20ms.
const hedgeConfig = `
upstreams:
  svc:
    instances: ["${SLOW}", "${FAST}"]
    timeouts: {attempt: 5s, total: 10s}
    retry: {max_attempts: 1}
    hedge: {delay: 20ms, max: 1}
routes:
  - name: r
    match: {path_prefix: /}
    upstream: svc
`

// slowInstance hangs every GET until its request is cancelled (counting
// the cancellations) and answers a POST after 50ms.
type slowInstance struct {
	*httptest.Server
	hits, cancelled atomic.Int64
}

func newSlowInstance(t *testing.T) *slowInstance {
	s := &slowInstance{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost {
			time.Sleep(50 * time.Millisecond) // a slow answer, not a wait for a state
			_, _ = io.WriteString(w, "slow")
			return
		}
		<-r.Context().Done()
		s.cancelled.Add(1)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestHedgingAroundASlowInstance: every GET whose attempt goes to the
// instance that hangs is answered by its hedge on the other instance (the
// only way it can be answered before the 5s attempt limit: with
// max_attempts 1, an unhedged one would fail), and every request the hung
// instance got is cancelled; a POST is never hedged.
func TestHedgingAroundASlowInstance(t *testing.T) {
	slow, fast := newSlowInstance(t), newBackend(t, "fast")
	h := start(t, parse(t, hedgeConfig, map[string]string{"SLOW": slow.URL, "FAST": fast.URL}))
	const n = 40
	lat := make([]time.Duration, n)
	for i := range n {
		t0 := time.Now()
		resp, body := h.do(t, http.MethodGet, "/x", nil, "")
		lat[i] = time.Since(t0)
		if resp.StatusCode != http.StatusOK || body != "fast" {
			t.Fatalf("GET %d: %d %q; want the fast instance's answer", i, resp.StatusCode, body)
		}
	}
	slices.Sort(lat)
	t.Logf("%d GETs, one instance hung: p50 %s, p99 %s (without hedging, half would wait for the 5s attempt limit)", n, lat[n/2], lat[n*99/100])
	// Round robin sends every other attempt to the hung instance; a hedge
	// goes to the other one. (A fast attempt slowed past the delay by a
	// loaded machine may be hedged too, to the hung instance, and lose.)
	sent := metricValue(t, h, "spillway_hedges_total", "upstream", "svc", "outcome", "sent")
	won := metricValue(t, h, "spillway_hedges_total", "upstream", "svc", "outcome", "won")
	hung := slow.hits.Load()
	if hung < n/2 || won < n/2 || sent < won {
		t.Errorf("%d attempts went to the hung instance, %v hedges sent, %v won; want at least %d hedged and won", hung, sent, won, n/2)
	}
	deadline := time.Now().Add(5 * time.Second)
	for slow.cancelled.Load() < hung && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if c := slow.cancelled.Load(); c != hung {
		t.Errorf("%d of the hung instance's %d requests were cancelled", c, hung)
	}
	v, ok := h.gw.Upstream("svc")
	if !ok || v.Live.Hedge == nil || float64(v.Live.Hedge.Won) != won || v.Live.Hedge.Delay != "20ms" || v.Policies.Hedge == nil || v.Policies.Hedge.Delay != "20ms" {
		t.Errorf("runtime view: %+v, %+v", v.Live.Hedge, v.Policies.Hedge)
	}

	before := slow.hits.Load() + fast.hits.Load()
	for range 4 {
		if resp, _ := h.do(t, http.MethodPost, "/x", nil, "payload"); resp.StatusCode != http.StatusOK {
			t.Fatalf("POST: %d", resp.StatusCode)
		}
	}
	if got := slow.hits.Load() + fast.hits.Load() - before; got != 4 {
		t.Errorf("4 POSTs reached the instances %d times; want once each (never hedged)", got)
	}
	if s := metricValue(t, h, "spillway_hedges_total", "upstream", "svc", "outcome", "sent"); s != sent {
		t.Errorf("hedges sent went from %v to %v with POSTs", sent, s)
	}
}

// TestHedgeReloadKeepsThePolicy: a reload that leaves hedge: alone keeps
// the policy and its counts; one that changes it makes a new one and says so.
func TestHedgeReloadKeepsThePolicy(t *testing.T) {
	slow, fast := newSlowInstance(t), newBackend(t, "fast")
	vars := map[string]string{"SLOW": slow.URL, "FAST": fast.URL}
	h := start(t, parse(t, hedgeConfig, vars))
	for range 4 {
		h.do(t, http.MethodGet, "/x", nil, "")
	}
	won := func() uint64 { v, _ := h.gw.Upstream("svc"); return v.Live.Hedge.Won }
	before := won()
	if before == 0 {
		t.Fatal("no hedge won")
	}
	cs, err := h.gw.Apply(parse(t, hedgeConfig+"\n# a comment\n", vars))
	if err != nil || won() != before {
		t.Fatalf("unchanged reload: %v, won %d → %d; want the counts kept", err, before, won())
	}
	cs, err = h.gw.Apply(parse(t, strings.Replace(hedgeConfig, "delay: 20ms", "delay: p99", 1), vars))
	if err != nil {
		t.Fatal(err)
	}
	_, resets := cs.Lines()
	if !slices.ContainsFunc(resets, func(l string) bool { return strings.Contains(l, "hedge.delay 20ms") }) {
		t.Errorf("reload lines %q: want the hedge's reset named", resets)
	}
	if v, _ := h.gw.Upstream("svc"); v.Policies.Hedge.Delay != "p99" || v.Live.Hedge.Won != 0 {
		t.Errorf("after the reload: %+v %+v", v.Policies.Hedge, v.Live.Hedge)
	}
}
