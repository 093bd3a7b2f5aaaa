package breaker

import (
	"strings"
	"testing"
	"time"
)

var configFields = []string{
	"Window", "WindowSize", "WindowDuration", "Buckets", "MinCalls", "FailureRate",
	"SlowCallDuration", "SlowCallRate", "ConsecutiveFailures", "OpenFor", "MaxOpenFor",
	"OpenBackoff", "OpenJitter", "HalfOpenProbes", "ProbeTimeout",
}

// FuzzConfig: New and Reconfigure never panic; they agree on what is
// valid; an invalid config's error names a field; a valid one round-trips
// through Config and runs a few calls.
func FuzzConfig(f *testing.F) {
	f.Add(uint8(0), 0, int64(0), 0, 0, 0.0, int64(0), 0.0, 0, int64(0), int64(0), 0.0, 0.0, 0, int64(0))
	f.Add(uint8(1), 100, int64(10*time.Second), 10, 20, 0.5, int64(time.Second), 1.0, 5, int64(30*time.Second), int64(5*time.Minute), 2.0, 0.1, 5, int64(5*time.Second))
	f.Add(uint8(0), 10, int64(0), 0, 20, 1.5, int64(-1), 0.0, -1, int64(time.Minute), int64(time.Second), 0.5, 1.0, -1, int64(-1))
	f.Add(uint8(1), -1, int64(5), 10, 1, 1e-9, int64(1), 1.0, 1, int64(1), int64(1), 1.0, -0.5, 1, int64(1))
	f.Add(uint8(7), MaxWindowSize+1, int64(-1), MaxBuckets+1, -1, -0.1, int64(0), 2.0, 0, int64(-1), int64(-1), -1.0, 0.99, 0, int64(0))
	f.Fuzz(func(t *testing.T, window uint8, size int, dur int64, buckets, minCalls int, rate float64, slowDur int64,
		slowRate float64, consec int, openFor, maxOpenFor int64, backoff, jitter float64, probes int, probeTimeout int64) {
		cfg := Config{
			Window: WindowType(window), WindowSize: size, WindowDuration: time.Duration(dur), Buckets: buckets,
			MinCalls: minCalls, FailureRate: rate, SlowCallDuration: time.Duration(slowDur), SlowCallRate: slowRate,
			ConsecutiveFailures: consec, OpenFor: time.Duration(openFor), MaxOpenFor: time.Duration(maxOpenFor),
			OpenBackoff: backoff, OpenJitter: jitter, HalfOpenProbes: probes, ProbeTimeout: time.Duration(probeTimeout),
		}
		_ = cfg.Warnings()
		b, err := New(cfg)
		rerr := MustNew(Config{}).Reconfigure(cfg)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("New says %v, Reconfigure says %v", err, rerr)
		}
		if err != nil {
			msg := err.Error()
			named := false
			for _, f := range configFields {
				named = named || strings.HasPrefix(msg, "breaker: "+f+" ")
			}
			if !named {
				t.Fatalf("error %q names no field", msg)
			}
			return
		}
		got := b.Config()
		if _, err := New(got); err != nil {
			t.Fatalf("the effective config %+v is invalid: %v", got, err)
		}
		if err := b.Reconfigure(got); err != nil {
			t.Fatalf("Reconfigure(Config()) = %v", err)
		}
		h := newHarness(t, cfg)
		for i := range 50 {
			var err error
			if i%2 == 0 {
				err = errDown
			}
			_ = h.call(err, time.Duration(i)*time.Millisecond)
			h.clk.Advance(time.Duration(i) * 100 * time.Millisecond)
		}
		if s := h.b.Snapshot(); s.Calls < 0 || (got.Window == CountWindow && s.Calls > got.WindowSize) {
			t.Fatalf("snapshot %+v", s)
		}
	})
}
