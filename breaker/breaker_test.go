package breaker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

func TestStateNamesAreTheGatewayContract(t *testing.T) {
	want := map[State]string{
		Closed: "closed", Open: "open", HalfOpen: "half_open",
		ForcedOpen: "forced_open", Disabled: "disabled", MetricsOnly: "metrics_only",
	}
	for s, name := range want {
		if got := s.String(); got != name {
			t.Errorf("%d.String() = %q, want %q", s, got, name)
		}
		text, err := s.MarshalText()
		if err != nil || string(text) != name {
			t.Errorf("%v.MarshalText() = %q, %v", s, text, err)
		}
		var back State
		if err := back.UnmarshalText([]byte(name)); err != nil || back != s {
			t.Errorf("UnmarshalText(%q) = %v, %v", name, back, err)
		}
	}
	if _, err := State(42).MarshalText(); err == nil {
		t.Error("MarshalText of an unknown state: no error")
	}
	var s State
	if err := s.UnmarshalText([]byte("ajar")); err == nil {
		t.Error("UnmarshalText(ajar): no error")
	}
}

// The closed state: when the window's rates open the breaker.
func TestClosedTrips(t *testing.T) {
	const slow = 2 * time.Second
	tests := []struct {
		name    string
		cfg     Config
		pattern string
		tripAt  int // index of the call after which it opens; -1 never
	}{
		{"failures below MinCalls never trip", Config{MinCalls: 10}, "FFFFFFFFF", -1},
		{"the MinCalls-th failure trips at 100 %", Config{MinCalls: 10}, "FFFFFFFFFF", 9},
		{"the rate is judged at >=: 50 % trips", Config{MinCalls: 10}, "SSSSSFFFFF", 9},
		{"49 % does not trip", Config{MinCalls: 100, WindowSize: 100}, repeat("S", 51) + repeat("F", 49), -1},
		{"a success that brings the window to MinCalls trips", Config{MinCalls: 10}, "FFFFFFSSSS", 9},
		{"a success at MinCalls under the rate does not", Config{MinCalls: 10}, "FFFFSSSSSS", -1},
		{"a full window judges its last WindowSize calls", Config{WindowSize: 10, MinCalls: 10},
			"FFFFSSSSSS" + "SSSSS" + "FFFF" + "F", 19},
		{"old failures leave a full window", Config{WindowSize: 4, MinCalls: 4, FailureRate: 0.75}, "FFSS" + "SSFF" + "SF", 9},
		{"FailureRate 1 needs every call failed", Config{WindowSize: 4, MinCalls: 4, FailureRate: 1}, "FFFS" + "FFF" + "F", 7},
		{"ignored calls are not recorded", Config{MinCalls: 4}, "IIFIIFIIS" + "F", 9},
		{"slow-call rate trips", Config{MinCalls: 4, SlowCallDuration: time.Second, SlowCallRate: 0.5}, "LSSL", 3},
		{"slow failures count as both", Config{MinCalls: 4, FailureRate: 1, SlowCallDuration: time.Second, SlowCallRate: 0.5}, "XSSX", 3},
		{"slow calls are not judged when detection is off", Config{MinCalls: 4}, "LLLLLLLL", -1},
		{"default SlowCallRate needs every call slow", Config{WindowSize: 4, MinCalls: 4, SlowCallDuration: time.Second}, "LLLS" + "LLL" + "L", 7},
		{"consecutive failures trip below MinCalls", Config{ConsecutiveFailures: 3}, "FFSFFSF" + "FF", 8},
		{"ignored calls do not break a run", Config{ConsecutiveFailures: 3}, "FIFIF", 4},
		{"time window: same rules", Config{Window: TimeWindow, MinCalls: 10}, "SSSSSFFFFF", 9},
		{"time window: slow calls", Config{Window: TimeWindow, MinCalls: 4, SlowCallDuration: time.Second, SlowCallRate: 0.5}, "LSSL", 3},
		{"time window: consecutive", Config{Window: TimeWindow, ConsecutiveFailures: 2}, "FSFF", 3},
		{"time window: a success reaching MinCalls trips", Config{Window: TimeWindow, MinCalls: 10}, "FFFFFFSSSS", 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			if got := h.run(tt.pattern, slow); got != tt.tripAt {
				t.Fatalf("opened after call %d of %q, want %d (snapshot %+v)", got, tt.pattern, tt.tripAt, h.b.Snapshot())
			}
			if tt.tripAt >= 0 {
				if got := h.log.transitions(); !reflect.DeepEqual(got, []string{"closed→open"}) {
					t.Errorf("transitions %v, want [closed→open]", got)
				}
			}
		})
	}
}

