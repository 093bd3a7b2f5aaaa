package spillway_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

// These tests check that a pipeline's Observer receives every event of the
// policies in it, which have no Observer of their own (issue 11, item 1),
// each once.

// count returns how many events of kind k policy reported.
func (l *eventLog) count(k spillway.EventKind, policy string) int {
	n := 0
	for _, e := range l.of(k) {
		if e.Policy == policy {
			n++
		}
	}
	return n
}

// tripAfterTwo is a breaker that opens after two failures in a row.
func tripAfterTwo(name string, obs spillway.Observer) *breaker.Breaker {
	return breaker.MustNew(breaker.Config{Name: name, ConsecutiveFailures: 2, MinCalls: 1000, WindowSize: 1000,
		OpenFor: time.Hour, Observer: obs})
}

func TestPipelineObserverReceivesItsPoliciesEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &eventLog{}
		bh := bulkhead.MustNew(bulkhead.Config{Name: "bh", MaxConcurrent: 1})
		pl := spillway.MustNewPipeline(spillway.Policies[string]{
			Fallback: fallback.MustNew(fallback.Config{Name: "fb"}, fallback.Value("cache", "cached")),
			Retry:    retry.MustNew(retry.Config{Name: "r", MaxAttempts: 2, Initial: time.Millisecond, NoBudget: true}),
			Breaker:  tripAfterTwo("b", nil),
			Bulkhead: bh,
			Attempt:  timeout.MustNew(timeout.Config{Name: "attempt", Duration: time.Second}),
			Observer: log,
		})
		ctx := context.Background()

		// A call holds the bulkhead's only slot: the next one is refused.
		in, out := make(chan struct{}), make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = pl.Execute(ctx, func(context.Context) (string, error) { close(in); <-out; return "ok", nil })
		}()
		<-in
		if v, _ := pl.Execute(ctx, func(context.Context) (string, error) { return "ok", nil }); v != "cached" {
			t.Fatalf("refused call: %q, want the fallback's", v)
		}
		close(out)
		<-done
		// Two attempts time out: a retry, two timeouts, the breaker opens.
		if v, _ := pl.Execute(ctx, func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() }); v != "cached" {
			t.Fatalf("timed-out call: %q, want the fallback's", v)
		}
		// The open breaker refuses the next call.
		if v, _ := pl.Execute(ctx, func(context.Context) (string, error) { return "ok", nil }); v != "cached" {
			t.Fatalf("call to an open breaker: %q, want the fallback's", v)
		}

		for _, c := range []struct {
			kind   spillway.EventKind
			policy string
			want   int
		}{
			{spillway.EventRejection, "bulkhead", 1},
			{spillway.EventTimeout, "timeout", 2},
			{spillway.EventRetry, "retry", 1},
			{spillway.EventTransition, "breaker", 1},
			{spillway.EventRejection, "breaker", 1},
			{spillway.EventFallback, "fallback", 3},
			{spillway.EventAttempt, "pipeline", 3}, // the refused calls made no attempt
		} {
			if got := log.count(c.kind, c.policy); got != c.want {
				t.Errorf("%s events of the %s: %d, want %d", c.kind, c.policy, got, c.want)
			}
		}
		if got := log.transitions(); got != "closed->open" {
			t.Errorf("transitions %q, want closed->open", got)
		}
	})
}

// The same observer given as a policy's Config.Observer and as the
// pipeline's, or inside an Observers, or the same Observers value twice,
// gets each event once.
func TestObserverGivenTwiceGetsEachEventOnce(t *testing.T) {
	for _, c := range []struct {
		name string
		// wiring returns the breaker's and the pipeline's observers, made
		// of log and fn.
		wiring   func(log *eventLog, fn spillway.ObserverFunc) (own, pipeline spillway.Observer)
		wantFunc int32 // calls of fn
	}{
		{"same pointer", func(log *eventLog, _ spillway.ObserverFunc) (spillway.Observer, spillway.Observer) {
			return log, log
		}, 0},
		{"inside an Observers", func(log *eventLog, _ spillway.ObserverFunc) (spillway.Observer, spillway.Observer) {
			return log, spillway.Observers{log}
		}, 0},
		{"the same Observers", func(log *eventLog, fn spillway.ObserverFunc) (spillway.Observer, spillway.Observer) {
			both := spillway.Observers{log, fn}
			return both, both
		}, 4}, // 2 attempts, the transition and the rejection
	} {
		t.Run(c.name, func(t *testing.T) {
			log := &eventLog{}
			var funcCalls atomic.Int32
			own, pipeline := c.wiring(log, func(spillway.Event) { funcCalls.Add(1) })
			pl := spillway.MustNewPipeline(spillway.Policies[string]{Breaker: tripAfterTwo("b", own), Observer: pipeline})
			fail := func(context.Context) (string, error) { return "", errors.New("boom") }
			for range 3 {
				_, _ = pl.Execute(context.Background(), fail)
			}
			if got := log.count(spillway.EventTransition, "breaker"); got != 1 {
				t.Errorf("transition seen %d times, want once", got)
			}
			if got := log.count(spillway.EventRejection, "breaker"); got != 1 {
				t.Errorf("rejection seen %d times, want once", got)
			}
			if got := funcCalls.Load(); got != c.wantFunc {
				t.Errorf("ObserverFunc called %d times, want %d", got, c.wantFunc)
			}
		})
	}
}

