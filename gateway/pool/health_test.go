package pool_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/pool"
)

// fakeChecks is an Options.Check whose answer per host the test sets.
type fakeChecks struct {
	mu     sync.Mutex
	fail   map[string]bool
	calls  map[string]int
	paths  map[string]string
	atTime []time.Time
}

func newFakeChecks() *fakeChecks {
	return &fakeChecks{fail: map[string]bool{}, calls: map[string]int{}, paths: map[string]string{}}
}

func (f *fakeChecks) check(_ context.Context, u *url.URL) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[u.Host]++
	f.paths[u.Host] = u.Path
	f.atTime = append(f.atTime, time.Now())
	if f.fail[u.Host] {
		return context.DeadlineExceeded
	}
	return nil
}

func (f *fakeChecks) set(host string, failing bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[host] = failing
}

var health = &config.Health{Path: "/healthz", Interval: time.Second, Timeout: 100 * time.Millisecond, UnhealthyAfter: 3, HealthyAfter: 2}

func healthy(p *pool.Pool) []bool {
	var out []bool
	for _, s := range p.Status() {
		out = append(out, s.Healthy)
	}
	return out
}

func TestHealthTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeChecks()
		p := mustNew(t, threeURLs, pool.Options{Health: health, Check: f.check, Rand: func() float64 { return 0.5 }})
		p.Start()
		defer p.Close()
		synctest.Wait() // the first round runs at once
		if f.calls["a:1"] != 1 || f.paths["a:1"] != "/healthz" {
			t.Fatalf("first round: calls %v, paths %v", f.calls, f.paths)
		}
		f.set("b:2", true)
		step := func() {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		step()
		step()
		if h := healthy(p); !h[1] {
			t.Fatal("unhealthy after 2 failures, want 3")
		}
		step()
		if h := healthy(p); h[1] || !h[0] || !h[2] {
			t.Fatalf("after 3 failures healthy = %v, want only b unhealthy", h)
		}
		for range 10 {
			if in := pick(t, p, nil); in.String() == "http://b:2" {
				t.Fatal("Pick returned the unhealthy instance")
			}
		}
		f.set("b:2", false)
		step()
		if healthy(p)[1] {
			t.Fatal("healthy after 1 pass, want 2")
		}
		step()
		if !healthy(p)[1] {
			t.Fatal("still unhealthy after 2 passes")
		}
		// A failure between passes starts the count again.
		f.set("b:2", true)
		step()
		step()
		f.set("b:2", false)
		step()
		f.set("b:2", true)
		step()
		if !healthy(p)[1] {
			t.Fatal("unhealthy after non-consecutive failures")
		}
	})
}

func TestHealthIntervalJitter(t *testing.T) {
	for _, tt := range []struct {
		r    float64
		want time.Duration
	}{{0, 900 * time.Millisecond}, {0.5, time.Second}, {0.999, 1099800 * time.Microsecond}} {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeChecks()
			p := mustNew(t, threeURLs[:1], pool.Options{Health: health, Check: f.check, Rand: func() float64 { return tt.r }})
			p.Start()
			time.Sleep(5 * time.Second)
			p.Close()
			for i := 1; i < len(f.atTime); i++ {
				if d := f.atTime[i].Sub(f.atTime[i-1]); d != tt.want {
					t.Fatalf("rand %v: interval %v, want %v", tt.r, d, tt.want)
				}
			}
			if len(f.atTime) < 5 {
				t.Fatalf("rand %v: %d checks in 5s", tt.r, len(f.atTime))
			}
		})
	}
}

func TestHealthCheckTimeoutAndBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running, peak atomic.Int32
		hc := &config.Health{Path: "/", Interval: 10 * time.Second, Timeout: time.Second, UnhealthyAfter: 1, HealthyAfter: 1}
		urls := make([]string, 20)
		for i := range urls {
			urls[i] = "http://h" + string(rune('a'+i))
		}
		p := mustNew(t, urls, pool.Options{Health: hc, Check: func(ctx context.Context, _ *url.URL) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			<-ctx.Done() // a check that never answers
			return ctx.Err()
		}})
		start := time.Now()
		p.Start()
		time.Sleep(3*time.Second + time.Millisecond) // 20 checks of 1s, 8 at a time: 3 waves
		synctest.Wait()
		for i, h := range healthy(p) {
			if h {
				t.Fatalf("instance %d healthy after its check timed out", i)
			}
		}
		if peak.Load() != 8 {
			t.Fatalf("%d checks ran at once, want 8", peak.Load())
		}
		p.Close()
		if time.Since(start) > 4*time.Second {
			t.Fatal("slow")
		}
	})
}