func TestSnapshotCountsTheWindow(t *testing.T) {
	h := newHarness(t, Config{WindowSize: 10, MinCalls: 100, SlowCallDuration: time.Second, ConsecutiveFailures: 50})
	h.run("SFLXIFF", 2*time.Second)
	s := h.b.Snapshot()
	want := Snapshot{State: Closed, Calls: 6, Failures: 4, Slow: 2, FailureRate: 4.0 / 6, SlowCallRate: 2.0 / 6,
		ConsecutiveFailures: 3, Generation: 1}
	if s != want {
		t.Fatalf("snapshot\n got %+v\nwant %+v", s, want)
	}
}

func TestOpenRejectsWithPreallocatedError(t *testing.T) {
	h := newHarness(t, Config{Name: "catalog", ConsecutiveFailures: 1, OpenFor: 10 * time.Second})
	h.trip()
	err := h.call(nil, 0)
	var e *spillway.Error
	if !errors.As(err, &e) {
		t.Fatalf("rejection %T %v is not a *spillway.Error", err, err)
	}
	if !errors.Is(err, ErrOpen) || e.Code != spillway.ReasonBreakerOpen || e.Policy != "breaker" ||
		e.Name != "catalog" || e.RetryAfter != 10*time.Second {
		t.Fatalf("rejection %+v", e)
	}
	if !spillway.IsRejection(err) || spillway.ReasonOf(err) != spillway.ReasonBreakerOpen {
		t.Fatal("not a rejection to the root package")
	}
	if got := h.call(nil, 0); got != err {
		t.Error("the rejection is not the same preallocated error")
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := h.b.Acquire(ctx); err == nil {
			t.Fatal("admitted")
		}
	})
	if allocs != 0 {
		t.Errorf("open fail-fast allocates %v times", allocs)
	}
	s := h.b.Snapshot()
	// Two calls, and AllocsPerRun's 100 runs after a warm-up one.
	if s.Rejected != 103 || s.RetryAfter != 10*time.Second {
		t.Errorf("snapshot %+v: want 103 rejected, 10s left", s)
	}
	if n := h.log.count(spillway.EventRejection); n != 103 {
		t.Errorf("%d rejection events, want 103", n)
	}
}

func TestClosedPathAllocatesNothing(t *testing.T) {
	for _, cfg := range []Config{{}, {Window: TimeWindow}, {SlowCallDuration: time.Second, ConsecutiveFailures: 1 << 20}} {
		cfg.FailureRate = 1
		h := newHarness(t, cfg)
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			i++
			var err error
			if i%3 == 0 {
				err = errDown
			}
			_ = h.b.Execute(ctx, func(context.Context) error { return err })
		})
		if allocs != 0 {
			t.Errorf("%v window: %v allocations per call", cfg.Window, allocs)
		}
	}
}

// Open turns half-open by time alone: State reports it, Acquire performs it.
func TestOpenTurnsHalfOpenByTime(t *testing.T) {
	h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: 30 * time.Second})
	h.trip()
	gen := h.b.Snapshot().Generation
	h.clk.Advance(30*time.Second - 1)
	h.wantState(Open)
	if s := h.b.Snapshot(); s.RetryAfter != 1 {
		t.Errorf("RetryAfter %v, want 1ns", s.RetryAfter)
	}
	h.clk.Advance(1)
	h.wantState(HalfOpen)
	s := h.b.Snapshot()
	if s.State != HalfOpen || s.Generation != gen || s.RetryAfter != 0 {
		t.Errorf("snapshot %+v: want half-open, generation %d still, no RetryAfter", s, gen)
	}
	if got := h.log.transitions(); len(got) != 1 {
		t.Fatalf("transitions before Acquire: %v", got)
	}
	p, err := h.b.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release(nil)
	if s := h.b.Snapshot(); s.Generation != gen+1 || s.ProbesInFlight != 1 {
		t.Errorf("after Acquire: %+v", s)
	}
	if got := h.log.transitions(); !reflect.DeepEqual(got, []string{"closed→open", "open→half_open"}) {
		t.Errorf("transitions %v", got)
	}
}

func TestHalfOpenProbes(t *testing.T) {
	h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: time.Second, HalfOpenProbes: 3})
	h.trip()
	h.clk.Advance(time.Second)
	var probes []spillway.Permit
	for range 3 {
		p, err := h.b.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		probes = append(probes, p)
	}
	_, err := h.b.Acquire(ctx)
	var e *spillway.Error
	if !errors.As(err, &e) || !errors.Is(err, ErrOpen) || e.RetryAfter != 0 {
		t.Fatalf("fourth probe: %v, want a rejection without RetryAfter", err)
	}
	if s := h.b.Snapshot(); s.ProbesInFlight != 3 || s.State != HalfOpen {
		t.Fatalf("snapshot %+v", s)
	}
	// An ignored probe frees its place without counting as a success.
	probes[0].Release(spillway.CallerDone(context.DeadlineExceeded))
	p, err := h.b.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	probes[0] = p
	for _, p := range probes[:2] {
		p.Release(nil)
	}
	h.wantState(HalfOpen)
	probes[2].Release(nil)
	h.wantState(Closed)
	if s := h.b.Snapshot(); s.Calls != 0 || s.ProbesInFlight != 0 {
		t.Errorf("closed with %+v: want an empty window", s)
	}
	if got := h.log.transitions(); !reflect.DeepEqual(got, []string{"closed→open", "open→half_open", "half_open→closed"}) {
		t.Errorf("transitions %v", got)
	}
}

