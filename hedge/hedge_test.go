package hedge_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/hedge"
)

// slow returns v after d, or the context's error when it ends first.
func slow(ctx context.Context, d time.Duration, v string) (string, error) {
	select {
	case <-time.After(d):
		return v, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func TestSlowPrimaryIsHedgedAndCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []spillway.Event
		var mu sync.Mutex
		obs := spillway.ObserverFunc(func(e spillway.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
		p := hedge.MustNew(hedge.Config{Delay: 50 * time.Millisecond, Observer: obs, Name: "h"})
		var calls atomic.Int32
		var primaryErr error
		start := time.Now()
		v, err := hedge.Do(t.Context(), p, func(ctx context.Context) (string, error) {
			if calls.Add(1) == 1 {
				v, err := slow(ctx, time.Second, "primary")
				primaryErr = err
				return v, err
			}
			return slow(ctx, 10*time.Millisecond, "hedge")
		})
		if v != "hedge" || err != nil {
			t.Fatalf("Do = %q, %v; want the hedge's answer", v, err)
		}
		if got := time.Since(start); got != 60*time.Millisecond {
			t.Errorf("the call took %s, want 60ms (the delay and the hedge)", got)
		}
		if !errors.Is(primaryErr, context.Canceled) {
			t.Errorf("the primary ended with %v, want it cancelled", primaryErr)
		}
		if p.Sent() != 1 || p.Won() != 1 {
			t.Errorf("Sent, Won = %d, %d; want 1, 1", p.Sent(), p.Won())
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(events) != 2 || events[0].Kind != spillway.EventHedge || events[0].Attempt != 1 || events[0].Delay != 50*time.Millisecond ||
			events[1].Kind != spillway.EventHedgeWon || events[1].Duration != 60*time.Millisecond || events[1].Policy != "hedge" {
			t.Errorf("events = %+v, want one EventHedge and one EventHedgeWon", events)
		}
	})
}

func TestFastPrimarySendsNoHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.MustNew(hedge.Config{Delay: 50 * time.Millisecond})
		var calls atomic.Int32
		for range 10 {
			v, err := hedge.Do(t.Context(), p, func(ctx context.Context) (string, error) {
				calls.Add(1)
				return slow(ctx, 49*time.Millisecond, "primary")
			})
			if v != "primary" || err != nil {
				t.Fatalf("Do = %q, %v", v, err)
			}
		}
		time.Sleep(time.Second) // no timer left to send a hedge late
		if calls.Load() != 10 || p.Sent() != 0 {
			t.Errorf("calls %d, hedges sent %d; want 10 calls and no hedge", calls.Load(), p.Sent())
		}
	})
}

func TestMaxBoundsTheHedgesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond, Max: 2})
		var inFlight, most atomic.Int32
		start := time.Now()
		v, err := hedge.Do(t.Context(), p, func(ctx context.Context) (string, error) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			return slow(ctx, time.Second, "answer")
		})
		if v != "answer" || err != nil {
			t.Fatalf("Do = %q, %v", v, err)
		}
		if got := time.Since(start); got != time.Second {
			t.Errorf("took %s, want the primary's 1s", got)
		}
		synctest.Wait()
		if most.Load() != 3 || p.Sent() != 2 || p.Won() != 0 {
			t.Errorf("at most %d in flight, %d hedges sent, %d won; want 3, 2, 0", most.Load(), p.Sent(), p.Won())
		}
	})
}

// refusing is a budget that allows a number of retries.
type refusing struct {
	left     atomic.Int32
	requests atomic.Int32
}

func (b *refusing) Request()       { b.requests.Add(1) }
func (b *refusing) TryRetry() bool { return b.left.Add(-1) >= 0 }

func TestABudgetThatRefusesStopsHedging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &refusing{}
		b.left.Store(1)
		p := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond, Budget: b, RecordRequests: true})
		var calls atomic.Int32
		for range 3 {
			if _, err := hedge.Do(t.Context(), p, func(ctx context.Context) (string, error) {
				calls.Add(1)
				return slow(ctx, 20*time.Millisecond, "x")
			}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if p.Sent() != 1 || p.Refused() != 2 || calls.Load() != 4 || b.requests.Load() != 3 {
			t.Errorf("sent %d, refused %d, calls %d, requests %d; want 1, 2, 4, 3", p.Sent(), p.Refused(), calls.Load(), b.requests.Load())
		}
	})
}