func TestCloseCancelsCheckWithoutCounting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hc := &config.Health{Path: "/", Interval: time.Second, Timeout: time.Hour, UnhealthyAfter: 1, HealthyAfter: 1}
		started := make(chan struct{})
		p := mustNew(t, threeURLs[:1], pool.Options{Health: hc, Check: func(ctx context.Context, _ *url.URL) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}})
		p.Start()
		p.Start() // a second Start starts nothing
		<-started
		p.Close()
		p.Close()
		if !healthy(p)[0] {
			t.Fatal("a check canceled by Close counted as a failure")
		}
	})
}

func TestStartWithoutHealthAndAfterClose(t *testing.T) {
	p := mustNew(t, threeURLs, pool.Options{})
	p.Start() // no health: no goroutine (goleak checks)
	p.Close()
	called := false
	q := mustNew(t, threeURLs, pool.Options{Health: health, Check: func(context.Context, *url.URL) error { called = true; return nil }})
	q.Close()
	q.Start()
	q.Close()
	if called {
		t.Fatal("Start after Close ran checks")
	}
}

// TestDefaultHTTPCheck runs the default check against a real server whose
// answer the test flips, polling for the transitions with a deadline.
func TestDefaultHTTPCheck(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	var lastPath, lastUA atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastPath.Store(r.URL.Path)
		lastUA.Store(r.UserAgent())
		if s := int(status.Load()); s == http.StatusFound {
			http.Redirect(w, r, "/elsewhere", s)
		} else {
			w.WriteHeader(s)
		}
	}))
	defer srv.Close()
	hc := &config.Health{Path: "/ready", Interval: 5 * time.Millisecond, Timeout: time.Second, UnhealthyAfter: 2, HealthyAfter: 2}
	p := mustNew(t, []string{srv.URL + "/base"}, pool.Options{Health: hc})
	p.Start()
	defer p.Close()
	waitFor := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for healthy(p)[0] != want {
			if time.Now().After(deadline) {
				t.Fatalf("instance did not become healthy=%v", want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, s := range []int32{http.StatusServiceUnavailable, http.StatusFound} {
		status.Store(s)
		waitFor(false)
		status.Store(http.StatusNoContent)
		waitFor(true)
	}
	if lastPath.Load() != "/base/ready" || lastUA.Load() != "spillway-health-check" {
		t.Fatalf("checked path %v with User-Agent %v", lastPath.Load(), lastUA.Load())
	}
	// A closed server: connection refused fails the check.
	srv.Close()
	waitFor(false)
}

// Health carries over too, and only while the new pool checks health.
func TestInheritKeepsHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		checks := newFakeChecks()
		checks.set("a:1", true)
		old := mustNew(t, threeURLs, pool.Options{Health: health, Check: checks.check})
		old.Start()
		synctest.Wait()
		for range health.UnhealthyAfter - 1 {
			time.Sleep(health.Interval + health.Interval/10)
			synctest.Wait()
		}
		if h := healthy(old); h[0] {
			t.Fatalf("before: healthy %v, want a unhealthy", h)
		}
		old.Close()
		next := mustNew(t, threeURLs[:2], pool.Options{Health: health, Check: checks.check})
		next.Inherit(old)
		if h := healthy(next); h[0] || !h[1] {
			t.Errorf("with health checks: healthy %v, want [false true]", h)
		}
		if _, err := next.Pick(nil); err != nil {
			t.Fatal(err)
		}
		unchecked := mustNew(t, threeURLs[:2], pool.Options{})
		unchecked.Inherit(old)
		if h := healthy(unchecked); !h[0] || !h[1] {
			t.Errorf("without health checks: healthy %v, want every instance healthy", h)
		}
	})
}

func TestOnTransitionReportsHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeChecks()
		var got []pool.Transition
		p := mustNew(t, threeURLs, pool.Options{Health: health, Check: f.check, Rand: func() float64 { return 0.5 },
			OnTransition: func(tr pool.Transition) { got = append(got, tr) }})
		f.set("b:2", true)
		p.Start()
		defer p.Close()
		for range 3 {
			synctest.Wait()
			time.Sleep(time.Second)
		}
		f.set("b:2", false)
		for range 2 {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		want := []pool.Transition{{Instance: "http://b:2", To: "unhealthy"}, {Instance: "http://b:2", To: "healthy"}}
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("transitions = %+v, want %+v", got, want)
		}
	})
}