// The open duration grows on each failed probe, capped and jittered, and
// is back to OpenFor once the breaker closes.
func TestOpenDurationBackoff(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		cfg  Config
		rand float64
		want []time.Duration // open durations: the trip, then each failed probe
	}{
		{"doubles up to the cap", Config{OpenFor: s, MaxOpenFor: 5 * s, OpenJitter: -1}, 0, []time.Duration{s, 2 * s, 4 * s, 5 * s, 5 * s}},
		{"OpenBackoff 1 is fixed", Config{OpenFor: s, OpenBackoff: 1, OpenJitter: -1}, 0, []time.Duration{s, s, s}},
		{"backoff 3", Config{OpenFor: s, OpenBackoff: 3, MaxOpenFor: 20 * s, OpenJitter: -1}, 0, []time.Duration{s, 3 * s, 9 * s, 20 * s}},
		{"jitter low end, never on the first", Config{OpenFor: s, MaxOpenFor: 100 * s, OpenJitter: 0.1}, 0, []time.Duration{s, 1800 * time.Millisecond, 3600 * time.Millisecond}},
		{"jitter middle", Config{OpenFor: s, MaxOpenFor: 100 * s}, 0.5, []time.Duration{s, 2 * s, 4 * s}},
		{"jitter high end, never past the cap", Config{OpenFor: s, MaxOpenFor: 3 * s, OpenJitter: 0.5}, 0.9, []time.Duration{s, 2800 * time.Millisecond, 3 * s}},
		{"defaults: 30s, x2, 5m", Config{OpenJitter: -1}, 0, []time.Duration{30 * s, 60 * s, 120 * s, 240 * s, 300 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ConsecutiveFailures = 1
			tt.cfg.HalfOpenProbes = 1
			tt.cfg.Rand = func() float64 { return tt.rand }
			h := newHarness(t, tt.cfg)
			h.trip()
			var got []time.Duration
			for i := range tt.want {
				d := h.b.Snapshot().RetryAfter
				got = append(got, d)
				if e := h.call(nil, 0).(*spillway.Error); e.RetryAfter != d {
					t.Errorf("opening %d: rejection's RetryAfter %v, Snapshot's %v", i, e.RetryAfter, d)
				}
				h.clk.Advance(d)
				if i < len(tt.want)-1 {
					if err := h.call(errDown, 0); err != nil {
						t.Fatalf("probe rejected: %v", err)
					}
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("open durations %v, want %v", got, tt.want)
			}
			// A successful probe closes it; the next trip lasts OpenFor again.
			if err := h.call(nil, 0); err != nil {
				t.Fatal(err)
			}
			h.wantState(Closed)
			h.trip()
			if d := h.b.Snapshot().RetryAfter; d != tt.want[0] {
				t.Errorf("after closing, the open duration is %v, want %v", d, tt.want[0])
			}
		})
	}
}

// Durations near the largest time.Duration grow to it, never past it into
// a negative deadline that would half-open the breaker at once.
func TestLongestOpenDurationsDoNotOverflow(t *testing.T) {
	h := newHarness(t, Config{ConsecutiveFailures: 1, HalfOpenProbes: 1, OpenFor: math.MaxInt64 / 4, MaxOpenFor: math.MaxInt64,
		Rand: func() float64 { return 0.99 }})
	h.trip()
	grown := float64(math.MaxInt64/2) * 1.098 // ×2, then +9.8 % of jitter
	want := []time.Duration{time.Duration(grown), math.MaxInt64, math.MaxInt64}
	for i, w := range want {
		h.b.TransitionTo(HalfOpen)
		if err := h.call(errDown, 0); err != nil { // the probe fails
			t.Fatal(err)
		}
		h.wantState(Open)
		if e := h.call(nil, 0).(*spillway.Error); e.RetryAfter != w {
			t.Fatalf("reopening %d lasts %v, want %v", i, e.RetryAfter, w)
		}
	}
}

