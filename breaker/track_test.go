package breaker

import (
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

// TestTrackJudgesTheDurationFromTrack: a tracked call released after
// SlowCallDuration is a slow call, whatever its own permit said; slow
// tracked calls open the breaker.
func TestTrackJudgesTheDurationFromTrack(t *testing.T) {
	h := newHarness(t, Config{MinCalls: 2, SlowCallDuration: time.Second})
	for i := range 2 {
		// The call's own permit goes back at once, ignored (its outcome
		// comes later).
		if rej := h.call(spillway.CallerDone(errDown), 0); rej != nil {
			t.Fatalf("call %d rejected: %v", i, rej)
		}
		p, ok := h.b.Track()
		if !ok {
			t.Fatalf("call %d: Track refused by a closed breaker", i)
		}
		h.clk.Advance(time.Second)
		p.Release(nil)
	}
	h.wantState(Open)
	if s := h.b.Snapshot(); s.Slow != 2 || s.Failures != 0 {
		t.Errorf("window: %d slow, %d failed, want 2 slow and no failure", s.Slow, s.Failures)
	}
}

// TestTrackDroppedCountsNothing: a tracked permit never released leaves
// the window as it was.
func TestTrackDroppedCountsNothing(t *testing.T) {
	h := newHarness(t, Config{MinCalls: 1})
	for range 10 {
		if _, ok := h.b.Track(); !ok {
			t.Fatal("Track refused by a closed breaker")
		}
	}
	if s := h.b.Snapshot(); s.Calls != 0 {
		t.Errorf("%d calls in the window, want 0", s.Calls)
	}
	h.wantState(Closed)
}

// TestTrackOnlyWhenClosed: an open or half-open breaker tracks nothing
// (a half-open probe's own permit counts), and a tracked permit of a
// generation the breaker has left is dropped on release.
func TestTrackOnlyWhenClosed(t *testing.T) {
	h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: time.Second, HalfOpenProbes: 1})
	old, ok := h.b.Track()
	if !ok {
		t.Fatal("Track refused by a closed breaker")
	}
	h.trip()
	if _, ok := h.b.Track(); ok {
		t.Error("an open breaker tracked a call")
	}
	h.clk.Advance(time.Second)
	probe, err := h.b.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.wantState(HalfOpen)
	if _, ok := h.b.Track(); ok {
		t.Error("a half-open breaker tracked a call")
	}
	probe.Release(nil)
	h.wantState(Closed)
	old.Release(errDown) // the first closed generation's: dropped
	h.wantState(Closed)
}

// TestTrackInASlowStartNeverRefuses: Track admits no call, so a slow
// start's ramp neither refuses it nor reports a rejection.
func TestTrackInASlowStartNeverRefuses(t *testing.T) {
	h := slowStartHarness(t)
	h.closeByProbe()
	h.b.core.Load().rand = func() float64 { return 0.99 } // the ramp refuses every call
	before := h.log.count(spillway.EventRejection)
	for range 100 {
		if _, ok := h.b.Track(); !ok {
			t.Fatal("Track refused in a slow start")
		}
	}
	if h.log.count(spillway.EventRejection) != before || h.b.Snapshot().Rejected != 0 {
		t.Error("Track counted or reported a rejection")
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = h.b.Track() }); n != 0 {
		t.Errorf("Track allocates %v times", n)
	}
}
