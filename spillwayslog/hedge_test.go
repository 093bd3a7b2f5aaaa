package spillwayslog_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/spillwayslog"
)

// A real hedging policy's EventHedge and EventHedgeWon are logged at Debug
// with the call's attempt and delay or latency, each kind limited on its
// own key (a steady stream of hedges does not silence the wins), and the
// summaries name no reason: a hedge has none.
func TestHedgesAreLoggedAtDebugAndLimited(t *testing.T) {
	// In a bubble the 1ms delay runs on fake time: it fires only once the
	// primary is blocked in the call, so the primary is always the one that
	// hangs and the hedge always wins.
	synctest.Test(t, func(t *testing.T) {
		l, buf := newLogger(slog.LevelDebug)
		clock := spillway.NewManualClock(0)
		o := spillwayslog.New(l, spillwayslog.Options{MaxPerInterval: 2, Interval: time.Second, Clock: clock})
		p := hedge.MustNew(hedge.Config{Name: "catalog", Delay: time.Millisecond, Observer: o})
		for range 3 {
			var calls atomic.Int32
			_, err := hedge.Do(context.Background(), p, func(ctx context.Context) (string, error) {
				if calls.Add(1) == 1 {
					<-ctx.Done()
					return "", ctx.Err()
				}
				return "hedge", nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		o.Flush(context.Background())
		lines := buf.lines(t)
		for msg, want := range map[string]int{"hedge sent": 2, "hedge won": 2, "hedges suppressed": 1, "hedge wins suppressed": 1} {
			if n, _ := count(lines, msg); n != want {
				t.Errorf("%d %q lines, want %d", n, msg, want)
			}
		}
		for _, l := range lines {
			if l["level"] != "DEBUG" || l["policy"] != "hedge" || l["name"] != "catalog" {
				t.Errorf("line %v", l)
			}
			if _, ok := l["reason"]; ok {
				t.Errorf("a hedge line with a reason: %v", l)
			}
			switch l["msg"] {
			case "hedge sent":
				if l["attempt"] != 1.0 || l["delay"] != float64(time.Millisecond) {
					t.Errorf("hedge sent: %v", l)
				}
			case "hedge won":
				if l["attempt"] != 1.0 || l["duration"] == nil {
					t.Errorf("hedge won: %v", l)
				}
			}
		}
	})
}

// Hedges cost nothing at a disabled level.
func TestDisabledHedgeAllocatesNothing(t *testing.T) {
	l, _ := newLogger(slog.LevelInfo)
	o := spillwayslog.New(l, spillwayslog.Options{})
	for _, e := range []spillway.Event{
		{Kind: spillway.EventHedge, Context: context.Background(), Policy: "hedge", Name: "catalog", Attempt: 1},
		{Kind: spillway.EventHedgeWon, Context: context.Background(), Policy: "hedge", Name: "catalog", Attempt: 1},
	} {
		if n := testing.AllocsPerRun(100, func() { o.Observe(e) }); n != 0 {
			t.Errorf("%v: %v allocations at a disabled level", e.Kind, n)
		}
	}
}
