package breaker

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

// golden returns a deterministic Rand: the fractional parts of i×φ, spread
// evenly over [0,1) at every length, so that n draws admit share×n calls
// within a couple of calls.
func golden() func() float64 {
	var i float64
	return func() float64 {
		i++
		_, f := math.Modf(i * math.Phi)
		return f
	}
}

// slowStartHarness is a breaker that opens on 2 failures in a row, stays
// open 1s, closes on one good probe and then ramps for 10s.
func slowStartHarness(t *testing.T) *harness {
	return newHarness(t, Config{ConsecutiveFailures: 2, OpenFor: time.Second, HalfOpenProbes: 1,
		SlowStart: 10 * time.Second, Rand: golden()})
}

// closeByProbe trips the breaker and closes it with a successful probe.
func (h *harness) closeByProbe() {
	h.t.Helper()
	h.trip()
	h.clk.Advance(h.b.Config().OpenFor)
	if rej := h.call(nil, 0); rej != nil {
		h.t.Fatalf("probe rejected: %v", rej)
	}
	h.wantState(Closed)
}

// admitted makes n calls and returns the share admitted.
func (h *harness) admitted(n int) float64 {
	ok := 0
	for range n {
		if h.call(nil, 0) == nil {
			ok++
		}
	}
	return float64(ok) / float64(n)
}

// TestSlowStartRampsAfterAProbeCloses: the share of calls admitted follows
// the line from 10 % to 100 % over the window, then every call is admitted.
func TestSlowStartRampsAfterAProbeCloses(t *testing.T) {
	h := slowStartHarness(t)
	h.closeByProbe()
	closed := h.clk.Nanotime()
	for _, at := range []time.Duration{0, 2500 * time.Millisecond, 5 * time.Second, 7500 * time.Millisecond, 9 * time.Second} {
		h.clk.Set(time.Duration(closed) + at)
		want := SlowStartFloor + (1-SlowStartFloor)*at.Seconds()/10
		if s := h.b.Snapshot(); math.Abs(s.SlowStartShare-want) > 1e-9 || s.SlowStartLeft != 10*time.Second-at {
			t.Errorf("at %v: snapshot share %v left %v, want %v and %v", at, s.SlowStartShare, s.SlowStartLeft, want, 10*time.Second-at)
		}
		if got := h.admitted(1000); math.Abs(got-want) > 0.01 {
			t.Errorf("at %v: admitted %.3f of the calls, want %.3f", at, got, want)
		}
	}
	h.clk.Set(time.Duration(closed) + 10*time.Second)
	if got := h.admitted(100); got != 1 {
		t.Errorf("after the window: admitted %.2f of the calls, want all", got)
	}
	if s := h.b.Snapshot(); s.SlowStartShare != 0 || s.SlowStartLeft != 0 {
		t.Errorf("after the window: snapshot share %v left %v, want 0 0", s.SlowStartShare, s.SlowStartLeft)
	}
	if w := h.b.word.Load(); w&flagRamp != 0 {
		t.Error("the ramp flag outlived the window: the closed path stays slow")
	}
}

// TestSlowStartRejection: a call the ramp leaves out is a breaker_open
// rejection with ErrOpen and a RetryAfter of a tenth of the window, counted
// and reported like any other; it allocates nothing.
func TestSlowStartRejection(t *testing.T) {
	h := slowStartHarness(t)
	h.closeByProbe()
	before := h.log.count(spillway.EventRejection)
	var err error
	for err == nil {
		err = h.call(nil, 0)
	}
	e, ok := errors.AsType[*spillway.Error](err)
	if !ok || e.Code != spillway.ReasonBreakerOpen || !errors.Is(err, ErrOpen) || e.RetryAfter != time.Second {
		t.Fatalf("ramp rejection = %#v, want breaker_open, ErrOpen, RetryAfter 1s", err)
	}
	if h.log.count(spillway.EventRejection) != before+1 || h.b.Snapshot().Rejected == 0 {
		t.Error("the ramp rejection was not counted and reported")
	}
	h.b.core.Load().rand = func() float64 { return 0.99 } // refuse every call
	if n := testing.AllocsPerRun(100, func() { _, _ = h.b.Acquire(ctx) }); n != 0 {
		t.Errorf("a ramp rejection allocates %v times", n)
	}
}

// TestSlowStartOnlyAfterAProbe: a manual close does not ramp, nor does a
// breaker without SlowStart.
func TestSlowStartOnlyAfterAProbe(t *testing.T) {
	h := slowStartHarness(t)
	h.trip()
	h.b.Reset()
	if got := h.admitted(100); got != 1 {
		t.Errorf("after Reset: admitted %.2f, want all", got)
	}
	h.trip()
	if err := h.b.TransitionTo(Closed); err != nil {
		t.Fatal(err)
	}
	if got := h.admitted(100); got != 1 {
		t.Errorf("after TransitionTo(Closed): admitted %.2f, want all", got)
	}
	h = newHarness(t, Config{ConsecutiveFailures: 2, OpenFor: time.Second, HalfOpenProbes: 1, Rand: golden()})
	h.closeByProbe()
	if got := h.admitted(100); got != 1 {
		t.Errorf("without SlowStart: admitted %.2f, want all", got)
	}
}

// TestSlowStartSurvivesUpdate: Update and Reconfigure keep a ramp going,
// a new SlowStart reshapes it, and 0 ends it at the next call.
func TestSlowStartSurvivesUpdate(t *testing.T) {
	h := slowStartHarness(t)
	h.closeByProbe()
	h.clk.Advance(5 * time.Second)
	if err := h.b.Update(func(c *Config) { c.FailureRate = 0.3 }); err != nil {
		t.Fatal(err)
	}
	if s := h.b.Snapshot(); s.SlowStartLeft != 5*time.Second {
		t.Fatalf("after Update: %v left of the slow start, want 5s", s.SlowStartLeft)
	}
	if err := h.b.Update(func(c *Config) { c.SlowStart = 20 * time.Second }); err != nil {
		t.Fatal(err)
	}
	if s := h.b.Snapshot(); s.SlowStartLeft != 15*time.Second {
		t.Fatalf("after SlowStart 20s: %v left, want 15s", s.SlowStartLeft)
	}
	if err := h.b.Update(func(c *Config) { c.SlowStart = 0 }); err != nil {
		t.Fatal(err)
	}
	if got := h.admitted(100); got != 1 {
		t.Errorf("after SlowStart 0: admitted %.2f, want all", got)
	}
	if _, err := New(Config{SlowStart: -time.Second}); err == nil {
		t.Error("New(SlowStart -1s): no error")
	}
}

// TestSlowStartEndsWhenTheBreakerTrips: a ramp that fails opens the
// breaker as any closed one does, and the next close ramps from the floor.
func TestSlowStartEndsWhenTheBreakerTrips(t *testing.T) {
	h := slowStartHarness(t)
	h.closeByProbe()
	h.clk.Advance(5 * time.Second)
	for h.b.State() == Closed {
		_ = h.call(errDown, 0)
	}
	h.wantState(Open)
	if s := h.b.Snapshot(); s.SlowStartShare != 0 {
		t.Errorf("open: slow start share %v, want 0", s.SlowStartShare)
	}
	h.clk.Advance(10 * time.Second) // the reopening lasts 2s ± 10 %
	if rej := h.call(nil, 0); rej != nil {
		t.Fatalf("probe rejected: %v", rej)
	}
	if s := h.b.Snapshot(); s.SlowStartShare != SlowStartFloor {
		t.Errorf("closed again: share %v, want the floor", s.SlowStartShare)
	}
}
