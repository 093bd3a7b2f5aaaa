package throttle_test

import (
	"context"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/throttle"
)

// event is one counted request of the model: its epoch and whether the
// downstream accepted it.
type event struct {
	epoch    int64
	accepted bool
}

// TestModel holds a Throttler to its specification over random sequences
// of calls, outcomes, clock steps and updates: the window's counts are
// those of the requests whose bucket is among the last Buckets, the
// probability is the formula's, capped, always in [0, MaxRejectionRate],
// and a call is refused exactly when the random draw is below it.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		const width = int64(time.Second)
		const n = 10
		clock := spillway.NewManualClock(time.Duration(rapid.Int64Range(-1e12, 1e12).Draw(rt, "start")))
		var draw float64
		th := throttle.MustNew(throttle.Config{Window: n * time.Second, Clock: clock, Rand: func() float64 { return draw }})
		k, maxRate := throttle.DefaultK, throttle.DefaultMaxRejectionRate
		var events []event
		type held struct {
			p     spillway.Permit
			epoch int64
		}
		var permits []held
		epoch := func() int64 { // buckets of whole seconds
			now := clock.Nanotime()
			e := now / width
			if now%width < 0 {
				e--
			}
			return e
		}
		counts := func() (reqs, accs int64) {
			e := epoch()
			for _, ev := range events {
				if ev.epoch > e-n && ev.epoch <= e {
					reqs++
					if ev.accepted {
						accs++
					}
				}
			}
			return reqs, accs
		}
		probability := func() float64 {
			reqs, accs := counts()
			return max(0, min(maxRate, (float64(reqs)-k*float64(accs))/float64(reqs+1)))
		}
		check := func() {
			reqs, accs := counts()
			if gr, ga := th.Counts(); gr != reqs || ga != accs {
				rt.Fatalf("Counts = %d, %d, model %d, %d", gr, ga, reqs, accs)
			}
			p := th.RejectionProbability()
			if p < 0 || p > maxRate || p != probability() {
				rt.Fatalf("RejectionProbability = %v, model %v, cap %v", p, probability(), maxRate)
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"acquire": func(rt *rapid.T) {
				draw = rapid.Float64Range(0, 0.999999).Draw(rt, "draw")
				want := probability()
				p, err := th.Acquire(context.Background())
				if refused := err != nil; refused != (want > 0 && draw < want) {
					rt.Fatalf("Acquire refused = %v with draw %v and probability %v", refused, draw, want)
				}
				if err != nil {
					events = append(events, event{epoch: epoch()})
					return
				}
				permits = append(permits, held{p, epoch()})
			},
			"release": func(rt *rapid.T) {
				if len(permits) == 0 {
					rt.Skip("no call in flight")
				}
				i := rapid.IntRange(0, len(permits)-1).Draw(rt, "permit")
				h := permits[i]
				permits = append(permits[:i], permits[i+1:]...)
				var err error
				switch outcome := rapid.IntRange(0, 2).Draw(rt, "outcome"); outcome {
				case 1:
					err = errDown
				case 2:
					err = spillway.CallerDone(errDown)
				}
				h.p.Release(err)
				if err == nil || err == errDown {
					// A release of a bucket that left the window counts
					// nowhere that the window will see again.
					if e := epoch(); h.epoch > e-n {
						events = append(events, event{epoch: h.epoch, accepted: err == nil})
					}
				}
			},
			"advance": func(rt *rapid.T) {
				clock.Advance(time.Duration(rapid.Int64Range(0, 12*width).Draw(rt, "by")))
			},
			"update": func(rt *rapid.T) {
				k = rapid.Float64Range(1, 5).Draw(rt, "k")
				maxRate = rapid.Float64Range(0.01, 1).Draw(rt, "maxRate")
				if err := th.Update(func(c *throttle.Config) { c.K, c.MaxRejectionRate = k, maxRate }); err != nil {
					rt.Fatal(err)
				}
			},
			"": func(*rapid.T) { check() },
		})
	})
}

// TestProbabilityAlwaysInRange changes the window's length too, which the
// model above does not follow: whatever happens, the probability stays in
// [0, MaxRejectionRate] and the window never holds more accepts than
// requests.
func TestProbabilityAlwaysInRange(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		clock := spillway.NewManualClock(0)
		th := throttle.MustNew(throttle.Config{Window: 10 * time.Second, Clock: clock,
			Rand: func() float64 { return rapid.Float64Range(0, 0.999999).Draw(rt, "draw") }})
		var permits []spillway.Permit
		rt.Repeat(map[string]func(*rapid.T){
			"acquire": func(rt *rapid.T) {
				if p, err := th.Acquire(context.Background()); err == nil {
					permits = append(permits, p)
				}
			},
			"release": func(rt *rapid.T) {
				if len(permits) == 0 {
					rt.Skip("no call in flight")
				}
				i := rapid.IntRange(0, len(permits)-1).Draw(rt, "permit")
				var err error
				if rapid.Bool().Draw(rt, "fails") {
					err = errDown
				}
				permits[i].Release(err)
				permits = append(permits[:i], permits[i+1:]...)
			},
			"advance": func(rt *rapid.T) {
				clock.Advance(time.Duration(rapid.Int64Range(0, int64(20*time.Second)).Draw(rt, "by")))
			},
			"update": func(rt *rapid.T) {
				window := time.Duration(rapid.Int64Range(int64(10*time.Millisecond), int64(time.Minute)).Draw(rt, "window"))
				buckets := rapid.IntRange(0, 100).Draw(rt, "buckets")
				maxRate := rapid.Float64Range(0.01, 1).Draw(rt, "maxRate")
				err := th.Update(func(c *throttle.Config) { c.Window, c.Buckets, c.MaxRejectionRate = window, buckets, maxRate })
				if err != nil && window/time.Duration(max(buckets, 1)) >= time.Millisecond {
					rt.Fatal(err)
				}
			},
			"": func(rt *rapid.T) {
				p, maxRate := th.RejectionProbability(), th.Config().MaxRejectionRate
				if !(p >= 0 && p <= maxRate) {
					rt.Fatalf("RejectionProbability = %v, outside [0, %v]", p, maxRate)
				}
				if reqs, accs := th.Counts(); accs > reqs || accs < 0 {
					rt.Fatalf("Counts = %d requests, %d accepts", reqs, accs)
				}
			},
		})
	})
}