// With the default random source, grown durations spread over ±OpenJitter
// and never pass MaxOpenFor.
func TestOpenJitterStaysInBounds(t *testing.T) {
	tests := []struct {
		name     string
		max      time.Duration
		low, top time.Duration
	}{
		{"uncapped", 10 * time.Second, 800 * time.Millisecond, 1200 * time.Millisecond},
		{"capped at MaxOpenFor", time.Second, 800 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{ConsecutiveFailures: 1, HalfOpenProbes: 1, OpenFor: time.Second, MaxOpenFor: tt.max, OpenBackoff: 1, OpenJitter: 0.2})
			h.trip()
			below, above := 0, 0
			for range 200 {
				h.clk.Advance(h.b.Snapshot().RetryAfter)
				if err := h.call(errDown, 0); err != nil {
					t.Fatal(err)
				}
				d := h.b.Snapshot().RetryAfter
				if d < tt.low || d > tt.top {
					t.Fatalf("jittered open duration %v outside [%v, %v]", d, tt.low, tt.top)
				}
				if d < 900*time.Millisecond {
					below++
				}
				if d > 1100*time.Millisecond {
					above++
				}
			}
			if below == 0 || (tt.top > time.Second && above == 0) {
				t.Errorf("200 durations do not spread: %d under 0.9s, %d over 1.1s", below, above)
			}
		})
	}
}

func TestStaleGenerationIsDropped(t *testing.T) {
	t.Run("closed permit after Reset", func(t *testing.T) {
		h := newHarness(t, Config{})
		p, _ := h.b.Acquire(ctx)
		h.b.Reset()
		p.Release(errDown)
		if s := h.b.Snapshot(); s.Calls != 0 {
			t.Fatalf("a permit of the old generation was recorded: %+v", s)
		}
	})
	t.Run("closed permit after a trip", func(t *testing.T) {
		h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: time.Second, HalfOpenProbes: 1})
		p, _ := h.b.Acquire(ctx)
		h.trip()
		h.clk.Advance(time.Second)
		h.wantState(HalfOpen)
		p.Release(nil) // must not count as the probe that closes it
		h.wantState(HalfOpen)
	})
	t.Run("probe of an earlier half-open", func(t *testing.T) {
		h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: time.Second, HalfOpenProbes: 2, OpenBackoff: 1, OpenJitter: -1})
		h.trip()
		h.clk.Advance(time.Second)
		old, _ := h.b.Acquire(ctx)
		if err := h.call(errDown, 0); err != nil { // the other probe fails: open again
			t.Fatal(err)
		}
		h.clk.Advance(time.Second)
		p, err := h.b.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		old.Release(nil)
		if s := h.b.Snapshot(); s.ProbesInFlight != 1 {
			t.Fatalf("the stale probe changed the bookkeeping: %+v", s)
		}
		old.Release(nil) // and a second release changes nothing either
		p.Release(nil)
		h.wantState(HalfOpen)
	})
	t.Run("the zero permit", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.b.ReleasePermit(spillway.Permit{}, errDown)
		if s := h.b.Snapshot(); s.Calls != 0 {
			t.Fatalf("the zero permit was recorded: %+v", s)
		}
	})
}

// A probe that is not released within ProbeTimeout counts as failed, so a
// leaked permit cannot keep the breaker half-open.
func TestProbeTimeout(t *testing.T) {
	for _, observe := range []struct {
		name string
		fn   func(b *Breaker) State
	}{
		{"State", (*Breaker).State},
		{"Snapshot", func(b *Breaker) State { return b.Snapshot().State }},
		{"Acquire", func(b *Breaker) State {
			if _, err := b.Acquire(ctx); err == nil {
				panic("admitted")
			}
			return b.State()
		}},
	} {
		t.Run("noticed by "+observe.name, func(t *testing.T) {
			h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: time.Second, HalfOpenProbes: 1, ProbeTimeout: 5 * time.Second, OpenBackoff: 1, OpenJitter: -1})
			h.trip()
			h.clk.Advance(time.Second)
			leaked, err := h.b.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h.clk.Advance(5*time.Second - 1)
			if got := observe.fn(h.b); got != HalfOpen {
				t.Fatalf("before the timeout: %v", got)
			}
			h.clk.Advance(1)
			if got := observe.fn(h.b); got != Open {
				t.Fatalf("at the timeout: %v, want open", got)
			}
			want := []string{"closed→open", "open→half_open", "half_open→open"}
			if got := h.log.transitions(); !reflect.DeepEqual(got, want) {
				t.Fatalf("transitions %v, want %v", got, want)
			}
			// Not wedged: the next half-open admits a probe, which closes it.
			h.clk.Advance(time.Second)
			if err := h.call(nil, 0); err != nil {
				t.Fatal(err)
			}
			h.wantState(Closed)
			leaked.Release(nil) // long after: dropped
			if s := h.b.Snapshot(); s.Calls != 0 || s.ProbesInFlight != 0 {
				t.Fatalf("the leaked permit was recorded: %+v", s)
			}
		})
	}
	t.Run("a probe that succeeds too late failed", func(t *testing.T) {
		h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: time.Second, HalfOpenProbes: 1, ProbeTimeout: time.Second})
		h.trip()
		h.clk.Advance(time.Second)
		if err := h.call(nil, time.Second); err != nil {
			t.Fatal(err)
		}
		h.wantState(Open)
	})
	t.Run("a slow probe failed", func(t *testing.T) {
		h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: time.Second, HalfOpenProbes: 1, SlowCallDuration: 100 * time.Millisecond})
		h.trip()
		h.clk.Advance(time.Second)
		if err := h.call(nil, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		h.wantState(Open)
	})
}