// A breaker shared by two pipelines reports its events to both pipelines'
// observers: they are the breaker's events.
func TestSharedBreakerReportsToBothPipelines(t *testing.T) {
	br := tripAfterTwo("shared", nil)
	logA, logB := &eventLog{}, &eventLog{}
	a := spillway.MustNewPipeline(spillway.Policies[string]{Breaker: br, Observer: logA, Name: "a"})
	_ = spillway.MustNewPipeline(spillway.Policies[string]{Breaker: br, Observer: logB, Name: "b"})
	fail := func(context.Context) (string, error) { return "", errors.New("boom") }
	for range 2 {
		_, _ = a.Execute(context.Background(), fail)
	}
	for name, log := range map[string]*eventLog{"a": logA, "b": logB} {
		if got := log.transitions(); got != "closed->open" {
			t.Errorf("pipeline %s's observer saw transitions %q, want closed->open", name, got)
		}
	}
}

// Compose attaches its Observer to its layers as NewPipeline does.
func TestComposeObserverReceivesItsLayersEvents(t *testing.T) {
	log := &eventLog{}
	pl := spillway.MustCompose(spillway.Composition[string]{
		Layers:   []any{retry.MustNew(retry.Config{Name: "r", MaxAttempts: 2, Initial: time.Nanosecond, NoBudget: true}), tripAfterTwo("b", nil)},
		Observer: log,
	})
	_, _ = pl.Execute(context.Background(), func(context.Context) (string, error) { return "", errors.New("boom") })
	if got := log.count(spillway.EventRetry, "retry"); got != 1 {
		t.Errorf("%d retry events, want 1", got)
	}
	if got := log.transitions(); got != "closed->open" {
		t.Errorf("transitions %q, want closed->open", got)
	}
}

func TestObserverSet(t *testing.T) {
	var s spillway.ObserverSet
	if s.Load() != nil {
		t.Fatal("the zero ObserverSet has observers")
	}
	s.SetOwn(nil)
	s.Attach(nil)
	if s.Load() != nil {
		t.Fatal("nil observers were kept")
	}
	own, attached := &eventLog{}, &eventLog{}
	var funcCalls atomic.Int32
	fn := spillway.ObserverFunc(func(spillway.Event) { funcCalls.Add(1) })
	s.SetOwn(own)
	s.Attach(attached)
	s.Attach(attached)
	s.Attach(fn)
	s.Attach(fn) // an ObserverFunc cannot be compared: it is another observer
	s.Attach(own)
	s.Load().Observe(spillway.Event{Kind: spillway.EventRetry})
	if len(own.events) != 1 || len(attached.events) != 1 || funcCalls.Load() != 2 {
		t.Fatalf("own got %d events, attached %d, fn %d; want 1, 1, 2", len(own.events), len(attached.events), funcCalls.Load())
	}
	// A new configuration's observer replaces the old one's; the attached
	// ones stay, own included.
	next := &eventLog{}
	s.SetOwn(next)
	s.Load().Observe(spillway.Event{Kind: spillway.EventRetry})
	if len(next.events) != 1 || len(own.events) != 2 || len(attached.events) != 2 {
		t.Fatalf("after SetOwn: next %d events, own %d, attached %d; want 1, 2, 2", len(next.events), len(own.events), len(attached.events))
	}
}

// wrapper is a comparable type whose values may hold an incomparable
// observer: comparing two of those with == would panic.
type wrapper struct{ inner spillway.Observer }

func (w wrapper) Observe(e spillway.Event) { w.inner.Observe(e) }

func TestObserverSetNeverComparesTheIncomparable(t *testing.T) {
	var calls atomic.Int32
	fn := spillway.ObserverFunc(func(spillway.Event) { calls.Add(1) })
	log := &eventLog{}
	var s spillway.ObserverSet
	s.SetOwn(wrapper{fn})
	s.Attach(wrapper{fn}) // would panic if compared with ==
	s.Attach(wrapper{log})
	s.Attach(wrapper{log}) // comparable: the same observer
	s.Load().Observe(spillway.Event{Kind: spillway.EventRetry})
	if calls.Load() != 2 || len(log.events) != 1 {
		t.Fatalf("fn called %d times, log got %d events; want 2, 1", calls.Load(), len(log.events))
	}
}

// Attaching while events are reported loses no observer and no event
// (run with -race).
func TestObserverSetConcurrentAttach(t *testing.T) {
	const attachers, observers, events = 8, 4, 200
	var s spillway.ObserverSet
	logs := make([]*eventLog, attachers)
	var wg sync.WaitGroup
	for i := range logs {
		logs[i] = &eventLog{}
		wg.Go(func() { s.Attach(logs[i]) })
	}
	for range observers {
		wg.Go(func() {
			for range events {
				if o := s.Load(); o != nil {
					o.Observe(spillway.Event{Kind: spillway.EventRetry})
				}
			}
		})
	}
	wg.Wait()
	if got := len(s.Load()); got != attachers {
		t.Fatalf("%d observers attached, want %d", got, attachers)
	}
	s.Load().Observe(spillway.Event{Kind: spillway.EventTimeout})
	for i, l := range logs {
		if got := len(l.of(spillway.EventTimeout)); got != 1 {
			t.Errorf("observer %d got %d events after every Attach, want 1", i, got)
		}
	}
}

// A pipeline's Observer gets the events of its policies, which need none
// of their own: here the breaker's transition.
func ExamplePolicies_observer() {
	br := breaker.MustNew(breaker.Config{Name: "payments", ConsecutiveFailures: 2}) // no Observer
	pl := spillway.MustNewPipeline(spillway.Policies[string]{
		Breaker: br,
		Observer: spillway.ObserverFunc(func(e spillway.Event) {
			if e.Kind == spillway.EventTransition {
				fmt.Printf("%s %s: %s -> %s\n", e.Policy, e.Name, e.From, e.To)
			}
		}),
	})
	for range 2 {
		_, _ = pl.Execute(context.Background(), func(context.Context) (string, error) { return "", errors.New("down") })
	}
	// Output: breaker payments: closed -> open
}
