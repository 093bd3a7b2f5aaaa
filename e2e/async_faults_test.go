package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// breakerState reads svc's breaker state from the admin status API.
func breakerState(t *testing.T, c *asyncClient, admin string) string {
	t.Helper()
	code, b, err := c.admin(t.Context(), http.MethodGet, admin+"/api/v1/status", false)
	if err != nil || code != http.StatusOK {
		return fmt.Sprintf("status %d %v", code, err)
	}
	var st struct {
		Upstreams map[string]struct {
			Breaker struct {
				State string `json:"state"`
			} `json:"breaker"`
		} `json:"upstreams"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return err.Error()
	}
	return st.Upstreams["svc"].Breaker.State
}

// The upstream answers 503 for a while. Jobs are still accepted; the
// breaker opens and delivery pauses instead of hammering the upstream (its
// attempts stay bounded by the breaker's half-open probes); once it
// recovers every job arrives, the ordered route's in acceptance order.
func testAsyncUpstreamDown(t *testing.T, bin string) {
	const (
		minCalls    = 5
		concurrency = 4
		unordered   = 24
		ordered     = 12
	)
	dir := t.TempDir()
	rec := newRecorder(t, 1)
	var down atomic.Bool
	down.Store(true)
	rec.setAnswer(func(delivery) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := asyncConfig{
		queue:     "  dir: " + filepath.Join(dir, "store"),
		instances: rec.urls,
		breaker: fmt.Sprintf("{window: {type: count, size: 10}, min_calls: %d, failure_rate: 50%%, open_for: 150ms, max_open_for: 150ms, half_open_probes: 1}",
			minCalls),
		routes: fmt.Sprintf(`  - name: jobs
    match: {path_prefix: /jobs, methods: [POST]}
    upstream: svc
    async: {max_attempts: 1000, backoff: {initial: 5ms, max: 20ms}, concurrency: %d}
  - name: ordered
    match: {path_prefix: /ordered, methods: [POST]}
    upstream: svc
    async: {max_attempts: 1000, backoff: {initial: 5ms, max: 20ms}, ordered: true}
`, concurrency),
	}.write(t, dir, "gateway")
	gw := startGW(t, bin, cfg)
	client := newAsyncClient(t)

	var jobs []accepted
	var orderedBodies []string
	for i := range unordered + ordered {
		path, body := fmt.Sprintf("/jobs/%d", i), fmt.Sprintf("unordered-%02d", i)
		if i >= unordered {
			path, body = fmt.Sprintf("/ordered/%d", i), fmt.Sprintf("ordered-%02d", i)
		}
		a, err := client.post(t.Context(), gw.public+path, body, "")
		if err != nil || a.status != http.StatusAccepted {
			t.Fatalf("POST %s while the upstream is down: %+v, %v; want 202", path, a, err)
		}
		checkAccepted(t, a)
		jobs = append(jobs, accepted{id: a.id, body: body, path: path})
		if i >= unordered {
			orderedBodies = append(orderedBodies, body)
		}
	}

	// The breaker opens, and goes through several open → half-open → open
	// cycles while the upstream stays down.
	metrics := gw.admin + "/metrics"
	reopens := func() float64 {
		v, _, err := metric(t.Context(), metrics, "spillway_circuit_transitions_total",
			map[string]string{"upstream": "svc", "from": "half_open", "to": "open"})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	within(t, 20*time.Second, "the breaker to reopen 3 times while the upstream is down",
		func() bool { return reopens() >= 3 },
		func() string { return "breaker " + breakerState(t, client, gw.admin) })
	attempts, _ := rec.raw()
	r := reopens()
	// Before it opens: min_calls attempts, plus those already in flight on
	// both routes; then one probe per half-open period (+1 under way).
	bound := minCalls + concurrency + 1 + int(r) + 1
	if attempts > bound {
		t.Errorf("%d attempts reached the upstream while it was down (breaker reopened %.0f times); want <= %d", attempts, r, bound)
	}
	t.Logf("upstream down: %d attempts reached it over %.0f half-open probes (bound %d)", attempts, r, bound)

	down.Store(false)
	within(t, 30*time.Second, "every job to arrive after the recovery", func() bool {
		for _, j := range jobs {
			if _, ok := rec.appliedKey(j.deliveryKey()); !ok {
				return false
			}
		}
		return true
	})
	client.waitDelivered(t, gw.public, jobs, 10*time.Second)
	var got []string
	for _, d := range rec.snapshot() {
		if d.status == http.StatusOK && strings.HasPrefix(d.path, "/ordered/") && !slices.Contains(got, d.body) {
			got = append(got, d.body)
		}
	}
	if !slices.Equal(got, orderedBodies) {
		t.Errorf("ordered route: delivered in the order\n%v\nwant the acceptance order\n%v", got, orderedBodies)
	}
	raw, ok := rec.raw()
	t.Logf("after recovery: %d jobs delivered; %d raw deliveries in all (%d answered 200)", len(jobs), raw, ok)
	gw.term(t)
}

// A poison job (the upstream answers 500 for its body) is dead after
// max_attempts; the admin API lists and shows it; once the upstream is
// fixed, a replay delivers it exactly once.
func testAsyncPoison(t *testing.T, bin string) {
	const maxAttempts = 3
	dir := t.TempDir()
	rec := newRecorder(t, 1)
	var fixed atomic.Bool
	rec.setAnswer(func(d delivery) int {
		if d.body == "poison" && !fixed.Load() {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	cfg := asyncConfig{
		queue:     "  dir: " + filepath.Join(dir, "store"),
		instances: rec.urls,
		routes:    fmt.Sprintf(jobsRoute, maxAttempts),
	}.write(t, dir, "gateway")
	gw := startGW(t, bin, cfg)
	client := newAsyncClient(t)

	var good []accepted
	var poison accepted
	for i, body := range []string{"good-1", "poison", "good-2", "good-3"} {
		a, err := client.post(t.Context(), gw.public+"/jobs/"+fmt.Sprint(i), body, "")
		if err != nil || a.status != http.StatusAccepted {
			t.Fatalf("POST: %+v, %v; want 202", a, err)
		}
		j := accepted{id: a.id, body: body, path: fmt.Sprintf("/jobs/%d", i)}
		if body == "poison" {
			poison = j
		} else {
			good = append(good, j)
		}
	}
	client.waitDelivered(t, gw.public, good, 20*time.Second)

	// A delivery is the stored request: method, path, query, headers but
	// the hop-by-hop ones, body; plus the job id as the Idempotency-Key.
	a, err := client.post(t.Context(), gw.public+"/jobs/q?a=1&b=two", "with-headers", "",
		"X-Custom", "kept", "Connection", "X-Hop", "X-Hop", "dropped", "Proxy-Authorization", "Basic eDp5")
	if err != nil || a.status != http.StatusAccepted {
		t.Fatalf("POST with headers: %+v, %v; want 202", a, err)
	}
	within(t, 20*time.Second, "the job with headers to be delivered", func() bool {
		_, ok := rec.appliedKey(a.id)
		return ok
	})
	d, _ := rec.appliedKey(a.id)
	if d.method != http.MethodPost || d.path != "/jobs/q" || d.query != "a=1&b=two" || d.body != "with-headers" ||
		d.header.Get("X-Custom") != "kept" || d.header.Get("Content-Type") != "text/plain" || d.jobID != a.id {
		t.Errorf("delivered %s %s?%s %q, X-Custom %q, Content-Type %q, Spillway-Job-Id %q; want POST /jobs/q?a=1&b=two %q, kept, text/plain, %s",
			d.method, d.path, d.query, d.body, d.header.Get("X-Custom"), d.header.Get("Content-Type"), d.jobID, "with-headers", a.id)
	}
	if h := d.header.Get("X-Hop") + d.header.Get("Proxy-Authorization"); h != "" {
		t.Errorf("hop-by-hop headers reached the upstream: X-Hop %q, Proxy-Authorization %q", d.header.Get("X-Hop"), d.header.Get("Proxy-Authorization"))
	}

	var st jobStatus
	within(t, 20*time.Second, "the poison job to be dead", func() bool {
		st, _, _ = client.status(t.Context(), gw.public+"/_spillway/jobs/"+poison.id)
		return st.State == "dead"
	}, func() string { return fmt.Sprintf("%+v", st) })
	if st.Attempts != maxAttempts || st.LastStatus != http.StatusInternalServerError || st.ID != poison.id || st.Queue != "jobs" {
		t.Errorf("dead job's status %+v: want id %s, queue jobs, %d attempts, last_status 500", st, poison.id, maxAttempts)
	}
	if n := countKey(rec, poison.id); n != maxAttempts {
		t.Errorf("the upstream saw the poison job %d times before it died; want max_attempts = %d", n, maxAttempts)
	}
	if s, code, err := client.status(t.Context(), gw.admin+"/api/v1/jobs/"+poison.id); err != nil || code != http.StatusOK || s.State != "dead" {
		t.Errorf("admin GET /api/v1/jobs/%s: %d %+v %v; want 200, state dead", poison.id, code, s, err)
	}

	// The admin API lists and shows it; the dead-letter gauge counts it.
	code, b, err := client.admin(t.Context(), http.MethodGet, gw.admin+"/api/v1/dead-letters?route=jobs", true)
	if err != nil || code != http.StatusOK || !idsIn(b)[poison.id] {
		t.Fatalf("GET /api/v1/dead-letters?route=jobs: %d %v\n%s\nwant 200 listing %s", code, err, b, poison.id)
	}
	if ids := idsIn(b); len(ids) != 1 {
		t.Errorf("dead letters: ids %v, want only %s", ids, poison.id)
	}
	code, b, err = client.admin(t.Context(), http.MethodGet, gw.admin+"/api/v1/dead-letters/"+poison.id, true)
	if err != nil || code != http.StatusOK || !idsIn(b)[poison.id] || !strings.Contains(string(b), "500") {
		t.Errorf("GET /api/v1/dead-letters/%s: %d %v\n%s\nwant 200 with the id and the last status 500", poison.id, code, err, b)
	}
	deadGauge := func() float64 {
		v, _, _ := metric(t.Context(), gw.admin+"/metrics", "spillway_queue_dead_letters", map[string]string{"route": "jobs"})
		return v
	}
	within(t, 10*time.Second, "spillway_queue_dead_letters{route=jobs} to be 1", func() bool { return deadGauge() == 1 })

	// Replay needs the token.
	if code, b, err := client.admin(t.Context(), http.MethodPost, gw.admin+"/api/v1/dead-letters/"+poison.id+"/replay", false); err != nil || code != http.StatusUnauthorized {
		t.Errorf("replay without a token: %d %v %s; want 401", code, err, b)
	}
	fixed.Store(true)
	if code, b, err := client.admin(t.Context(), http.MethodPost, gw.admin+"/api/v1/dead-letters/"+poison.id+"/replay", true); err != nil || code/100 != 2 {
		t.Fatalf("replay: %d %v %s; want 2xx", code, err, b)
	}
	client.waitDelivered(t, gw.public, []accepted{poison}, 20*time.Second)
	within(t, 10*time.Second, "spillway_queue_dead_letters{route=jobs} to be 0", func() bool { return deadGauge() == 0 })
	code, b, err = client.admin(t.Context(), http.MethodGet, gw.admin+"/api/v1/dead-letters?route=jobs", true)
	if err != nil || code != http.StatusOK || len(idsIn(b)) != 0 {
		t.Errorf("dead letters after the replay: %d %v %s; want none", code, err, b)
	}
	ok := 0
	for _, d := range rec.snapshot() {
		if d.body == "poison" && d.status == http.StatusOK {
			ok++
			if d.key != poison.id || d.jobID != poison.id {
				t.Errorf("replayed delivery: Idempotency-Key %q, Spillway-Job-Id %q; want the job id %s", d.key, d.jobID, poison.id)
			}
		}
	}
	if ok != 1 {
		t.Errorf("the replayed job was delivered %d times; want exactly once", ok)
	}
	for _, result := range []string{"delivered", "failed", "dead"} {
		if _, found, _ := metric(t.Context(), gw.admin+"/metrics", "spillway_queue_deliveries_total", map[string]string{"route": "jobs", "result": result}); !found {
			t.Errorf("no spillway_queue_deliveries_total{route=jobs,result=%s} on /metrics", result)
		}
	}
	gw.term(t)
}

// countKey counts the deliveries with Idempotency-Key key.
func countKey(rec *recorder, key string) int {
	n := 0
	for _, d := range rec.snapshot() {
		if d.key == key {
			n++
		}
	}
	return n
}
