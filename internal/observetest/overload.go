package observetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/throttle"
)

// Overload is a pipeline "catalog" with every overload policy — a rate
// limiter, a throttle and an adaptive bulkhead as its guards, a hedging
// policy — whose only wiring to the metrics is Policies.Observer: the
// pipeline attaches it to its policies. The throttle has it as its
// Config.Observer too, and must report each refusal once all the same.
type Overload struct {
	Clock  *spillway.ManualClock
	refuse atomic.Bool // the throttle refuses whenever its probability is above 0
	RL     *ratelimit.Limiter
	TH     *throttle.Throttler
	BH     *bulkhead.Bulkhead
	HP     *hedge.Policy
	PL     *spillway.Pipeline[string]

	// gate, while hedged's call runs, is closed once its primary is in fn:
	// the hedge waits for it (see hedgeGate).
	gate atomic.Pointer[chan struct{}]
}

// NewOverload builds the policies and the pipeline, which reports to obs.
func NewOverload(t testing.TB, obs spillway.Observer) *Overload {
	t.Helper()
	o := &Overload{Clock: spillway.NewManualClock(time.Second)}
	o.RL = ratelimit.MustNew(ratelimit.Config{Name: "catalog", Limit: 10, Burst: 5, Clock: o.Clock})
	o.TH = throttle.MustNew(throttle.Config{Name: "catalog", Clock: o.Clock, Observer: obs, Rand: func() float64 {
		if o.refuse.Load() {
			return 0
		}
		return 0.999 // above MaxRejectionRate: never refused
	}})
	o.BH = bulkhead.MustNew(bulkhead.Config{Name: "catalog", MaxConcurrent: 10, Adaptive: bulkhead.Adaptive{
		Algorithm: bulkhead.AIMD, InitialLimit: 10, MinSamples: 1, Window: time.Millisecond, Clock: o.Clock}})
	o.HP = hedge.MustNew(hedge.Config{Name: "catalog", Delay: time.Millisecond, Observer: o.hedgeGate(), Clock: o.Clock})
	var err error
	// The rate limiter and the throttle come before the bulkhead, so that
	// their refusals never reach it.
	o.PL, err = spillway.NewPipeline(spillway.Policies[string]{Guards: []spillway.Guard{o.RL, o.TH, o.BH},
		Hedge: o.HP, Observer: obs, Name: "catalog"})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Run drives the policies to known values: a dropped call (100ms, a
// timeout) that takes the adaptive limit from 10 to 9 and gives the
// throttle a failure, a call the throttle refuses, four
// accepted calls that empty the rate limiter, one it refuses, then one
// hedged call whose hedge wins.
func (o *Overload) Run(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	ok := func(context.Context) (string, error) { return "ok", nil }
	_, err := o.PL.Execute(ctx, func(context.Context) (string, error) {
		o.Clock.Advance(100 * time.Millisecond) // one token back, past the bulkhead's window
		return "", context.DeadlineExceeded
	})
	if spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded {
		t.Fatalf("dropped call: %v", err)
	}
	o.refuse.Store(true)
	if _, err := o.PL.Execute(ctx, ok); !errors.Is(err, throttle.ErrThrottled) {
		t.Fatalf("throttled call: %v", err)
	}
	o.refuse.Store(false)
	for i := range 4 {
		if _, err := o.PL.Execute(ctx, ok); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if _, err := o.PL.Execute(ctx, ok); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("rate-limited call: %v", err)
	}
	if got := o.BH.Limit(); got != 9 {
		t.Fatalf("adaptive limit %d, want 9", got)
	}
	o.hedged(t)
}

// hedgeGate returns the hedging policy's own Observer, which holds an
// EventHedge of hedged's call until the primary is in fn: the policy
// reports it on the hedge's goroutine before the hedge runs, to its own
// Observer first, then to the pipeline's. The delay
// is a real 1ms timer: on a loaded machine it fires before the primary
// has passed the guards, the hedge reaches fn first and hangs, and the
// primary wins — and ExecuteHedged returns before the cancelled hedge
// releases its bulkhead permit (the hedges still running finish on their
// own goroutines, see spillway.Hedge). Held at the gate, the hedge is always
// the second attempt in fn, the one that answers.
func (o *Overload) hedgeGate() spillway.Observer {
	return spillway.ObserverFunc(func(e spillway.Event) {
		if g := o.gate.Load(); g != nil && e.Kind == spillway.EventHedge {
			<-*g
		}
	})
}

// hedged makes one hedged call whose primary hangs until its hedge wins,
// with two tokens in the rate limiter: one for each attempt. The hedge,
// held by hedgeGate, enters fn after the primary.
func (o *Overload) hedged(t testing.TB) {
	t.Helper()
	o.Clock.Advance(200 * time.Millisecond) // two tokens: the primary's and the hedge's
	in := make(chan struct{})
	var once sync.Once
	primaryIn := func() { once.Do(func() { close(in) }) }
	o.gate.Store(&in)
	// A primary refused before fn must not leave the hedge at the gate.
	defer func() { o.gate.Store(nil); primaryIn() }()
	var calls atomic.Int32
	r := o.PL.ExecuteHedged(context.Background(), func(ctx context.Context) (string, error) {
		if calls.Add(1) == 1 {
			primaryIn()
			<-ctx.Done()
			return "", ctx.Err()
		}
		return "hedge", nil
	})
	if r.Err != nil || r.Value != "hedge" {
		t.Fatalf("hedged call: %q, %v", r.Value, r.Err)
	}
}
