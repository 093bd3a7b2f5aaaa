package pool_test

import (
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/gateway/pool"
)

var eightURLs = []string{"http://a", "http://b", "http://c", "http://d", "http://e", "http://f", "http://g", "http://h"}

// BenchmarkPick measures an attempt's pool work: Pick, Begin, End; with
// slow start configured (it costs nothing while no instance ramps) and,
// in one-ramping, an instance ramping up.
func BenchmarkPick(b *testing.B) {
	for _, balance := range []string{pool.RoundRobin, pool.LeastRequest, pool.Random} {
		for _, state := range []string{"all-usable", "one-ejected", "one-ramping"} {
			b.Run(balance+"/"+state, func(b *testing.B) {
				clock := spillway.NewManualClock(0)
				p := mustNew(b, eightURLs, pool.Options{Balance: balance, Clock: clock, Outlier: outlier(0.5, 0.5), SlowStart: time.Hour})
				switch state {
				case "one-ejected":
					fail(p.Instances()[3], 3)
					clock.Advance(time.Second)
				case "one-ramping":
					fail(p.Instances()[3], 3)
					clock.Advance(time.Minute) // back from its 10s ejection, an hour of ramp
				}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					var prev *pool.Instance
					for pb.Next() {
						in, err := p.Pick(prev)
						if err != nil {
							b.Fatal(err)
						}
						in.Begin()
						in.End(false)
						prev = in
					}
				})
			})
		}
	}
}
