package breaker

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

func TestZeroConfigMeansTheDefaults(t *testing.T) {
	got := MustNew(Config{}).Config()
	want := []struct {
		name     string
		got, def any
	}{
		{"Window", got.Window, CountWindow},
		{"WindowSize", got.WindowSize, 100},
		{"WindowDuration", got.WindowDuration, 10 * time.Second},
		{"Buckets", got.Buckets, 10},
		{"MinCalls", got.MinCalls, 20},
		{"FailureRate", got.FailureRate, 0.5},
		{"SlowCallDuration", got.SlowCallDuration, time.Duration(0)},
		{"SlowCallRate", got.SlowCallRate, 1.0},
		{"ConsecutiveFailures", got.ConsecutiveFailures, 0},
		{"OpenFor", got.OpenFor, 30 * time.Second},
		{"MaxOpenFor", got.MaxOpenFor, 5 * time.Minute},
		{"OpenBackoff", got.OpenBackoff, 2.0},
		{"OpenJitter", got.OpenJitter, 0.1},
		{"HalfOpenProbes", got.HalfOpenProbes, 5},
		{"ProbeTimeout", got.ProbeTimeout, 5 * time.Second},
		{"Clock", got.Clock, spillway.SystemClock},
	}
	for _, w := range want {
		if w.got != w.def {
			t.Errorf("%s = %v, want %v", w.name, w.got, w.def)
		}
	}
	if got.Classify != nil || got.Rand != nil {
		t.Error("Classify and Rand are not nil for their defaults")
	}
	if d := MustNew(Config{OpenFor: time.Hour}).Config().MaxOpenFor; d != time.Hour {
		t.Errorf("MaxOpenFor with OpenFor 1h defaults to %v, want 1h", d)
	}
}

func TestInvalidConfigNamesTheField(t *testing.T) {
	tests := []struct {
		field string
		cfg   Config
	}{
		{"Window", Config{Window: 7}},
		{"WindowSize", Config{WindowSize: -1}},
		{"WindowSize", Config{WindowSize: MaxWindowSize + 1}},
		{"WindowDuration", Config{WindowDuration: -time.Second}},
		{"WindowDuration", Config{WindowDuration: 5, Buckets: 10}},
		{"Buckets", Config{Buckets: -1}},
		{"Buckets", Config{Buckets: MaxBuckets + 1}},
		{"MinCalls", Config{MinCalls: -1}},
		{"FailureRate", Config{FailureRate: 1.5}},
		{"FailureRate", Config{FailureRate: -0.5}},
		{"FailureRate", Config{FailureRate: math.NaN()}},
		{"SlowCallDuration", Config{SlowCallDuration: -1}},
		{"SlowCallRate", Config{SlowCallRate: 50}},
		{"ConsecutiveFailures", Config{ConsecutiveFailures: -3}},
		{"OpenFor", Config{OpenFor: -time.Second}},
		{"MaxOpenFor", Config{OpenFor: time.Minute, MaxOpenFor: time.Second}},
		{"MaxOpenFor", Config{MaxOpenFor: -1}},
		{"OpenBackoff", Config{OpenBackoff: 0.5}},
		{"OpenBackoff", Config{OpenBackoff: -2}},
		{"OpenBackoff", Config{OpenBackoff: math.Inf(1)}},
		{"OpenBackoff", Config{OpenBackoff: math.NaN()}},
		{"OpenJitter", Config{OpenJitter: 1}},
		{"OpenJitter", Config{OpenJitter: math.NaN()}},
		{"OpenJitter", Config{OpenJitter: math.Inf(-1)}},
		{"HalfOpenProbes", Config{HalfOpenProbes: -1}},
		{"ProbeTimeout", Config{ProbeTimeout: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New(%+v) accepted", tt.cfg)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "breaker: "+tt.field+" ") {
				t.Fatalf("error %q does not start with the field %s", msg, tt.field)
			}
			b := MustNew(Config{})
			if err := b.Reconfigure(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Reconfigure: %v", err)
			}
			if b.Config().WindowSize != 100 {
				t.Fatal("a rejected Reconfigure changed the configuration")
			}
			defer func() {
				if recover() == nil {
					t.Fatal("MustNew did not panic")
				}
			}()
			MustNew(tt.cfg)
		})
	}
	if _, err := New(Config{FailureRate: 1.5}); err.Error() != "breaker: FailureRate must be in (0,1], got 1.5" {
		t.Errorf("message %q", err)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings, one per warning
	}{
		{"the defaults are fine", Config{}, nil},
		{"never opens", Config{WindowSize: 10, MinCalls: 20}, []string{"can never open"}},
		{"MinCalls 1 opens on the first error", Config{MinCalls: 1}, []string{"first failed call"}},
		{"a rate a single failure reaches", Config{MinCalls: 20, FailureRate: 0.05}, []string{"single failed call"}},
		{"ConsecutiveFailures 1", Config{ConsecutiveFailures: 1}, []string{"first failed call"}},
		{"a time window shorter than two probe timeouts", Config{Window: TimeWindow, WindowDuration: 8 * time.Second}, []string{"twice ProbeTimeout"}},
		{"buckets that do not divide the window", Config{Window: TimeWindow, WindowDuration: 10 * time.Second, Buckets: 3}, []string{"not a multiple"}},
		{"a slow-call rate without a duration", Config{SlowCallRate: 0.5}, []string{"slow-call detection is off"}},
		{"a backoff with nowhere to grow", Config{OpenFor: time.Minute, MaxOpenFor: time.Minute}, []string{"OpenBackoff has no effect"}},
		{"a fixed duration needs no room", Config{OpenFor: time.Minute, MaxOpenFor: time.Minute, OpenBackoff: 1}, nil},
		{"an invalid config has none", Config{FailureRate: 2}, nil},
		{"a count window ignores time settings", Config{WindowDuration: time.Second, Buckets: 3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.cfg.Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) || !strings.HasPrefix(got[i], "breaker: ") {
					t.Errorf("warning %q does not say %q", got[i], w)
				}
			}
		})
	}
}

