package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// congested is an upstream that serves capacity requests at once in base
// time and queues the rest: its latency grows with its concurrency past
// capacity. With healthy set it serves any number in base time.
type congested struct {
	*httptest.Server
	inFlight atomic.Int64
	healthy  atomic.Bool
}

func newCongested(t *testing.T, capacity int, base time.Duration) *congested {
	t.Helper()
	c := &congested{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := c.inFlight.Add(1)
		defer c.inFlight.Add(-1)
		d := base
		if !c.healthy.Load() && n > int64(capacity) {
			d = base * time.Duration(n) / time.Duration(capacity)
		}
		// The upstream's own service time, not a wait for a state.
		time.Sleep(d)
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(c.Close)
	return c
}

const adaptiveYAML = `
upstreams:
  svc:
    instances: ["${S}"]
    retry: {max_attempts: 1}
    breaker: {mode: disabled}
    bulkhead: {adaptive: %s, min_concurrent: %d, max_concurrent: %d}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`

// load sends requests from clients goroutines until stop is closed.
func load(h *harness, clients int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequestWithContext(context.Background(), "GET", h.srv.URL+"/", nil)
				resp, err := h.srv.Client().Do(req)
				if err == nil {
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					// Pacing, not a wait for a state: a client refused at
					// once would otherwise spin, and the gateway's CPU
					// spent on refusals would show in the round trips the
					// limit measures (on a busy CI machine, enough to keep
					// Gradient2's tight tolerance shrinking).
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		})
	}
	return &wg
}

// liveBulkhead returns the runtime API's view of svc's bulkhead.
func liveBulkhead(t *testing.T, h *harness) (mode string, limit, lo, hi int) {
	t.Helper()
	for _, u := range h.gw.Upstreams() {
		if u.Name == "svc" {
			b := u.Live.Bulkhead
			return b.Mode, b.Limit, b.MinConcurrent, b.MaxConcurrent
		}
	}
	t.Fatal("no upstream svc")
	return "", 0, 0, 0
}

// waitLimit polls svc's adaptive limit until ok holds or the deadline.
func waitLimit(t *testing.T, h *harness, what string, ok func(int) bool, deadline time.Time) int {
	t.Helper()
	for {
		_, limit, _, _ := liveBulkhead(t, h)
		if ok(limit) {
			return limit
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the limit is %d at the deadline", what, limit)
		}
		time.Sleep(20 * time.Millisecond) // a poll interval, bounded by the deadline
	}
}

