package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The embedded store is tiny (max_disk) and the upstream is down, so that
// nothing drains: the route answers 202 until the store is full, then 503
// queue_full. After the upstream recovers, every job that got a 202 is
// delivered and none that got a 503 ever reaches it: nothing is
// half-stored.
func testAsyncStorageFull(t *testing.T, bin string) {
	const maxPosts = 200
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
		queue:     "  dir: " + filepath.Join(dir, "store") + "\n  max_disk: 1MiB",
		instances: rec.urls,
		breaker:   "{window: {type: count, size: 10}, min_calls: 5, failure_rate: 50%, open_for: 100ms, max_open_for: 100ms, half_open_probes: 1}",
		routes:    fmt.Sprintf(jobsRoute, 1000),
	}.write(t, dir, "gateway")
	gw := startGW(t, bin, cfg)
	client := newAsyncClient(t)

	pad := strings.Repeat("p", 48<<10)
	var jobs []accepted
	var refused []string
	for i := 0; i < maxPosts && len(refused) < 5; i++ {
		body := fmt.Sprintf("full-%03d-%s", i, pad)
		a, err := client.post(t.Context(), gw.public+"/jobs/"+fmt.Sprint(i), body, "")
		switch {
		case err != nil:
			t.Fatalf("POST %d: %v", i, err)
		case a.status == http.StatusAccepted:
			if len(refused) > 0 {
				t.Errorf("POST %d: 202 after the store answered queue_full (nothing drained)", i)
			}
			jobs = append(jobs, accepted{id: a.id, body: body, path: fmt.Sprintf("/jobs/%d", i)})
		case a.status == http.StatusServiceUnavailable && a.reason == "queue_full":
			refused = append(refused, body)
		default:
			t.Fatalf("POST %d: %d %q; want 202, or 503 queue_full", i, a.status, a.reason)
		}
	}
	if len(jobs) == 0 || len(refused) == 0 {
		t.Fatalf("%d accepted, %d refused with queue_full out of %d posts of 48 KiB into 1 MiB: want both", len(jobs), len(refused), maxPosts)
	}
	t.Logf("max_disk 1MiB, 48 KiB bodies: %d accepted, then 503 queue_full", len(jobs))

	down.Store(false)
	within(t, 30*time.Second, "the upstream to receive every accepted job", func() bool {
		for _, j := range jobs {
			if _, ok := rec.appliedKey(j.deliveryKey()); !ok {
				return false
			}
		}
		return true
	})
	within(t, 10*time.Second, "spillway_queue_pending{route=jobs} to be 0", func() bool {
		v, found, _ := metric(t.Context(), gw.admin+"/metrics", "spillway_queue_pending", map[string]string{"route": "jobs"})
		return found && v == 0
	})
	for _, d := range rec.snapshot() {
		for _, b := range refused {
			if d.body == b {
				t.Errorf("a job answered 503 queue_full reached the upstream: %.12s...", b)
			}
		}
	}
	// Every delivered job's status says so. A status written while the
	// store was still full must not stay behind.
	var stale []string
	for _, j := range jobs {
		s, code, err := client.status(t.Context(), gw.public+"/_spillway/jobs/"+j.id)
		if err != nil || code != http.StatusOK || s.State != "delivered" {
			stale = append(stale, fmt.Sprintf("%s: %d %+v %v", j.id, code, s, err))
		}
	}
	if len(stale) > 0 {
		t.Errorf("%d of %d jobs delivered to the upstream do not show state delivered:\n%s", len(stale), len(jobs), strings.Join(stale, "\n"))
	}
	gw.term(t)
}

// The store is an external NATS server (in the test process). While it is
// down the route answers 503 queue_unavailable at once (within the queue's
// timeout), and 202 again once it is back on the same port and store.
func testAsyncStorageUnavailable(t *testing.T, bin string) {
	dir := t.TempDir()
	ns := startNATS(t, -1, filepath.Join(dir, "nats"))
	rec := newRecorder(t, 1)
	cfg := asyncConfig{
		queue:     fmt.Sprintf("  servers: [%s]\n  timeout: 500ms", ns.url()),
		instances: rec.urls,
		routes:    fmt.Sprintf(jobsRoute, 10),
	}.write(t, dir, "gateway")
	gw := startGW(t, bin, cfg)
	client := newAsyncClient(t)

	var jobs []accepted
	post := func(body string) postAnswer {
		a, err := client.post(t.Context(), gw.public+"/jobs/x", body, "")
		if err != nil {
			t.Fatalf("POST %s: %v", body, err)
		}
		if a.status == http.StatusAccepted {
			jobs = append(jobs, accepted{id: a.id, body: body, path: "/jobs/x"})
		}
		return a
	}
	if a := post("before"); a.status != http.StatusAccepted {
		t.Fatalf("POST with the store up: %d %q; want 202", a.status, a.reason)
	}
	client.waitDelivered(t, gw.public, jobs, 10*time.Second)

	ns.stop()
	var refused []string
	for i := range 3 {
		body := fmt.Sprintf("during-%d", i)
		a := post(body)
		if a.status != http.StatusServiceUnavailable || a.reason != "queue_unavailable" {
			t.Fatalf("POST with the store down: %d %q; want 503 queue_unavailable", a.status, a.reason)
		}
		if a.took > 3*time.Second {
			t.Errorf("503 queue_unavailable took %s; want it within the queue timeout (500ms) and some slack", a.took)
		}
		t.Logf("store down: 503 queue_unavailable in %s", a.took.Round(time.Millisecond))
		refused = append(refused, body)
	}

	startNATS(t, ns.port, ns.dir)
	var last postAnswer
	within(t, 30*time.Second, "a 202 once the store is back", func() bool {
		last = post(fmt.Sprintf("after-%d", len(jobs)))
		if last.status != http.StatusAccepted && (last.status != http.StatusServiceUnavailable || last.reason != "queue_unavailable") {
			t.Fatalf("POST while the store comes back: %d %q; want 202 or 503 queue_unavailable", last.status, last.reason)
		}
		return last.status == http.StatusAccepted
	}, func() string { return fmt.Sprintf("%d %s", last.status, last.reason) })
	client.waitDelivered(t, gw.public, jobs, 30*time.Second)
	for _, d := range rec.snapshot() {
		for _, b := range refused {
			if d.body == b {
				t.Errorf("%q was answered 503 but reached the upstream", b)
			}
		}
	}
	gw.term(t)
}

