package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/gateway"
)

// blocking is an upstream instance whose requests wait until release is
// closed.
type blocking struct {
	*httptest.Server
	hits    atomic.Int64
	release chan struct{}
}

func newBlocking(t *testing.T) *blocking {
	t.Helper()
	b := &blocking{release: make(chan struct{})}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		<-b.release
		_, _ = io.WriteString(w, "done")
	}))
	t.Cleanup(b.Close)
	return b
}

// waitHits polls until the upstream has seen n requests.
func (b *blocking) waitHits(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.hits.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the upstream saw %d requests, want %d", b.hits.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// getAsync sends GET path through h and delivers the status and body.
func getAsync(h *harness, path string) <-chan string {
	out := make(chan string, 1)
	go func() {
		resp, err := h.srv.Client().Get(h.srv.URL + path)
		if err != nil {
			out <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	return out
}

func apply(t *testing.T, h *harness, yaml string, vars map[string]string) gateway.Changes {
	t.Helper()
	cs, err := h.gw.Apply(parse(t, yaml, vars))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func hasChange(l []gateway.Change, part, detail string) bool {
	for _, c := range l {
		if c.Part == part && strings.Contains(c.Detail, detail) {
			return true
		}
	}
	return false
}

const bulkheadYAML = `
upstreams:
  svc:
    instances: ["${S}"]
    retry: {max_attempts: 1}
    bulkhead: {max_concurrent: %d}
    breaker: {window: {type: count, size: 2}, min_calls: 2, failure_rate: 50%%, open_for: 1h, max_open_for: 1h}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`

// Changing only bulkhead.max_concurrent must not close an open breaker
// (it did: the reload rebuilt the whole upstream).
func TestReloadKeepsBreakerOpenAcrossBulkheadChange(t *testing.T) {
	be := newBackend(t, "x")
	be.status.Store(500)
	vars := map[string]string{"S": be.URL}
	h := start(t, parse(t, fmt.Sprintf(bulkheadYAML, 10), vars))
	for range 2 {
		h.do(t, "GET", "/", nil, "")
	}
	if s := h.gw.Status().Upstreams["svc"].Breaker.State; s != "open" {
		t.Fatalf("before the reload: breaker %s, want open", s)
	}
	cs := apply(t, h, fmt.Sprintf(bulkheadYAML, 20), vars)
	if s := h.gw.Status().Upstreams["svc"].Breaker.State; s != "open" {
		t.Errorf("after a bulkhead change: breaker %s, want still open", s)
	}
	if resp, _ := h.do(t, "GET", "/", nil, ""); resp.Header.Get("Spillway-Reason") != "breaker_open" {
		t.Errorf("after the reload: %d %q, want breaker_open", resp.StatusCode, resp.Header.Get("Spillway-Reason"))
	}
	if !hasChange(cs.Applied, "bulkhead", "bulkhead.max_concurrent 10 → 20") || len(cs.Resets) != 0 {
		t.Errorf("changes = %+v, want the bulkhead change and no reset", cs)
	}
}

const windowYAML = `
upstreams:
  svc:
    instances: ["${S}"]
    retry: {max_attempts: 1}
    breaker: {window: {type: %s, size: %s}, min_calls: 4, failure_rate: %s, open_for: 1h, max_open_for: 1h}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`

// A failure_rate change keeps the window: the failures recorded before the
// reload count towards the new threshold.
func TestReloadKeepsBreakerWindowAcrossThresholdChange(t *testing.T) {
	be := newBackend(t, "x")
	be.status.Store(500)
	vars := map[string]string{"S": be.URL}
	h := start(t, parse(t, fmt.Sprintf(windowYAML, "count", "10", "90%"), vars))
	for range 3 {
		h.do(t, "GET", "/", nil, "")
	}
	cs := apply(t, h, fmt.Sprintf(windowYAML, "count", "10", "50%"), vars)
	if b := h.gw.Status().Upstreams["svc"].Breaker; b.State != "closed" || b.FailureRate != 1 {
		t.Fatalf("after the reload: %+v, want closed with the 3 failures kept (rate 1)", b)
	}
	h.do(t, "GET", "/", nil, "") // the 4th call reaches min_calls
	if s := h.gw.Status().Upstreams["svc"].Breaker.State; s != "open" {
		t.Errorf("after a 4th failure: breaker %s, want open (4 failures of 4 calls)", s)
	}
	if !hasChange(cs.Applied, "breaker", "breaker.failure_rate 0.9 → 0.5") {
		t.Errorf("changes = %+v, want the failure_rate change", cs)
	}
	// A window type change cannot keep the outcomes: a new window, state
	// kept, and the reset is named.
	cs = apply(t, h, fmt.Sprintf(windowYAML, "time", "10s", "50%"), vars)
	if b := h.gw.Status().Upstreams["svc"].Breaker; b.State != "open" {
		t.Errorf("after a window type change: %+v, want still open", b)
	}
	if !hasChange(cs.Resets, "breaker.window", "count → time") {
		t.Errorf("resets = %+v, want the breaker window", cs.Resets)
	}
}

const inFlightYAML = `
upstreams:
  svc:
    instances: ["${S}"]
    retry: {max_attempts: 1}
    bulkhead: {max_concurrent: %d}
    timeouts: {total: %s}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`

// Requests in flight finish across a reload that changes their upstream,
// and keep their bulkhead slots: the reload does not admit more calls than
// the limit.
func TestReloadLetsInFlightRequestsFinish(t *testing.T) {
	up := newBlocking(t)
	vars := map[string]string{"S": up.URL}
	h := start(t, parse(t, fmt.Sprintf(inFlightYAML, 1, "15s"), vars))
	first := getAsync(h, "/first")
	up.waitHits(t, 1)
	apply(t, h, fmt.Sprintf(inFlightYAML, 1, "20s"), vars)
	if n := h.gw.Status().Upstreams["svc"].InFlight; n != 1 {
		t.Errorf("after the reload: %d in flight, want 1", n)
	}
	if resp, _ := h.do(t, "GET", "/second", nil, ""); resp.Header.Get("Spillway-Reason") != "bulkhead_full" {
		t.Errorf("a second request during the first: %d %q, want bulkhead_full (the slot is still held)",
			resp.StatusCode, resp.Header.Get("Spillway-Reason"))
	}
	close(up.release)
	if got := <-first; got != "200 done" {
		t.Errorf("the request in flight across the reload got %q, want 200 done", got)
	}
	if n := h.gw.Status().Upstreams["svc"].InFlight; n != 0 {
		t.Errorf("at the end: %d in flight, want 0", n)
	}
}

// A bulkhead resize keeps the count of calls in flight: shrinking below it
// admits nobody until enough of them finish.
func TestReloadBulkheadResizeKeepsInFlight(t *testing.T) {
	up := newBlocking(t)
	vars := map[string]string{"S": up.URL}
	h := start(t, parse(t, fmt.Sprintf(inFlightYAML, 3, "15s"), vars))
	var calls []<-chan string
	for i := range 2 {
		calls = append(calls, getAsync(h, fmt.Sprintf("/%d", i)))
	}
	up.waitHits(t, 2)
	cs := apply(t, h, fmt.Sprintf(inFlightYAML, 2, "15s"), vars)
	if n := h.gw.Status().Upstreams["svc"].InFlight; n != 2 {
		t.Errorf("after shrinking to 2: %d in flight, want 2", n)
	}
	if resp, _ := h.do(t, "GET", "/third", nil, ""); resp.Header.Get("Spillway-Reason") != "bulkhead_full" {
		t.Errorf("a third request: %d, want bulkhead_full", resp.StatusCode)
	}
	if !hasChange(cs.Applied, "bulkhead", "max_concurrent 3 → 2") {
		t.Errorf("changes = %+v", cs)
	}
	close(up.release)
	for _, c := range calls {
		if got := <-c; got != "200 done" {
			t.Errorf("a request in flight got %q", got)
		}
	}
}

const instancesYAML = `
upstreams:
  svc:
    instances: [%s]
    retry: {max_attempts: 1}
    outlier: {consecutive_failures: 2, ejection: 1h, max_ejection: 1h, max_ejected: 100%%, panic_threshold: 0%%}
    breaker: {mode: disabled}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`

// An instance list change keeps the ejection of the instances that stay.
func TestReloadKeepsInstanceStateOfInstancesThatStay(t *testing.T) {
	bad, good, added := newBackend(t, "bad"), newBackend(t, "good"), newBackend(t, "added")
	bad.status.Store(500)
	vars := map[string]string{"A": bad.URL, "B": good.URL, "C": added.URL}
	h := start(t, parse(t, fmt.Sprintf(instancesYAML, `"${A}", "${B}"`), vars))
	for range 4 { // round robin: two failures on A
		h.do(t, "GET", "/", nil, "")
	}
	ejected := func() map[string]bool {
		out := map[string]bool{}
		for _, in := range h.gw.Status().Upstreams["svc"].Instances {
			out[in.URL] = in.Ejected
		}
		return out
	}
	if e := ejected(); !e[bad.URL] || e[good.URL] {
		t.Fatalf("before the reload: ejected %v, want only %s", e, bad.URL)
	}
	cs := apply(t, h, fmt.Sprintf(instancesYAML, `"${A}", "${B}", "${C}"`), vars)
	if e := ejected(); !e[bad.URL] || e[good.URL] || e[added.URL] {
		t.Errorf("after adding an instance: ejected %v, want %s still ejected", e, bad.URL)
	}
	hits := bad.hits.Load()
	for range 6 {
		h.do(t, "GET", "/", nil, "")
	}
	if n := bad.hits.Load(); n != hits {
		t.Errorf("the ejected instance got %d requests after the reload", n-hits)
	}
	if !hasChange(cs.Applied, "pool", "instances") {
		t.Errorf("changes = %+v", cs)
	}
}

const loadYAML = `
upstreams:
  svc:
    instances: ["${S}"]
    bulkhead: {max_concurrent: %d, max_waiting: 64}
    timeouts: {total: 30s}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`

// 500 reloads changing the upstream under concurrent load: every request
// gets the upstream's answer, and the bulkhead's limit holds throughout
// (a rebuilt bulkhead admitted calls beside the old one's). goleak, in
// TestMain, checks that no goroutine is left.
func TestManyReloadsUnderLoad(t *testing.T) {
	var cur, peak atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		// The upstream's work: long enough for the calls to overlap.
		time.Sleep(time.Millisecond)
		_, _ = io.WriteString(w, "ok")
		cur.Add(-1)
	}))
	t.Cleanup(up.Close)
	vars := map[string]string{"S": up.URL}
	cfgs := [2]string{fmt.Sprintf(loadYAML, 4), fmt.Sprintf(loadYAML, 3)}
	h := start(t, parse(t, cfgs[0], vars))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent, bad atomic.Int64
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				resp, err := h.srv.Client().Get(h.srv.URL + "/")
				if err != nil {
					bad.Add(1)
					t.Errorf("request: %v", err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "ok" {
					if bad.Add(1) <= 5 {
						t.Errorf("request: %d %q %q", resp.StatusCode, resp.Header.Get("Spillway-Reason"), body)
					}
				}
			}
		})
	}
	deadline := time.Now().Add(time.Minute)
	for i := range 500 {
		if _, err := h.gw.Apply(parse(t, cfgs[(i+1)%2], vars)); err != nil {
			t.Fatal(err)
		}
		// Every reload meets requests in flight: the next one waits until
		// a few more were sent.
		for n := sent.Load() + 2; sent.Load() < n && time.Now().Before(deadline); {
			runtime.Gosched()
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests across 500 reloads, at most %d at once at the upstream", sent.Load(), peak.Load())
	if bad.Load() != 0 || sent.Load() == 0 {
		t.Errorf("%d of %d requests failed", bad.Load(), sent.Load())
	}
	if p := peak.Load(); p > 4 {
		t.Errorf("the upstream saw %d requests at once, want at most 4 (the largest limit)", p)
	}
	if n := h.gw.Status().Upstreams["svc"].InFlight; n != 0 {
		t.Errorf("at the end: %d in flight, want 0", n)
	}
}

const modeYAML = `
upstreams:
  svc:
    instances: ["${S}"]
    retry: {max_attempts: 1}
    breaker: {mode: %s}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`

// A mode change is a manual transition, named among the resets.
func TestReloadBreakerModeChange(t *testing.T) {
	be := newBackend(t, "x")
	vars := map[string]string{"S": be.URL}
	h := start(t, parse(t, fmt.Sprintf(modeYAML, "forced_open"), vars))
	if resp, _ := h.do(t, "GET", "/", nil, ""); resp.Header.Get("Spillway-Reason") != "breaker_open" {
		t.Fatalf("forced_open: %d, want breaker_open", resp.StatusCode)
	}
	cs := apply(t, h, fmt.Sprintf(modeYAML, "closed"), vars)
	if resp, body := h.do(t, "GET", "/", nil, ""); resp.StatusCode != 200 || body != "x" {
		t.Errorf("after mode closed: %d %q", resp.StatusCode, body)
	}
	if !hasChange(cs.Resets, "breaker.state", "mode forced_open → closed") {
		t.Errorf("resets = %+v, want the breaker's mode transition", cs.Resets)
	}
}

const resetsYAML = `
upstreams:
  svc:
    instances: ["${S}"]
    timeouts: {connect: %s}
    retry: {max_attempts: %d, budget: {ratio: %s}}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
`

// What cannot change in place is named among the resets; what can, among
// the changes only.
func TestReloadNamesResets(t *testing.T) {
	be := newBackend(t, "x")
	vars := map[string]string{"S": be.URL}
	h := start(t, parse(t, fmt.Sprintf(resetsYAML, "2s", 3, "20%"), vars))
	cs := apply(t, h, fmt.Sprintf(resetsYAML, "2s", 2, "20%"), vars)
	if !hasChange(cs.Applied, "retry", "retry.max_attempts 3 → 2") || len(cs.Resets) != 0 {
		t.Errorf("max_attempts: %+v, want one change and no reset", cs)
	}
	cs = apply(t, h, fmt.Sprintf(resetsYAML, "1s", 2, "10%"), vars)
	if !hasChange(cs.Resets, "retry.budget", "retry.budget.ratio 0.2 → 0.1") || !hasChange(cs.Resets, "connections", "timeouts.connect") ||
		!hasChange(cs.Applied, "timeouts", "timeouts.connect 2s → 1s") {
		t.Errorf("budget and connect: %+v, want the budget and the connections reset", cs)
	}
	if resp, body := h.do(t, "GET", "/", nil, ""); resp.StatusCode != 200 || body != "x" {
		t.Errorf("after the reloads: %d %q", resp.StatusCode, body)
	}
	if cs = apply(t, h, fmt.Sprintf(resetsYAML, "1s", 2, "10%"), vars); len(cs.Applied)+len(cs.Resets) != 0 {
		t.Errorf("the same file again: %+v, want nothing", cs)
	}
}

// A refused reload changes nothing: the steps that change the running
// policies run only once the whole configuration is built.
func TestRefusedApplyChangesNoRunningPolicy(t *testing.T) {
	be := newBackend(t, "x")
	vars := map[string]string{"S": be.URL}
	two := `
upstreams:
  svc:
    instances: ["${S}"]
    breaker: {mode: %s}
  other: {instances: ["${S}"]}
routes:
  - {name: svc, match: {path_prefix: /}, upstream: svc}
  - {name: other, match: {path_prefix: /other}, upstream: other}
`
	h := start(t, parse(t, fmt.Sprintf(two, "forced_open"), vars))
	cfg := parse(t, fmt.Sprintf(two, "closed"), vars)
	// Refused by the bulkhead, whichever upstream is built first.
	cfg.Upstreams["other"].Bulkhead.MaxConcurrent = -1
	if _, err := h.gw.Apply(cfg); err == nil {
		t.Fatal("Apply of a bulkhead of -1 succeeded")
	}
	if resp, _ := h.do(t, "GET", "/", nil, ""); resp.Header.Get("Spillway-Reason") != "breaker_open" {
		t.Errorf("after a refused reload: %d, want the breaker still forced open", resp.StatusCode)
	}
}