func TestTheDelayIsLearnedFromTheQuantile(t *testing.T) {
	clock := spillway.NewManualClock(time.Hour)
	p := hedge.MustNew(hedge.Config{Clock: clock, InitialDelay: 7 * time.Millisecond})
	if d, ok := p.Delay(); !ok || d != 7*time.Millisecond {
		t.Fatalf("Delay = %s, %v before any sample; want the initial 7ms", d, ok)
	}
	// 1ms, 2ms, ... 160ms: the 95th percentile is 152ms.
	for i := range 160 {
		d := time.Duration(i+1) * time.Millisecond
		p.Record(context.Background(), clock.Nanotime()-int64(d), 0)
	}
	d, ok := p.Delay()
	if !ok || d < 152*time.Millisecond || d > 152*time.Millisecond*9/8 {
		t.Fatalf("Delay = %s, %v; want within 12.5%% above 152ms", d, ok)
	}
	// Past the window, the old latencies are forgotten: 20ms calls only.
	clock.Advance(hedge.DefaultWindow + time.Second)
	for range 64 {
		p.Record(context.Background(), clock.Nanotime()-int64(20*time.Millisecond), 0)
	}
	if d, _ := p.Delay(); d < 20*time.Millisecond || d > 20*time.Millisecond*9/8 {
		t.Fatalf("Delay = %s after the window moved on; want about 20ms", d)
	}
}

func TestNoHedgeUntilLearnedWithoutAnInitialDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.MustNew(hedge.Config{})
		if _, ok := p.Delay(); ok {
			t.Fatal("a delay before any sample")
		}
		v, err := hedge.Do(t.Context(), p, func(ctx context.Context) (string, error) { return slow(ctx, time.Minute, "slow") })
		if v != "slow" || err != nil || p.Sent() != 0 {
			t.Fatalf("Do = %q, %v, %d hedges; want the primary's answer and no hedge", v, err, p.Sent())
		}
	})
}

func TestWhenEveryAttemptFailsThePrimarysErrorIsReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond})
		errPrimary, errHedge := errors.New("primary"), errors.New("hedge")
		var calls atomic.Int32
		_, err := hedge.Do(t.Context(), p, func(ctx context.Context) (string, error) {
			if calls.Add(1) == 1 {
				time.Sleep(20 * time.Millisecond)
				return "", errPrimary
			}
			time.Sleep(30 * time.Millisecond)
			return "", errHedge
		})
		if err != errPrimary {
			t.Fatalf("Do = %v, want the primary's error", err)
		}
	})
}

func TestAHedgeInFlightWinsAfterThePrimaryFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond})
		var calls atomic.Int32
		var discarded []string
		var mu sync.Mutex
		v, err := hedge.DoDiscard(t.Context(), p, func(ctx context.Context) (string, error) {
			if calls.Add(1) == 1 {
				time.Sleep(20 * time.Millisecond)
				return "failed primary", errors.New("primary")
			}
			return slow(ctx, 30*time.Millisecond, "hedge")
		}, func(s string) { mu.Lock(); discarded = append(discarded, s); mu.Unlock() })
		if v != "hedge" || err != nil {
			t.Fatalf("Do = %q, %v; want the hedge's answer", v, err)
		}
		if len(discarded) != 1 || discarded[0] != "failed primary" {
			t.Errorf("discarded %q, want the primary's result", discarded)
		}
	})
}

func TestTheLosersResultIsDiscarded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond})
		var calls atomic.Int32
		discarded := make(chan string, 2)
		// The hedge answers first; the primary ignores its cancellation and
		// answers too: its answer is discarded.
		v, err := hedge.DoDiscard(t.Context(), p, func(ctx context.Context) (string, error) {
			if calls.Add(1) == 1 {
				time.Sleep(50 * time.Millisecond)
				return "primary", nil
			}
			return "hedge", nil
		}, func(s string) { discarded <- s })
		if v != "hedge" || err != nil {
			t.Fatalf("Do = %q, %v", v, err)
		}
		if got := <-discarded; got != "primary" {
			t.Errorf("discarded %q, want the primary's answer", got)
		}
		// A hedge that loses to the primary discards its own answer.
		calls.Store(0)
		v, _ = hedge.DoDiscard(t.Context(), p, func(ctx context.Context) (string, error) {
			if calls.Add(1) == 1 {
				time.Sleep(15 * time.Millisecond)
				return "primary", nil
			}
			time.Sleep(time.Second) // ignores the cancellation
			return "late hedge", nil
		}, func(s string) { discarded <- s })
		if v != "primary" {
			t.Fatalf("Do = %q, want the primary's answer", v)
		}
		if got := <-discarded; got != "late hedge" {
			t.Errorf("discarded %q, want the late hedge's answer", got)
		}
	})
}