// Two gateway processes share one external NATS server (in the test
// process): jobs posted to either are delivered exactly once, by one of
// them, with a healthy upstream, and both deliver a share.
func testAsyncScaleOut(t *testing.T, bin string) {
	const (
		jobs    = 300
		workers = 16
	)
	dir := t.TempDir()
	ns := startNATS(t, -1, filepath.Join(dir, "nats"))
	// One listener per gateway: the listener tells which gateway delivered.
	rec := newRecorder(t, 2)
	// A little work per delivery, as a real upstream does, so that both
	// gateways' workers have jobs in flight at once.
	rec.setAnswer(func(delivery) int { time.Sleep(2 * time.Millisecond); return http.StatusOK })
	var gws [2]*gwProc
	for i := range gws {
		cfg := asyncConfig{
			queue:     fmt.Sprintf("  servers: [%s]", ns.url()),
			instances: rec.urls[i : i+1],
			routes:    fmt.Sprintf(jobsRoute, 10),
		}.write(t, dir, fmt.Sprintf("gateway-%d", i))
		gws[i] = startGW(t, bin, cfg)
	}
	client := newAsyncClient(t)

	// One Idempotency-Key posted to both gateways is one job: the dedupe
	// window is the shared store's.
	first, err := client.post(t.Context(), gws[0].public+"/jobs/shared", "shared", "shared-key")
	if err != nil || first.status != http.StatusAccepted || first.dup {
		t.Fatalf("POST shared-key to gateway 0: %+v %v; want 202, not a duplicate", first, err)
	}
	second, err := client.post(t.Context(), gws[1].public+"/jobs/shared", "shared", "shared-key")
	if err != nil || second.status != http.StatusAccepted || !second.dup || second.id != first.id {
		t.Fatalf("POST shared-key to gateway 1: %+v %v; want 202, duplicate, id %s", second, err, first.id)
	}

	var (
		mu       sync.Mutex
		promises = []accepted{acceptedJob(first, "shared", "/jobs/shared")}
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= jobs {
					return
				}
				body := fmt.Sprintf("scale-%03d", i)
				a, err := client.post(t.Context(), gws[i%2].public+"/jobs/"+fmt.Sprint(i), body, "")
				if err != nil || a.status != http.StatusAccepted {
					t.Errorf("POST %d to gateway %d: %+v %v; want 202", i, i%2, a, err)
					return
				}
				mu.Lock()
				promises = append(promises, acceptedJob(a, body, fmt.Sprintf("/jobs/%d", i)))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	within(t, 60*time.Second, "every job to be delivered", func() bool {
		_, ok := rec.raw()
		return ok >= jobs+1
	})
	// Any job's status is readable on either gateway: the bucket is shared.
	client.waitDelivered(t, gws[0].public, promises, 30*time.Second)
	client.waitDelivered(t, gws[1].public, promises, 30*time.Second)
	raw, _ := rec.raw()
	var split [2]int
	for _, d := range rec.snapshot() {
		split[d.listener]++
	}
	for body, keys := range rec.keysPerBody() {
		if len(keys) != 1 {
			t.Errorf("%s delivered under keys %v", body, keys)
		}
	}
	if raw != jobs+1 {
		t.Errorf("%d raw deliveries of %d jobs: want exactly one each with a healthy upstream", raw, jobs+1)
	}
	t.Logf("2 gateways on one NATS server: %d jobs, %d raw deliveries; gateway 0 delivered %d, gateway 1 delivered %d", jobs+1, raw, split[0], split[1])
	if split[0] == 0 || split[1] == 0 {
		t.Errorf("one gateway delivered everything (%d / %d): the work is not shared", split[0], split[1])
	}
	for _, g := range gws {
		g.term(t)
	}
}

// acceptedJob is the promise of a 202 answer a for body posted on path.
func acceptedJob(a postAnswer, body, path string) accepted {
	return accepted{id: a.id, body: body, path: path, duplicate: a.dup}
}