func TestDefaultClassify(t *testing.T) {
	rejection := func(r spillway.Reason) error { return &spillway.Error{Code: r, Policy: "bulkhead", Err: errDown} }
	tests := []struct {
		name string
		err  error
		want spillway.Outcome
	}{
		{"nil is a success", nil, spillway.Success},
		{"a downstream error is a failure", errDown, spillway.Failure},
		{"a wrapped downstream error is a failure", fmt.Errorf("get: %w", errDown), spillway.Failure},
		{"the caller's cancellation is ignored", context.Canceled, spillway.Ignored},
		{"a wrapped cancellation is ignored", fmt.Errorf("get: %w", context.Canceled), spillway.Ignored},
		{"a joined cancellation is ignored", errors.Join(errDown, context.Canceled), spillway.Ignored},
		{"a deadline that is not the caller's is a failure", context.DeadlineExceeded, spillway.Failure},
		{"the caller's deadline is ignored", spillway.CallerDone(context.DeadlineExceeded), spillway.Ignored},
		{"the caller's end is ignored", spillway.ErrCallerDone, spillway.Ignored},
		{"a timeout policy's deadline is a failure", &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "timeout", Cause: context.DeadlineExceeded}, spillway.Failure},
		{"a full bulkhead is ignored", rejection(spillway.ReasonBulkheadFull), spillway.Ignored},
		{"another breaker's rejection is ignored", fmt.Errorf("x: %w", rejection(spillway.ReasonBreakerOpen)), spillway.Ignored},
		{"an exhausted budget is ignored", rejection(spillway.ReasonBudgetExhausted), spillway.Ignored},
		{"an upstream error made by a policy is a failure", rejection(spillway.ReasonUpstreamError), spillway.Failure},
		{"a panic is a failure", &spillway.PanicError{Value: "boom"}, spillway.Failure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultClassify(tt.err); got != tt.want {
				t.Fatalf("DefaultClassify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestCustomClassify(t *testing.T) {
	errNotFound := errors.New("not found")
	h := newHarness(t, Config{MinCalls: 2, Classify: func(err error) spillway.Outcome {
		if errors.Is(err, errNotFound) {
			return spillway.Ignored
		}
		if err.Error() == "weird" {
			return spillway.Outcome(99) // unknown outcomes count as failures
		}
		return DefaultClassify(err)
	}})
	_ = h.call(errNotFound, 0)
	_ = h.call(errNotFound, 0)
	if s := h.b.Snapshot(); s.Calls != 0 {
		t.Fatalf("ignored outcomes recorded: %+v", s)
	}
	_ = h.call(errors.New("weird"), 0)
	_ = h.call(nil, 0)
	h.wantState(Open)
}

// The caller's own end is never counted against the downstream, whatever
// Classify says; a deadline of the downstream's own is.
func TestCallerDoneIsIgnored(t *testing.T) {
	expired, cancel := context.WithDeadline(ctx, time.Unix(0, 0))
	defer cancel()
	returnCtxErr := func(ctx context.Context) error { return ctx.Err() }
	for _, classify := range []func(error) spillway.Outcome{nil, func(error) spillway.Outcome { return spillway.Failure }} {
		h := newHarness(t, Config{MinCalls: 100, Classify: classify})
		if err := h.b.Execute(expired, returnCtxErr); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Execute returned %v, want the caller's deadline", err)
		}
		if _, err := Do(expired, h.b, func(ctx context.Context) (int, error) { return 0, ctx.Err() }); err != context.DeadlineExceeded {
			t.Fatalf("Do returned %v, want the caller's deadline as it is", err)
		}
		h.b.ReleasePermit(mustAcquire(t, h.b), spillway.CallerDone(errDown))
		if s := h.b.Snapshot(); s.Calls != 0 {
			t.Fatalf("the caller's end was recorded: %+v", s)
		}
		_ = h.b.Execute(ctx, func(context.Context) error { return context.DeadlineExceeded })
		if s := h.b.Snapshot(); s.Failures != 1 {
			t.Fatalf("a downstream's own deadline was not a failure: %+v", s)
		}
	}
}

func mustAcquire(t *testing.T, b *Breaker) spillway.Permit {
	t.Helper()
	p, err := b.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecuteReleasesOnPanic(t *testing.T) {
	h := newHarness(t, Config{MinCalls: 100})
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the panic to go on", r)
			}
		}()
		_ = h.b.Execute(ctx, func(context.Context) error { panic("boom") })
	}()
	if s := h.b.Snapshot(); s.Calls != 1 || s.Failures != 1 {
		t.Fatalf("panic recorded as %+v, want one failure", s)
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = Do(ctx, h.b, func(context.Context) (int, error) { panic("boom") })
	}()
	if s := h.b.Snapshot(); s.Failures != 2 {
		t.Fatalf("Do's panic not recorded: %+v", s)
	}

	t.Run("a panicking probe reopens and frees its place", func(t *testing.T) {
		h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: time.Second})
		h.trip()
		h.clk.Advance(time.Second)
		func() {
			defer func() { _ = recover() }()
			_ = h.b.Execute(ctx, func(context.Context) error { panic("boom") })
		}()
		if s := h.b.Snapshot(); s.State != Open || s.ProbesInFlight != 0 {
			t.Fatalf("snapshot %+v", s)
		}
	})
	t.Run("runtime.Goexit releases too", func(t *testing.T) {
		h := newHarness(t, Config{MinCalls: 100})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = h.b.Execute(ctx, func(context.Context) error { runtime.Goexit(); return nil })
		}()
		<-done
		if s := h.b.Snapshot(); s.Failures != 1 {
			t.Fatalf("Goexit not recorded as a failure: %+v", s)
		}
	})
}