// TestAdaptiveBulkheadFollowsTheUpstream: under a load the upstream cannot
// take, an adaptive limit comes down near the upstream's capacity, and
// goes back up once the upstream recovers; the metric and the runtime API
// show it.
func TestAdaptiveBulkheadFollowsTheUpstream(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of real load")
	}
	// A base latency far above the gateway's own (under -race, on a busy
	// machine), so that what the limit measures is the upstream's.
	up := newCongested(t, 4, 50*time.Millisecond)
	h := start(t, parse(t, fmt.Sprintf(adaptiveYAML, "gradient2", 2, 60), map[string]string{"S": up.URL}))
	if mode, limit, lo, hi := liveBulkhead(t, h); mode != "gradient2" || limit != 20 || lo != 2 || hi != 60 {
		t.Fatalf("runtime API: mode %q, limit %d in [%d, %d], want gradient2, 20 in [2, 60]", mode, limit, lo, hi)
	}
	// A light load first (4 callers, under half the limit of 20) teaches
	// the limit the upstream's own latency.
	var light sync.WaitGroup
	for range 4 {
		light.Go(func() {
			for range 40 {
				resp, err := h.srv.Client().Get(h.srv.URL + "/")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	light.Wait()
	stop := make(chan struct{})
	wg := load(h, 24, stop)
	defer func() { close(stop); wg.Wait() }()
	began := time.Now()
	low := waitLimit(t, h, "under overload", func(l int) bool { return l <= 10 }, time.Now().Add(45*time.Second))
	t.Logf("limit %d after %v of overload", low, time.Since(began).Round(time.Millisecond))
	if got := metricValue(t, h, "spillway_bulkhead_limit", "upstream", "svc"); got > 10 || got < 2 {
		t.Errorf("spillway_bulkhead_limit = %v under overload, want the adaptive limit (<= 10)", got)
	}
	up.healthy.Store(true)
	began = time.Now()
	high := waitLimit(t, h, "after the upstream recovered", func(l int) bool { return l >= 15 }, time.Now().Add(45*time.Second))
	t.Logf("limit %d after %v of recovery", high, time.Since(began).Round(time.Millisecond))
}

// TestReloadAdaptiveBulkheadInPlace: a reload that changes an adaptive
// limit's bounds or algorithm clamps the limit, keeps the calls in flight,
// and says so.
func TestReloadAdaptiveBulkheadInPlace(t *testing.T) {
	be := newBlocking(t)
	vars := map[string]string{"S": be.URL}
	h := start(t, parse(t, fmt.Sprintf(adaptiveYAML, "gradient2", 2, 60), vars))
	var answers []<-chan string
	for range 12 {
		answers = append(answers, getAsync(h, "/"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for be.hits.Load() < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 12 requests reached the upstream", be.hits.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cs := apply(t, h, fmt.Sprintf(adaptiveYAML, "aimd", 3, 8), vars)
	if !hasChange(cs.Applied, "bulkhead", "the adaptive limit (aimd) kept, clamped into [3, 8]") || len(cs.Resets) != 0 {
		t.Errorf("changes = %+v, want the bulkhead change in place and no reset", cs)
	}
	if mode, limit, lo, hi := liveBulkhead(t, h); mode != "aimd" || limit != 8 || lo != 3 || hi != 8 {
		t.Errorf("after the reload: mode %q, limit %d in [%d, %d], want aimd, 8 in [3, 8]", mode, limit, lo, hi)
	}
	if got := h.gw.Status().Upstreams["svc"].InFlight; got != 12 {
		t.Errorf("in flight after the reload: %d, want the 12 kept", got)
	}
	// Static again: max_concurrent is the limit.
	cs = apply(t, h, "upstreams:\n  svc:\n    instances: [\"${S}\"]\n    bulkhead: {max_concurrent: 30}\nroutes:\n  - {name: svc, match: {path_prefix: /}, upstream: svc}\n", vars)
	if mode, limit, _, _ := liveBulkhead(t, h); mode != "static" || limit != 30 {
		t.Errorf("after the reload to a fixed limit: mode %q, limit %d, want static, 30", mode, limit)
	}
	close(be.release)
	for _, a := range answers {
		if got := <-a; got[:3] != "200" {
			t.Errorf("a request in flight across the reloads: %q", got)
		}
	}
}

// TestPatchUpstreamMakesTheBulkheadAdaptive: the runtime API turns a fixed
// limit adaptive in place, and refuses bounds the wrong way round.
func TestPatchUpstreamMakesTheBulkheadAdaptive(t *testing.T) {
	be := newBackend(t, "ok")
	h := start(t, parse(t, changeYAML, map[string]string{"URL": be.URL}))
	v, err := h.gw.PatchUpstream(operator, "app", []byte(`{"bulkhead":{"adaptive":"vegas","min_concurrent":4}}`))
	if err != nil {
		t.Fatal(err)
	}
	b := v.Live.Bulkhead
	if v.Policies.Bulkhead.Adaptive != "vegas" || v.Policies.Bulkhead.MinConcurrent != 4 ||
		b.Mode != "vegas" || b.Limit != 10 || b.MinConcurrent != 4 || b.MaxConcurrent != 10 {
		t.Errorf("answer: policies %+v, live %+v; want vegas from the limit it had, 10, in [4, 10]", v.Policies.Bulkhead, b)
	}
	if _, err := h.gw.PatchUpstream(operator, "app", []byte(`{"bulkhead":{"min_concurrent":40}}`)); err == nil ||
		!strings.Contains(err.Error(), "min_concurrent (40) is more than max_concurrent (10)") {
		t.Errorf("min_concurrent above max_concurrent: %v", err)
	}
}