func TestAHedgesPanicIsRaisedOnTheCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond})
		var calls atomic.Int32
		var primaryErr error
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the hedge's panic", r)
			}
			if !errors.Is(primaryErr, context.Canceled) {
				t.Errorf("the primary ended with %v, want it cancelled", primaryErr)
			}
		}()
		hedge.Do(t.Context(), p, func(ctx context.Context) (string, error) {
			if calls.Add(1) == 1 {
				var v string
				v, primaryErr = slow(ctx, time.Second, "primary")
				return v, primaryErr
			}
			panic("boom")
		})
		t.Error("Do returned")
	})
}

func TestAPrimaryPanicCancelsTheHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond})
		var calls atomic.Int32
		hedgeErr := make(chan error, 1)
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("recovered %v, want the primary's panic", r)
				}
			}()
			hedge.Do(t.Context(), p, func(ctx context.Context) (string, error) {
				if calls.Add(1) == 1 {
					time.Sleep(20 * time.Millisecond)
					panic("boom")
				}
				_, err := slow(ctx, time.Second, "hedge")
				hedgeErr <- err
				return "", err
			})
		}()
		if err := <-hedgeErr; !errors.Is(err, context.Canceled) {
			t.Errorf("the hedge ended with %v, want it cancelled", err)
		}
	})
}

// TestAnUnhedgedCallStartsNoGoroutine: a primary that answers before the
// delay runs on the caller's goroutine alone, and allocates one object (its
// race, which is its context): the delay's timer is reused, and the
// context is made cancellable only when asked for its Done channel. Main
// allocated 6 (448 B).
func TestAnUnhedgedCallStartsNoGoroutine(t *testing.T) {
	p := hedge.MustNew(hedge.Config{Delay: time.Hour})
	before := runtime.NumGoroutine()
	during := 0
	fn := func(context.Context) (int, error) { during = runtime.NumGoroutine(); return 1, nil }
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := hedge.Do(context.Background(), p, fn); err != nil {
			t.Fatal(err)
		}
	})
	if during > before {
		t.Errorf("%d goroutines during the call, %d before", during, before)
	}
	if !raceEnabled && allocs != 1 {
		t.Errorf("an unhedged call allocates %v objects, want 1", allocs)
	}
}

// TestAnUnhedgedPipelineCallAllocatesThree: ExecuteHedged's unhedged call
// allocates the race, the closure that makes its attempts on the engine and
// the primary's HedgeCaller view; main allocated 8.
func TestAnUnhedgedPipelineCallAllocatesThree(t *testing.T) {
	pl := spillway.MustNewPipeline(spillway.Policies[int]{Hedge: hedge.MustNew(hedge.Config{Delay: time.Hour})})
	fn := func(context.Context) (int, error) { return 1, nil }
	allocs := testing.AllocsPerRun(100, func() {
		if r := pl.ExecuteHedged(context.Background(), fn); r.Err != nil {
			t.Fatal(r.Err)
		}
	})
	if !raceEnabled && allocs != 3 {
		t.Errorf("an unhedged pipeline call allocates %v objects, want 3", allocs)
	}
}

// TestPooledTimersStayOutOfBubbles: the delay timers reused across calls
// are never a synctest bubble's (the runtime aborts a program that stops a
// bubble's timer from outside it), and a call in a bubble never takes an
// outside one (it would not fire on the bubble's clock).
func TestPooledTimersStayOutOfBubbles(t *testing.T) {
	fast := func(context.Context) (string, error) { return "primary", nil }
	outside := hedge.MustNew(hedge.Config{Delay: time.Hour})
	for range 10 {
		_, _ = hedge.Do(context.Background(), outside, fast)
	}
	synctest.Test(t, func(t *testing.T) {
		p := hedge.MustNew(hedge.Config{Delay: 50 * time.Millisecond})
		for range 10 {
			_, _ = hedge.Do(t.Context(), p, fast)
		}
		var calls atomic.Int32
		start := time.Now()
		v, _ := hedge.Do(t.Context(), p, func(ctx context.Context) (string, error) {
			if calls.Add(1) == 1 {
				return slow(ctx, time.Hour, "primary")
			}
			return "hedge", nil
		})
		if v != "hedge" || time.Since(start) != 50*time.Millisecond {
			t.Errorf("in a bubble: %q after %s, want the hedge after 50ms", v, time.Since(start))
		}
	})
	for range 10 {
		_, _ = hedge.Do(context.Background(), outside, fast)
	}
}