func TestExecuteAndDo(t *testing.T) {
	h := newHarness(t, Config{ConsecutiveFailures: 2})
	if err := h.b.Execute(ctx, func(context.Context) error { return errDown }); err != errDown {
		t.Fatalf("Execute returned %v", err)
	}
	v, err := Do(ctx, h.b, func(context.Context) (string, error) { return "ok", nil })
	if v != "ok" || err != nil {
		t.Fatalf("Do = %q, %v", v, err)
	}
	_ = h.b.Execute(ctx, func(context.Context) error { return errDown })
	_ = h.b.Execute(ctx, func(context.Context) error { return errDown })
	called := false
	v, err = Do(ctx, h.b, func(context.Context) (string, error) { called = true; return "no", nil })
	if called || v != "" || !errors.Is(err, ErrOpen) {
		t.Fatalf("open breaker: called=%v, Do = %q, %v", called, v, err)
	}
	if err := h.b.Execute(ctx, func(context.Context) error { called = true; return nil }); called || !errors.Is(err, ErrOpen) {
		t.Fatalf("open breaker: called=%v, Execute = %v", called, err)
	}
}

func TestManualStates(t *testing.T) {
	t.Run("Disabled admits all, records nothing", func(t *testing.T) {
		h := newHarness(t, Config{ConsecutiveFailures: 1})
		h.b.Disable()
		for range 10 {
			if err := h.call(errDown, 0); err != nil {
				t.Fatal(err)
			}
		}
		if s := h.b.Snapshot(); s.State != Disabled || s.Calls != 0 || s.ConsecutiveFailures != 0 {
			t.Fatalf("snapshot %+v", s)
		}
	})
	t.Run("ForcedOpen rejects all, forever", func(t *testing.T) {
		h := newHarness(t, Config{Name: "x"})
		h.b.ForceOpen()
		h.clk.Advance(24 * time.Hour)
		err := h.call(nil, 0)
		var e *spillway.Error
		if !errors.As(err, &e) || !errors.Is(err, ErrOpen) || e.RetryAfter != 0 || e.Name != "x" {
			t.Fatalf("forced-open rejection %v", err)
		}
		h.wantState(ForcedOpen)
		if s := h.b.Snapshot(); s.Rejected != 1 || s.RetryAfter != 0 {
			t.Fatalf("snapshot %+v", s)
		}
		allocs := testing.AllocsPerRun(100, func() { _, _ = h.b.Acquire(ctx) })
		if allocs != 0 {
			t.Errorf("forced-open rejection allocates %v", allocs)
		}
	})
	t.Run("MetricsOnly records, never rejects, counts what it would reject", func(t *testing.T) {
		h := newHarness(t, Config{MinCalls: 4, OpenFor: 10 * time.Second, HalfOpenProbes: 1})
		h.b.MetricsOnly()
		for range 4 {
			if err := h.call(errDown, 0); err != nil {
				t.Fatal(err)
			}
		}
		h.wantState(MetricsOnly)
		// It would be open now: ten seconds of admitted calls it would have rejected.
		for range 5 {
			if err := h.call(errDown, time.Second); err != nil {
				t.Fatal(err)
			}
		}
		s := h.b.Snapshot()
		if s.WouldReject != 5 || s.Calls != 0 || s.Rejected != 0 {
			t.Fatalf("snapshot %+v: want 5 would-rejects, nothing recorded", s)
		}
		h.clk.Advance(5 * time.Second)
		_ = h.call(nil, 0)
		if s := h.b.Snapshot(); s.WouldReject != 5 || s.Calls != 1 {
			t.Fatalf("after the virtual opening: %+v", s)
		}
		if got := h.log.transitions(); !reflect.DeepEqual(got, []string{"closed→metrics_only"}) {
			t.Errorf("transitions %v", got)
		}
	})
	t.Run("Closed and MetricsOnly share the window", func(t *testing.T) {
		h := newHarness(t, Config{MinCalls: 100})
		h.run("FFS", 0)
		h.b.MetricsOnly()
		h.run("", 0)
		_ = h.call(errDown, 0)
		h.b.TransitionTo(Closed)
		if s := h.b.Snapshot(); s.Calls != 4 || s.Failures != 3 {
			t.Fatalf("window lost across metrics-only: %+v", s)
		}
	})
}