func TestReconfigure(t *testing.T) {
	t.Run("a count window that shrinks keeps the newest calls", func(t *testing.T) {
		h := newHarness(t, Config{WindowSize: 10, MinCalls: 100})
		h.run("FFFFFSSSSS", 0)
		mustReconfigure(t, h.b, Config{WindowSize: 7, MinCalls: 100})
		wantCounts(t, h.b, 7, 2)
		mustReconfigure(t, h.b, Config{WindowSize: 5, MinCalls: 100})
		wantCounts(t, h.b, 5, 0)
	})
	t.Run("a count window that grows keeps every call", func(t *testing.T) {
		h := newHarness(t, Config{WindowSize: 4, MinCalls: 100})
		h.run("SSFFSFF", 0) // the window: FSFF
		mustReconfigure(t, h.b, Config{WindowSize: 8, MinCalls: 100})
		wantCounts(t, h.b, 4, 3)
		h.run("SSSSS", 0)
		wantCounts(t, h.b, 8, 2) // FFSFSSSS: the oldest F left
	})
	t.Run("changing the window type starts a new window", func(t *testing.T) {
		h := newHarness(t, Config{MinCalls: 100})
		h.run("FFS", 0)
		mustReconfigure(t, h.b, Config{Window: TimeWindow, MinCalls: 100})
		wantCounts(t, h.b, 0, 0)
		h.run("FS", 0)
		mustReconfigure(t, h.b, Config{MinCalls: 100})
		wantCounts(t, h.b, 0, 0)
	})
	t.Run("a time window keeps the buckets still inside it", func(t *testing.T) {
		h := newHarness(t, Config{Window: TimeWindow, WindowDuration: 10 * time.Second, Buckets: 10, MinCalls: 100})
		h.clk.Set(0)
		for i := range 10 {
			h.clk.Set(time.Duration(i) * time.Second)
			h.run("F"+repeat("S", i), 0) // second i: 1 failure, i successes
		}
		wantCounts(t, h.b, 55, 10)
		mustReconfigure(t, h.b, Config{Window: TimeWindow, WindowDuration: 20 * time.Second, Buckets: 20, MinCalls: 100})
		wantCounts(t, h.b, 55, 10)
		mustReconfigure(t, h.b, Config{Window: TimeWindow, WindowDuration: 4 * time.Second, Buckets: 4, MinCalls: 100})
		wantCounts(t, h.b, 7+8+9+10, 4) // seconds 6 to 9
		mustReconfigure(t, h.b, Config{Window: TimeWindow, WindowDuration: 4 * time.Second, Buckets: 2, MinCalls: 100})
		wantCounts(t, h.b, 7+8+9+10, 4) // two 2s buckets: 6-7 and 8-9
		h.run("F", 0)
		wantCounts(t, h.b, 35, 5)
		h.clk.Set(10 * time.Second) // the 6-7 bucket leaves
		h.run("S", 0)
		wantCounts(t, h.b, 9+10+1+1, 3)
	})
	t.Run("the state and the open deadline stay", func(t *testing.T) {
		h := newHarness(t, Config{ConsecutiveFailures: 1, OpenFor: 10 * time.Second})
		h.trip()
		h.clk.Advance(time.Second)
		gen := h.b.Snapshot().Generation
		mustReconfigure(t, h.b, Config{ConsecutiveFailures: 1, OpenFor: time.Minute, WindowSize: 50})
		s := h.b.Snapshot()
		if s.State != Open || s.RetryAfter != 9*time.Second || s.Generation != gen {
			t.Fatalf("after Reconfigure: %+v", s)
		}
	})
	t.Run("new thresholds judge from the next failure", func(t *testing.T) {
		h := newHarness(t, Config{MinCalls: 10, FailureRate: 0.5})
		h.run("FFFSSSSSSS", 0) // 30 %
		mustReconfigure(t, h.b, Config{MinCalls: 10, FailureRate: 0.3})
		h.wantState(Closed)
		if got := h.run("SF", 0); got != 1 {
			t.Fatalf("opened after call %d, want on the failure (4 of 12)", got)
		}
	})
	t.Run("calls in flight still count", func(t *testing.T) {
		h := newHarness(t, Config{MinCalls: 100})
		p, _ := h.b.Acquire(ctx)
		mustReconfigure(t, h.b, Config{MinCalls: 100, SlowCallDuration: time.Second})
		q, _ := h.b.Acquire(ctx)
		h.clk.Advance(2 * time.Second)
		p.Release(nil) // acquired before slow-call detection: not timed
		q.Release(nil)
		if s := h.b.Snapshot(); s.Calls != 2 || s.Slow != 1 {
			t.Fatalf("snapshot %+v: want two calls, one slow", s)
		}
		mustReconfigure(t, h.b, Config{MinCalls: 100})
		q, _ = h.b.Acquire(ctx)
		h.clk.Advance(2 * time.Second)
		q.Release(nil)
		if s := h.b.Snapshot(); s.Calls != 3 || s.Slow != 1 {
			t.Fatalf("snapshot %+v: slow-call detection still on", s)
		}
	})
	t.Run("a new name reaches the rejections", func(t *testing.T) {
		h := newHarness(t, Config{Name: "a", ConsecutiveFailures: 1})
		h.trip()
		mustReconfigure(t, h.b, Config{Name: "b", ConsecutiveFailures: 1})
		if e := h.call(nil, 0).(*spillway.Error); e.Name != "b" || e.RetryAfter != 30*time.Second {
			t.Fatalf("open rejection %+v", e)
		}
		h.b.ForceOpen()
		if e := h.call(nil, 0).(*spillway.Error); e.Name != "b" {
			t.Fatalf("forced rejection %+v", e)
		}
		if h.b.Name() != "b" {
			t.Fatalf("Name() = %q", h.b.Name())
		}
	})
	t.Run("the clock is kept", func(t *testing.T) {
		h := newHarness(t, Config{})
		mustReconfigure(t, h.b, Config{Clock: spillway.SystemClock})
		if h.b.Config().Clock != spillway.Clock(h.clk) {
			t.Fatal("Reconfigure replaced the clock")
		}
	})
	t.Run("its own Config changes nothing", func(t *testing.T) {
		h := newHarness(t, Config{WindowSize: 10, MinCalls: 100})
		h.run("FSF", 0)
		before := h.b.core.Load().count
		mustReconfigure(t, h.b, h.b.Config())
		if h.b.core.Load().count != before {
			t.Fatal("the window was replaced")
		}
		wantCounts(t, h.b, 3, 2)
	})
}

func mustReconfigure(t tb, b *Breaker, cfg Config) {
	t.Helper()
	if err := b.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
}

func wantCounts(t tb, b *Breaker, calls, failures int) {
	t.Helper()
	if s := b.Snapshot(); s.Calls != calls || s.Failures != failures {
		t.Fatalf("window holds %d calls, %d failed; want %d, %d", s.Calls, s.Failures, calls, failures)
	}
}
