package pool_test

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/pool"
	"pgregory.net/rapid"
)

// TestPickProperties drives a pool with random failures, successes and time
// and checks what must always hold: the max_ejected limit, ejections no
// longer than max_ejection, Pick's choice (usable, not avoided) outside panic
// mode, and its refusal only when nothing is usable and panic mode is off.
func TestPickProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 6).Draw(t, "instances")
		urls := eightURLs[:n]
		o := config.Outlier{
			ConsecutiveFailures: rapid.IntRange(1, 3).Draw(t, "consecutive"),
			Ejection:            time.Duration(rapid.IntRange(1, 10).Draw(t, "ejection")) * time.Second,
			MaxEjection:         time.Duration(rapid.IntRange(1, 40).Draw(t, "maxEjection")) * time.Second,
			MaxEjected:          float64(rapid.IntRange(0, 4).Draw(t, "maxEjected")) / 4,
			PanicThreshold:      float64(rapid.IntRange(0, 4).Draw(t, "panic")) / 4,
		}
		balance := rapid.SampledFrom([]string{pool.RoundRobin, pool.LeastRequest, pool.Random}).Draw(t, "balance")
		clock := spillway.NewManualClock(0)
		p, err := pool.New(urls, pool.Options{Balance: balance, Outlier: o, Clock: clock, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		limit := 0
		if o.MaxEjected > 0 {
			limit = max(1, int(o.MaxEjected*float64(n)))
		}
		ins := p.Instances()
		for range rapid.IntRange(1, 100).Draw(t, "steps") {
			i := rapid.IntRange(0, n-1).Draw(t, "i")
			switch rapid.IntRange(0, 3).Draw(t, "action") {
			case 0:
				fail(ins[i], 1)
			case 1:
				ins[i].Begin()
				ins[i].End(false)
			case 2:
				clock.Advance(time.Duration(rapid.IntRange(0, 15).Draw(t, "advance")) * time.Second)
			case 3:
				avoid := ins[i]
				status := p.Status()
				usable := 0
				for _, s := range status {
					if !s.Ejected {
						usable++
					}
				}
				got, err := p.Pick(avoid)
				panicMode := float64(usable) < o.PanicThreshold*float64(n)
				switch {
				case err != nil:
					if usable != 0 || panicMode {
						t.Fatalf("Pick refused with %d usable, panic mode %v: %v", usable, panicMode, err)
					}
				case !panicMode && status[got.Index()].Ejected:
					t.Fatalf("Pick returned ejected %v outside panic mode", got)
				case got == avoid && (panicMode && n > 1 || !panicMode && usable > 1 && !status[i].Ejected):
					t.Fatalf("Pick returned the avoided %v though another candidate existed", got)
				}
			}
			if c := p.EjectedCount(); c > limit {
				t.Fatalf("%d ejected, limit %d", c, limit)
			}
		}
		clock.Advance(max(o.MaxEjection, o.Ejection))
		if c := p.EjectedCount(); c != 0 {
			t.Fatalf("%d still ejected after max_ejection", c)
		}
	})
}

// TestConcurrentUse runs Pick, Begin and End from many goroutines while
// instances fail and time passes, for the race detector, and checks the
// limit and the in-flight counts afterwards.
func TestConcurrentUse(t *testing.T) {
	clock := spillway.NewManualClock(0)
	o := config.Outlier{ConsecutiveFailures: 2, Ejection: time.Second, MaxEjection: 5 * time.Second, MaxEjected: 0.5, PanicThreshold: 0.25}
	for _, balance := range []string{pool.RoundRobin, pool.LeastRequest, pool.Random} {
		p := mustNew(t, eightURLs, pool.Options{Balance: balance, Outlier: o, Clock: clock})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 1))
				var prev *pool.Instance
				for range 2000 {
					in, err := p.Pick(prev)
					if err != nil {
						t.Error(err)
						return
					}
					in.Begin()
					in.End(in.Index()%3 == 0 && r.IntN(2) == 0)
					prev = in
					if c := p.EjectedCount(); c > 4 {
						t.Errorf("%d ejected, limit 4", c)
						return
					}
				}
			})
		}
		wg.Go(func() {
			for range 200 {
				clock.Advance(100 * time.Millisecond)
				_ = p.Status()
			}
		})
		wg.Wait()
		for _, s := range p.Status() {
			if s.InFlight != 0 {
				t.Fatalf("%s: %d in flight after all attempts ended", s.URL, s.InFlight)
			}
		}
	}
}
