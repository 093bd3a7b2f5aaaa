package pool_test

import (
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/gateway/pool"
)

func TestManualEjectionHoldsUntilRestored(t *testing.T) {
	clock := spillway.NewManualClock(0)
	p := mustNew(t, threeURLs, pool.Options{Clock: clock, Outlier: outlier(0.34, 0)})
	a := p.Instances()[0]
	// Ejected by the outlier logic first: the manual ejection takes over
	// and outlasts it.
	fail(a, 3)
	if err := p.Eject("http://a:1"); err != nil {
		t.Fatal(err)
	}
	// max_ejected (one of three) does not limit an operator.
	if err := p.Eject("http://b:2"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	fail(a, 3) // no effect on an instance ejected
	st := p.Status()
	if !st[0].Ejected || !st[0].Manual || !st[1].Manual || st[2].Ejected || p.EjectedCount() != 2 {
		t.Fatalf("after an hour: %+v, %d ejected", st, p.EjectedCount())
	}
	for range 10 {
		if in := pick(t, p, nil); in.String() != "http://c:3" {
			t.Fatalf("picked %s, an instance ejected by hand", in)
		}
	}
	if err := p.Restore("http://a:1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Restore("http://c:3"); err != nil { // not ejected: nothing to do
		t.Fatal(err)
	}
	if st := p.Status(); st[0].Ejected || st[0].Manual || !st[1].Manual || p.EjectedCount() != 1 {
		t.Fatalf("after restoring a: %+v, %d ejected", st, p.EjectedCount())
	}
	if p.Eject("http://nope:1") == nil || p.Restore("http://nope:1") == nil {
		t.Error("an unknown instance accepted")
	}
	// A reload's new pool inherits the manual ejection.
	next := mustNew(t, threeURLs, pool.Options{Clock: clock})
	next.Inherit(p)
	if st := next.Status(); !st[1].Manual || next.EjectedCount() != 1 {
		t.Errorf("inherited: %+v", st)
	}
}
