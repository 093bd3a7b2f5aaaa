package pool_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/gateway/pool"
)

var fourURLs = []string{"http://a:1", "http://b:2", "http://c:3", "http://d:4"}

// share picks n times and returns the share of the picks that went to in.
func share(t *testing.T, p *pool.Pool, in *pool.Instance, n int) float64 {
	t.Helper()
	hits := 0
	for range n {
		got := pick(t, p, nil)
		got.Begin()
		got.End(false)
		if got == in {
			hits++
		}
	}
	return float64(hits) / float64(n)
}

// TestSlowStartRampsAnInstanceBack: an instance back from an ejection gets
// its weight's share of the picks, growing from the floor to a full share
// over the window, with each balancer.
func TestSlowStartRampsAnInstanceBack(t *testing.T) {
	for _, balance := range []string{pool.RoundRobin, pool.Random, pool.LeastRequest} {
		t.Run(balance, func(t *testing.T) {
			clock := spillway.NewManualClock(time.Hour)
			rng := rand.New(rand.NewPCG(1, 2))
			p := mustNew(t, fourURLs, pool.Options{Balance: balance, Clock: clock, Outlier: outlier(0.5, 0),
				SlowStart: 30 * time.Second, Rand: rng.Float64})
			a := p.Instances()[0]
			fail(a, 3) // ejected for 10s
			clock.Advance(10 * time.Second)
			back := clock.Nanotime()
			for _, at := range []time.Duration{0, 7500 * time.Millisecond, 15 * time.Second, 22500 * time.Millisecond, 30 * time.Second} {
				clock.Set(time.Duration(back) + at)
				w := min(pool.SlowStartFloor+(1-pool.SlowStartFloor)*at.Seconds()/30, 1)
				want := w / (3 + w) // its weight's share of the total weight
				if got := share(t, p, a, 20000); math.Abs(got-want) > 0.015 {
					t.Errorf("%v after it came back: %.3f of the picks, want %.3f ± 0.015", at, got, want)
				}
			}
		})
	}
}

// TestSlowStartStatus: the status shows a ramping instance's weight and
// the time left, and nothing once it is done.
func TestSlowStartStatus(t *testing.T) {
	clock := spillway.NewManualClock(time.Hour)
	p := mustNew(t, fourURLs, pool.Options{Clock: clock, SlowStart: 30 * time.Second})
	if err := p.Eject("http://b:2"); err != nil {
		t.Fatal(err)
	}
	if err := p.Restore("http://b:2"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(15 * time.Second)
	st := p.Status()[1]
	if math.Abs(st.Weight-0.55) > 1e-9 || st.RampingFor != "15s" {
		t.Errorf("status halfway = weight %v ramping for %q, want 0.55 and 15s", st.Weight, st.RampingFor)
	}
	if st := p.Status()[0]; st.Weight != 0 || st.RampingFor != "" {
		t.Errorf("status of an instance that is not ramping = %+v", st)
	}
	clock.Advance(15 * time.Second)
	if st := p.Status()[1]; st.Weight != 0 || st.RampingFor != "" {
		t.Errorf("status after the window = %+v", st)
	}
}

// TestSlowStartOfAnAddedInstance: a reload that adds an instance ramps it
// up, keeps the ramp of one that stays, and ramps nothing without a window.
func TestSlowStartOfAnAddedInstance(t *testing.T) {
	clock := spillway.NewManualClock(time.Hour)
	old := mustNew(t, threeURLs, pool.Options{Clock: clock, SlowStart: 30 * time.Second})
	if st := old.Status(); st[0].Weight != 0 {
		t.Fatalf("an instance of a new pool ramps: %+v", st[0])
	}
	if err := old.Eject("http://a:1"); err != nil {
		t.Fatal(err)
	}
	if err := old.Restore("http://a:1"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Second)
	next := mustNew(t, append([]string{"http://z:9"}, threeURLs...), pool.Options{Clock: clock, SlowStart: 30 * time.Second})
	next.Inherit(old)
	st := next.Status()
	if st[0].Weight != pool.SlowStartFloor || st[0].RampingFor != "30s" {
		t.Errorf("added instance: %+v, want the floor and 30s", st[0])
	}
	if st[1].RampingFor != "20s" {
		t.Errorf("instance ramping through the reload: %+v, want 20s left", st[1])
	}
	if st[2].Weight != 0 {
		t.Errorf("instance that was not ramping: %+v", st[2])
	}
	none := mustNew(t, append([]string{"http://z:9"}, threeURLs...), pool.Options{Clock: clock})
	none.Inherit(old)
	for _, st := range none.Status() {
		if st.Weight != 0 {
			t.Errorf("without slow_start: %+v ramps", st)
		}
	}
}

// TestPickStaysAllocationFreeWhileRamping: the ramp adds draws, not
// allocations.
func TestPickStaysAllocationFreeWhileRamping(t *testing.T) {
	clock := spillway.NewManualClock(time.Hour)
	p := mustNew(t, fourURLs, pool.Options{Clock: clock, SlowStart: 30 * time.Second})
	if err := p.Eject("http://a:1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Restore("http://a:1"); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = p.Pick(nil) }); n != 0 {
		t.Fatalf("Pick allocates %v times while an instance ramps", n)
	}
}

// TestSlowStartAfterHealthRecovers: an instance whose health checks pass
// again starts at the floor (the pool's default clock follows synctest's).
func TestSlowStartAfterHealthRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeChecks()
		hc := *health
		hc.UnhealthyAfter, hc.HealthyAfter = 1, 1
		p := mustNew(t, threeURLs, pool.Options{Health: &hc, Check: f.check, Rand: func() float64 { return 0.5 }, SlowStart: 30 * time.Second})
		// Failing before the first check: set after Start, the check that
		// Start makes at once could run first, and the next is a second away.
		f.set("b:2", true)
		p.Start()
		defer p.Close()
		synctest.Wait()
		if healthy(p)[1] {
			t.Fatal("b is still healthy")
		}
		f.set("b:2", false)
		time.Sleep(time.Second)
		synctest.Wait()
		if st := p.Status()[1]; !st.Healthy || st.Weight != pool.SlowStartFloor || st.RampingFor != "30s" {
			t.Fatalf("b back: %+v, want healthy at the floor for 30s", st)
		}
	})
}