func TestTransitionTo(t *testing.T) {
	setups := map[State]func(h *harness){
		Closed: func(*harness) {},
		Open:   func(h *harness) { h.trip() },
		HalfOpen: func(h *harness) {
			h.trip()
			h.clk.Advance(time.Second)
			_ = h.call(context.Canceled, 0) // performs open→half_open
		},
		ForcedOpen:  func(h *harness) { h.b.ForceOpen() },
		Disabled:    func(h *harness) { h.b.Disable() },
		MetricsOnly: func(h *harness) { h.b.MetricsOnly() },
	}
	for from := range State(numStates) {
		for to := range State(numStates) {
			t.Run(fmt.Sprintf("%v→%v", from, to), func(t *testing.T) {
				h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: time.Second, MinCalls: 100})
				setups[from](h)
				h.wantState(from)
				before := len(h.log.transitions())
				if err := h.b.TransitionTo(to); err != nil {
					t.Fatal(err)
				}
				h.wantState(to)
				got := h.log.transitions()[before:]
				want := []string{from.String() + "→" + to.String()}
				if from == to {
					want = got[:0]
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("transitions %v, want %v", got, want)
				}
				if to == Open {
					if d := h.b.Snapshot().RetryAfter; d != time.Second {
						t.Errorf("manual open lasts %v, want OpenFor", d)
					}
				}
			})
		}
	}
	h := newHarness(t, Config{})
	if err := h.b.TransitionTo(State(9)); err == nil || !strings.Contains(err.Error(), "unknown state") {
		t.Fatalf("TransitionTo(9) = %v", err)
	}
}

// A manual transition from an open breaker whose time is up starts from
// half-open, as State reports it.
func TestTransitionFromLazilyHalfOpen(t *testing.T) {
	h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: time.Second})
	h.trip()
	h.clk.Advance(2 * time.Second)
	h.wantState(HalfOpen)
	h.b.TransitionTo(Open)
	h.wantState(Open)
	if d := h.b.Snapshot().RetryAfter; d != time.Second {
		t.Errorf("reopened for %v, want OpenFor", d)
	}
	want := []string{"closed→open", "open→half_open", "half_open→open"}
	if got := h.log.transitions(); !reflect.DeepEqual(got, want) {
		t.Errorf("transitions %v, want %v", got, want)
	}
}

func TestResetStartsANewWindow(t *testing.T) {
	h := newHarness(t, Config{MinCalls: 4, OpenBackoff: 1})
	h.run("FFS", 0)
	gen := h.b.Snapshot().Generation
	h.b.Reset()
	s := h.b.Snapshot()
	if s.Calls != 0 || s.State != Closed || s.Generation != gen+1 {
		t.Fatalf("after Reset: %+v", s)
	}
	if got := h.log.transitions(); len(got) != 0 {
		t.Fatalf("Reset from closed reported %v", got)
	}
	h.b.ForceOpen()
	h.b.Reset()
	h.wantState(Closed)
}

// An observer that calls back into the breaker must not deadlock: events
// are reported outside the lock (eventLog checks it on every event).
func TestObserverMayCallBack(t *testing.T) {
	var b *Breaker
	var states []State
	clk := spillway.NewManualClock(0)
	b = MustNew(Config{ConsecutiveFailures: 1, OpenFor: time.Second, HalfOpenProbes: 1, ProbeTimeout: time.Second, Clock: clk,
		Observer: spillway.ObserverFunc(func(e spillway.Event) {
			states = append(states, b.State())
			_ = b.Snapshot()
		})})
	_ = b.Execute(ctx, func(context.Context) error { return errDown }) // closed→open
	_ = b.Execute(ctx, func(context.Context) error { return nil })     // rejection
	clk.Advance(time.Second)
	p, _ := b.Acquire(ctx) // open→half_open
	clk.Advance(time.Second)
	b.State() // probe timeout: half_open→open
	p.Release(nil)
	b.ForceOpen()
	b.Reset()
	want := []State{Open, Open, HalfOpen, Open, ForcedOpen, Closed}
	if !reflect.DeepEqual(states, want) {
		t.Fatalf("states seen by the observer %v, want %v", states, want)
	}
}

