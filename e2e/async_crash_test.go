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

// TestAsync runs the async routes' end-to-end tests against one build of
// the real binary (linking it takes seconds; each subtest starts its own
// processes, stores and upstreams).
func TestAsync(t *testing.T) {
	bin := buildSpillway(t, t.TempDir())
	t.Run("CrashSafety", func(t *testing.T) { testAsyncCrashSafety(t, bin) })
	t.Run("UpstreamDown", func(t *testing.T) { testAsyncUpstreamDown(t, bin) })
	t.Run("PoisonJob", func(t *testing.T) { testAsyncPoison(t, bin) })
	t.Run("StorageFull", func(t *testing.T) { testAsyncStorageFull(t, bin) })
	t.Run("StorageUnavailable", func(t *testing.T) { testAsyncStorageUnavailable(t, bin) })
	t.Run("ScaleOut", func(t *testing.T) { testAsyncScaleOut(t, bin) })
}

// jobsRoute is an async route at /jobs (strip_prefix off: the upstream sees
// /jobs/...) with test-sized backoffs.
const jobsRoute = `  - name: jobs
    match: {path_prefix: /jobs, methods: [POST]}
    upstream: svc
    async: {max_attempts: %d, backoff: {initial: 5ms, max: 50ms, multiplier: 2, jitter: full}, retention: 1h, max_body: 1MiB, concurrency: 8}
`

// Crash safety: clients post jobs concurrently, half of them with their own
// Idempotency-Key, while the gateway is killed with SIGKILL mid-stream and
// restarted on the same store, five times. Every job answered 202 must be
// delivered; the deduping upstream must never see one body under two keys
// (which it would apply twice). Requests cut by a kill got no answer: their
// fate is unknown, and the keyed ones are sent again after the restart, as a
// client would, which must not store them twice either.
func testAsyncCrashSafety(t *testing.T, bin string) {
	const (
		jobs     = 1000
		kills    = 5
		perPhase = 150 // new 202s before each kill
		workers  = 16
	)
	dir := t.TempDir()
	rec := newRecorder(t, 1)
	cfg := asyncConfig{
		queue:     "  dir: " + filepath.Join(dir, "store") + "\n  timeout: 2s",
		instances: rec.urls,
		routes:    fmt.Sprintf(jobsRoute, 1000),
	}.write(t, dir, "gateway")
	client := newAsyncClient(t)

	type job struct {
		i         int
		key, body string
	}
	todo := make(chan job, jobs)
	for i := range jobs {
		j := job{i: i, body: fmt.Sprintf("job-%03d-%s", i, strings.Repeat("x", i%50))}
		if i%2 == 0 {
			j.key = fmt.Sprintf("client-key-%03d", i)
		}
		todo <- j
	}

	var (
		mu       sync.Mutex
		promised = map[int]accepted{} // by job index: the 202s
		unknown  = map[int]bool{}     // no answer, never accepted since
		others   []string             // answers that are neither 202 nor a cut connection
	)
	var nAccepted atomic.Int64
	for phase := 0; phase <= kills; phase++ {
		gw := startGW(t, bin, cfg)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					var j job
					select {
					case j = <-todo:
					default:
						return
					}
					a, err := client.post(t.Context(), gw.public+"/jobs/"+fmt.Sprint(j.i), j.body, j.key)
					mu.Lock()
					switch {
					case err != nil:
						// Cut by the kill. A client retries a keyed request;
						// an unkeyed one stays unknown.
						unknown[j.i] = true
						if j.key != "" {
							todo <- j
						}
					case a.status == http.StatusAccepted:
						delete(unknown, j.i)
						if prev, ok := promised[j.i]; ok && prev.id != a.id {
							others = append(others, fmt.Sprintf("job %d: accepted twice with ids %s and %s", j.i, prev.id, a.id))
						}
						promised[j.i] = accepted{id: a.id, key: j.key, body: j.body, path: fmt.Sprintf("/jobs/%d", j.i), duplicate: a.dup}
						nAccepted.Add(1)
					default:
						others = append(others, fmt.Sprintf("job %d: %d %s", j.i, a.status, a.reason))
					}
					mu.Unlock()
				}
			})
		}
		if phase < kills {
			target := int64((phase + 1) * perPhase)
			within(t, 30*time.Second, fmt.Sprintf("%d accepted jobs before kill %d", target, phase+1),
				func() bool { return nAccepted.Load() >= target })
			gw.kill()
			close(stop)
			wg.Wait()
			client.hc.CloseIdleConnections()
			continue
		}
		// The last life: every job left is sent, then every promise must be
		// kept.
		wg.Wait()
		close(stop)
		mu.Lock()
		if len(others) > 0 {
			t.Errorf("answers other than 202 or a cut connection:\n%s", strings.Join(others, "\n"))
		}
		var promises []accepted
		for _, a := range promised {
			promises = append(promises, a)
		}
		nUnknown, dups := len(unknown), 0
		for _, a := range promised {
			if a.duplicate {
				dups++
			}
		}
		mu.Unlock()

		within(t, 90*time.Second, "the upstream to apply every accepted job", func() bool {
			for _, a := range promises {
				if _, ok := rec.appliedKey(a.deliveryKey()); !ok {
					return false
				}
			}
			return true
		}, func() string {
			missing := 0
			for _, a := range promises {
				if _, ok := rec.appliedKey(a.deliveryKey()); !ok {
					missing++
				}
			}
			return fmt.Sprintf("%d of %d accepted jobs never delivered", missing, len(promises))
		})
		for _, a := range promises {
			d, _ := rec.appliedKey(a.deliveryKey())
			if d.body != a.body || d.jobID != a.id || d.path != a.path {
				t.Errorf("job %s (key %q): delivered body %q, Spillway-Job-Id %q, path %q; want %q, %q, %q",
					a.id, a.key, d.body, d.jobID, d.path, a.body, a.id, a.path)
			}
		}
		for body, keys := range rec.keysPerBody() {
			if len(keys) > 1 {
				t.Errorf("body %q delivered under %d different Idempotency-Keys %v: a deduping upstream applied it %d times",
					body, len(keys), keys, len(keys))
			}
		}
		client.waitDelivered(t, gw.public, promises, 30*time.Second)
		raw, ok := rec.raw()
		distinct := len(rec.keysPerBody())
		t.Logf("%d kill -9 + restarts; %d jobs posted: %d accepted (202; %d of them keyed re-sends answered duplicate), "+
			"%d unknown (cut by a kill, unkeyed, never re-sent); upstream: %d raw deliveries (%d answered 200) of %d distinct jobs: "+
			"%d redeliveries absorbed by the key, 0 lost", kills, jobs, len(promises), dups, nUnknown, raw, ok, distinct, ok-distinct)
		gw.term(t)
	}
}