// TestAReusedTimerFiresForItsOwnCall: outside a bubble, a delay timer
// stopped by one call and reused by the next fires for the call that reused
// it (under -race: the race it fires for is published before the timer
// restarts).
func TestAReusedTimerFiresForItsOwnCall(t *testing.T) {
	fast := hedge.MustNew(hedge.Config{Delay: time.Hour})
	hedged := hedge.MustNew(hedge.Config{Delay: time.Millisecond})
	for i := range 20 {
		_, _ = hedge.Do(context.Background(), fast, func(context.Context) (int, error) { return 0, nil })
		var calls atomic.Int32
		v, err := hedge.Do(context.Background(), hedged, func(ctx context.Context) (int, error) {
			if calls.Add(1) == 1 {
				<-ctx.Done()
				return 0, ctx.Err()
			}
			return i, nil
		})
		if v != i || err != nil {
			t.Fatalf("call %d: Do = %d, %v; want the hedge's %d", i, v, err, i)
		}
	}
	if hedged.Won() != 20 {
		t.Errorf("Won = %d, want 20", hedged.Won())
	}
}

// TestThePrimarysContextWithoutDoneStillEnds: a primary that never asks for
// its context's Done channel still sees it end, with the cause
// ErrHedgeLost when a hedge won and context.Canceled once the call
// returned, keeps its parent's values, and a context derived from it ends
// with it.
func TestThePrimarysContextWithoutDoneStillEnds(t *testing.T) {
	type key struct{}
	synctest.Test(t, func(t *testing.T) {
		p := hedge.MustNew(hedge.Config{Delay: 50 * time.Millisecond})
		parent := context.WithValue(t.Context(), key{}, "v")
		var calls atomic.Int32
		var lost error
		v, _ := hedge.Do(parent, p, func(ctx context.Context) (string, error) {
			if calls.Add(1) > 1 {
				return "hedge", nil
			}
			for ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			lost = context.Cause(ctx)
			return "", ctx.Err()
		})
		if v != "hedge" || lost != spillway.ErrHedgeLost {
			t.Errorf("Do = %q, the primary's cause %v; want the hedge, ErrHedgeLost", v, lost)
		}
		var kept context.Context
		_, _ = hedge.Do(parent, p, func(ctx context.Context) (string, error) { kept = ctx; return "", nil })
		if kept.Err() != context.Canceled || context.Cause(kept) != context.Canceled || kept.Value(key{}) != "v" {
			t.Errorf("after the call: Err %v, Cause %v, Value %v; want Canceled, Canceled, v", kept.Err(), context.Cause(kept), kept.Value(key{}))
		}
		select {
		case <-kept.Done():
		default:
			t.Error("after the call, Done is not closed")
		}
		var child context.Context
		var childCancel context.CancelFunc
		_, _ = hedge.Do(parent, p, func(ctx context.Context) (string, error) {
			child, childCancel = context.WithCancel(ctx)
			return "", nil
		})
		defer childCancel()
		if child.Err() != context.Canceled {
			t.Errorf("a context derived from the primary's: Err %v after the call, want Canceled", child.Err())
		}
	})
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []hedge.Config{{Delay: -1}, {InitialDelay: -1}, {Quantile: 1}, {Quantile: -0.1}, {Max: -1},
		{MinSamples: -1}, {Window: -1}, {RecordRequests: true}} {
		if _, err := hedge.New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	p := hedge.MustNew(hedge.Config{})
	if c := p.Config(); c.Quantile != 0.95 || c.Max != 1 || c.Window != 30*time.Second || c.MinSamples != 20 || p.PolicyKind() != "hedge" {
		t.Errorf("defaults = %+v", c)
	}
}