func TestChannelObserverNeverBlocks(t *testing.T) {
	obs := spillway.NewChannelObserver(1)
	b := MustNew(Config{ConsecutiveFailures: 1, Observer: obs})
	for range 10 {
		_ = b.Execute(ctx, func(context.Context) error { return errDown })
	}
	if len(obs.C) != 1 || obs.Dropped() != 9 {
		t.Fatalf("channel holds %d, dropped %d", len(obs.C), obs.Dropped())
	}
}

func TestTimeWindowExpires(t *testing.T) {
	h := newHarness(t, Config{Window: TimeWindow, WindowDuration: 10 * time.Second, Buckets: 10, MinCalls: 4, FailureRate: 0.5})
	h.clk.Set(0)
	h.run("FSS", 0) // bucket 0
	h.clk.Set(5 * time.Second)
	h.run("SSS", 0) // bucket 5: 1 failed of 6
	if s := h.b.Snapshot(); s.Calls != 6 || s.Failures != 1 {
		t.Fatalf("snapshot %+v", s)
	}
	h.clk.Set(10*time.Second - 1)
	if s := h.b.Snapshot(); s.Calls != 6 {
		t.Fatalf("bucket 0 expired early: %+v", s)
	}
	h.clk.Set(10 * time.Second)
	if s := h.b.Snapshot(); s.Calls != 3 || s.Failures != 0 {
		t.Fatalf("bucket 0 still counted at 10s: %+v", s)
	}
	h.clk.Set(14 * time.Second)
	h.run("F", 0) // 1 failed of 4
	h.clk.Set(15 * time.Second)
	// Bucket 5 expires: the window holds the one failed call, under MinCalls.
	if got := h.run("FFF", 0); got != 2 {
		t.Fatalf("opened after call %d, want when the window's 4th call failed", got)
	}
}

func TestTimeWindowExpiryRaisesTheRate(t *testing.T) {
	// Expired successes leave the failures alone in the window: the next
	// call, even a success, is judged.
	h := newHarness(t, Config{Window: TimeWindow, WindowDuration: 10 * time.Second, Buckets: 10, MinCalls: 4, FailureRate: 0.5})
	h.clk.Set(0)
	h.run(repeat("S", 20), 0)
	h.clk.Set(9 * time.Second)
	h.run("FFFF", 0) // 4 of 24
	h.clk.Set(10 * time.Second)
	if got := h.run("S", 0); got != 0 {
		t.Fatal("the call after the successes expired did not open the breaker (4 failed of 5)")
	}
}

// A panicking Observer does not stop the reports: the next transition's
// report delivers what was left.
func TestObserverPanicDoesNotStopReports(t *testing.T) {
	var seen []string
	panics := true
	b := MustNew(Config{Observer: spillway.ObserverFunc(func(e spillway.Event) {
		if e.Kind != spillway.EventTransition {
			return
		}
		seen = append(seen, e.From+"→"+e.To)
		if panics {
			panics = false
			panic("observer bug")
		}
	})})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the observer's panic was swallowed")
			}
		}()
		b.ForceOpen()
	}()
	b.Disable()
	b.Reset()
	want := []string{"closed→forced_open", "forced_open→disabled", "disabled→closed"}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("reported %v, want %v", seen, want)
	}
	if s := b.State(); s != Closed {
		t.Fatalf("state %v", s)
	}
}

// A call released with a clock reading from an earlier bucket (it raced a
// new bucket) still counts where it belongs, in the judged totals too; one
// from before the window is dropped.
func TestTimeWindowLateCall(t *testing.T) {
	h := newHarness(t, Config{Window: TimeWindow, WindowDuration: 10 * time.Second, Buckets: 10, MinCalls: 3, FailureRate: 1,
		SlowCallDuration: time.Second, SlowCallRate: 1})
	h.clk.Set(20 * time.Second)
	h.run("F", 0)
	h.clk.Set(15 * time.Second) // back in the window, in a bucket no call used
	h.run("X", time.Second)     // a slow failure recorded at 16s
	h.clk.Set(20 * time.Second)
	if s := h.b.Snapshot(); s.Calls != 2 || s.Failures != 2 || s.Slow != 1 {
		t.Fatalf("snapshot %+v: want the late call counted", s)
	}
	h.clk.Set(15 * time.Second)
	if got := h.run("F", 0); got != 0 {
		t.Fatal("the third failure, late too, did not open the breaker")
	}
	h2 := newHarness(t, Config{Window: TimeWindow, WindowDuration: 10 * time.Second, Buckets: 10})
	h2.clk.Set(20 * time.Second)
	h2.run("S", 0)
	h2.clk.Set(10 * time.Second) // before the window
	h2.run("F", 0)
	h2.clk.Set(20 * time.Second)
	if s := h2.b.Snapshot(); s.Calls != 1 || s.Failures != 0 {
		t.Fatalf("a call older than the window was counted: %+v", s)
	}
}
