package throttle_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/throttle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errDown = errors.New("503 service unavailable")

// seeded returns a deterministic random source for one test.
func seeded(seed uint64) func() float64 {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)).Float64
}

// never is a Rand that no probability of at most 0.999 beats: the
// throttler admits every call while the test fills its window.
func never() float64 { return 0.999 }

func newThrottler(t *testing.T, cfg throttle.Config) (*throttle.Throttler, *spillway.ManualClock) {
	t.Helper()
	clock := spillway.NewManualClock(time.Hour)
	cfg.Clock = clock
	th, err := throttle.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return th, clock
}

// call makes one call through th that ends with err; it reports whether
// the throttler admitted it.
func call(th *throttle.Throttler, err error) bool {
	p, rerr := th.Acquire(context.Background())
	if rerr != nil {
		return false
	}
	p.Release(err)
	return true
}

func TestHealthyDownstreamIsNeverThrottled(t *testing.T) {
	th, clock := newThrottler(t, throttle.Config{Window: 10 * time.Second, Rand: seeded(1)})
	// Calls overlap: 50 in flight at any time, each accepted.
	var inFlight []spillway.Permit
	for i := range 10_000 {
		p, err := th.Acquire(context.Background())
		if err != nil {
			t.Fatalf("call %d refused by a healthy downstream: %v", i, err)
		}
		inFlight = append(inFlight, p)
		if len(inFlight) == 50 {
			inFlight[0].Release(nil)
			inFlight = inFlight[1:]
		}
		if i%100 == 0 {
			clock.Advance(100 * time.Millisecond)
		}
		if p := th.RejectionProbability(); p != 0 {
			t.Fatalf("call %d: RejectionProbability = %v, want 0", i, p)
		}
	}
	if th.Rejected() != 0 {
		t.Fatalf("Rejected = %d, want 0", th.Rejected())
	}
}

func TestRejectionProbabilityIsTheFormula(t *testing.T) {
	th, _ := newThrottler(t, throttle.Config{Rand: never})
	for i := range 1000 {
		var err error
		if i%5 != 0 {
			err = errDown
		}
		if !call(th, err) {
			t.Fatalf("call %d refused", i)
		}
	}
	reqs, accs := th.Counts()
	if reqs != 1000 || accs != 200 {
		t.Fatalf("Counts = %d, %d, want 1000, 200", reqs, accs)
	}
	want := (1000 - 2*200) / 1001.0
	if got := th.RejectionProbability(); got != want {
		t.Fatalf("RejectionProbability = %v, want (1000 − 2·200)/1001 = %v", got, want)
	}
}

func TestRejectionProbabilityIsCapped(t *testing.T) {
	th, _ := newThrottler(t, throttle.Config{Rand: never, MaxRejectionRate: 0.5})
	for range 100 {
		call(th, errDown)
	}
	if got := th.RejectionProbability(); got != 0.5 {
		t.Fatalf("RejectionProbability = %v, want the cap 0.5 (the formula says 100/101)", got)
	}
}

// TestMeasuredRateConvergesToTheFormula drives a downstream that accepts 20
// calls a second whatever it is sent, as the SRE book's saturated backend
// does, with 100 calls a second: accepts are 20 % of the requests, and with
// K = 2 the throttler must refuse (100 − 2·20)/100 = 60 % of them.
func TestMeasuredRateConvergesToTheFormula(t *testing.T) {
	const perSecond, capacity = 100, 20
	th, clock := newThrottler(t, throttle.Config{Window: 10 * time.Second, Rand: seeded(2)})
	var refused, calls int
	for second := range 120 {
		accepted := 0
		for range perSecond {
			var err error = errDown
			if accepted < capacity {
				err = nil
			}
			admitted := call(th, err)
			if admitted && err == nil {
				accepted++
			}
			if second >= 60 { // after the window has settled
				calls++
				if !admitted {
					refused++
				}
			}
			clock.Advance(time.Second / perSecond)
		}
	}
	want := (perSecond - 2*capacity) / float64(perSecond)
	got := float64(refused) / float64(calls)
	if math.Abs(got-want) > 0.02 {
		t.Fatalf("measured rejection rate %.4f, want the formula's %.4f ± 0.02", got, want)
	}
	reqs, accs := th.Counts()
	if accs*5 < reqs*95/100 || accs*5 > reqs*105/100 {
		t.Fatalf("window holds %d requests and %d accepts: accepts are not 20 %% of requests", reqs, accs)
	}
}

func TestRefusalsFadeAsTheWindowSlides(t *testing.T) {
	th, clock := newThrottler(t, throttle.Config{Window: 10 * time.Second, Rand: seeded(3)})
	for range 1000 {
		call(th, errDown)
		clock.Advance(time.Millisecond)
	}
	if p := th.RejectionProbability(); p != throttle.DefaultMaxRejectionRate {
		t.Fatalf("RejectionProbability after 1000 failures = %v, want the cap %v", p, throttle.DefaultMaxRejectionRate)
	}
	// The downstream recovers: 10 calls a second, all accepted. The window
	// first holds the failures, then the refusals of the recovery's first
	// seconds (refusals are requests), so the refusals fade over a few
	// windows (2.5 here), never rising.
	prev := 1.0
	for second := 1; ; second++ {
		for range 10 {
			call(th, nil)
			clock.Advance(100 * time.Millisecond)
		}
		p := th.RejectionProbability()
		if p > prev {
			t.Fatalf("second %d: RejectionProbability rose from %v to %v while the downstream recovered", second, prev, p)
		}
		prev = p
		if p == 0 {
			if second > 30 {
				t.Fatalf("refusals took %d s to fade in a 10 s window", second)
			}
			break
		}
		if second > 30 {
			t.Fatalf("RejectionProbability still %v after %d s of a 10 s window", p, second)
		}
	}
}

func TestOutcomesThatAreNotCounted(t *testing.T) {
	th, _ := newThrottler(t, throttle.Config{Rand: never})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	refusal := &spillway.Error{Code: spillway.ReasonBreakerOpen, Policy: "breaker", Err: errors.New("open")}
	for _, err := range []error{refusal, spillway.CallerDone(errDown), context.Canceled} {
		p, aerr := th.Acquire(ctx)
		if aerr != nil {
			t.Fatal(aerr)
		}
		p.Release(err)
	}
	if reqs, accs := th.Counts(); reqs != 0 || accs != 0 {
		t.Fatalf("Counts = %d, %d after calls that never reached the downstream, want 0, 0", reqs, accs)
	}
	// A custom Classify decides the rest: a "not found" is an accept.
	notFound := errors.New("404")
	if err := th.Update(func(c *throttle.Config) {
		c.Classify = func(err error) spillway.Outcome {
			if err == notFound {
				return spillway.Success
			}
			return spillway.Failure
		}
	}); err != nil {
		t.Fatal(err)
	}
	call(th, notFound)
	call(th, errDown)
	call(th, refusal) // still not counted: Classify is not asked
	if reqs, accs := th.Counts(); reqs != 2 || accs != 1 {
		t.Fatalf("Counts = %d, %d, want 2, 1", reqs, accs)
	}
}

func TestRefusal(t *testing.T) {
	var events []spillway.Event
	th, _ := newThrottler(t, throttle.Config{Name: "payments", Rand: func() float64 { return 0 },
		Observer: spillway.ObserverFunc(func(e spillway.Event) { events = append(events, e) })})
	call(th, errDown) // p = 1/2 for the next call, and Rand says 0
	_, err := th.Acquire(context.Background())
	if err == nil {
		t.Fatal("Acquire admitted a call at probability 1/2 with Rand 0")
	}
	var se *spillway.Error
	if !errors.As(err, &se) || !errors.Is(err, throttle.ErrThrottled) || spillway.ReasonOf(err) != spillway.ReasonThrottled ||
		!spillway.IsRejection(err) || se.Policy != "throttle" || se.Name != "payments" || se.RetryAfter != time.Second {
		t.Fatalf("refusal = %#v, want a throttled *spillway.Error of policy throttle, name payments, RetryAfter 1s", err)
	}
	if want := `spillway: throttle "payments"`; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("refusal reads %q, want it to start with %q", err, want)
	}
	if len(events) != 1 || events[0].Kind != spillway.EventRejection || events[0].Reason != spillway.ReasonThrottled ||
		events[0].Policy != "throttle" || events[0].Name != "payments" {
		t.Fatalf("events = %+v, want one throttled rejection", events)
	}
	if th.Rejected() != 1 {
		t.Fatalf("Rejected = %d, want 1", th.Rejected())
	}
	if reqs, _ := th.Counts(); reqs != 2 {
		t.Fatalf("requests = %d, want 2: a refused call is a request", reqs)
	}
}

func TestHotPathAllocatesNothing(t *testing.T) {
	th, clock := newThrottler(t, throttle.Config{})
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		p, _ := th.Acquire(ctx)
		p.Release(nil)
		clock.Advance(time.Millisecond)
	}); n != 0 {
		t.Fatalf("an admitted call allocates %v times, want 0", n)
	}
	th, _ = newThrottler(t, throttle.Config{Rand: func() float64 { return 0 }})
	for range 100 {
		call(th, errDown)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := th.Acquire(ctx); err == nil {
			panic("admitted")
		}
	}); n != 0 {
		t.Fatalf("a refusal allocates %v times, want 0", n)
	}
}

func TestReleaseAfterTheBucketRolled(t *testing.T) {
	th, clock := newThrottler(t, throttle.Config{Window: 10 * time.Second, Rand: never})
	p, _ := th.Acquire(context.Background())
	clock.Advance(3 * time.Second)
	call(th, errDown) // rolls the window
	p.Release(nil)    // lands in its own, now previous, bucket
	if reqs, accs := th.Counts(); reqs != 2 || accs != 1 {
		t.Fatalf("Counts = %d, %d, want 2, 1", reqs, accs)
	}
	clock.Advance(8 * time.Second) // the first bucket leaves the window
	if reqs, accs := th.Counts(); reqs != 1 || accs != 0 {
		t.Fatalf("Counts = %d, %d after the first call's bucket expired, want 1, 0", reqs, accs)
	}
	// A permit whose bucket expired is dropped.
	p, _ = th.Acquire(context.Background())
	clock.Advance(20 * time.Second)
	p.Release(nil)
	if reqs, accs := th.Counts(); reqs != 0 || accs != 0 {
		t.Fatalf("Counts = %d, %d, want 0, 0", reqs, accs)
	}
}

func TestUpdateKeepsTheWindow(t *testing.T) {
	th, clock := newThrottler(t, throttle.Config{Window: 10 * time.Second, Rand: never})
	for range 10 {
		call(th, nil)
		call(th, errDown)
		call(th, errDown)
		clock.Advance(time.Second)
	}
	if err := th.Update(func(c *throttle.Config) { c.K = 1.5 }); err != nil {
		t.Fatal(err)
	}
	// The first second has left the window.
	if reqs, accs := th.Counts(); reqs != 27 || accs != 9 {
		t.Fatalf("Counts after a new K = %d, %d, want 27, 9", reqs, accs)
	}
	if got, want := th.RejectionProbability(), (27-1.5*9)/28; got != want {
		t.Fatalf("RejectionProbability = %v, want %v", got, want)
	}
	// A window half as long keeps the last 5 seconds; the buckets follow.
	if err := th.Update(func(c *throttle.Config) { c.Window = 5 * time.Second }); err != nil {
		t.Fatal(err)
	}
	if reqs, accs := th.Counts(); reqs != 12 || accs != 4 {
		// The current second (empty) and the four before it.
		t.Fatalf("Counts after a 5s window = %d, %d, want 12, 4", reqs, accs)
	}
	if c := th.Config(); c.Buckets != 10 || c.K != 1.5 {
		t.Fatalf("Config = %+v, want 10 buckets (the default follows Window) and K 1.5", c)
	}
	if err := th.Update(func(c *throttle.Config) { c.K = 0.5 }); err == nil || th.Config().K != 1.5 {
		t.Fatalf("Update to K 0.5 = %v, K now %v: want an error and nothing changed", err, th.Config().K)
	}
}

func TestExecuteAndDo(t *testing.T) {
	th, _ := newThrottler(t, throttle.Config{Rand: never})
	ctx, cancel := context.WithCancel(context.Background())
	if err := th.Execute(ctx, func(context.Context) error { return errDown }); err != errDown {
		t.Fatalf("Execute = %v, want the call's error", err)
	}
	v, err := throttle.Do(ctx, th, func(context.Context) (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Fatalf("Do = %v, %v", v, err)
	}
	cancel()
	if err := th.Execute(ctx, func(ctx context.Context) error { return ctx.Err() }); err != context.Canceled {
		t.Fatalf("Execute = %v, want context.Canceled", err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = th.Execute(context.Background(), func(context.Context) error { panic("boom") })
	}()
	// The failure, the accept and the panic count; the caller's end does not.
	if reqs, accs := th.Counts(); reqs != 3 || accs != 1 {
		t.Fatalf("Counts = %d, %d, want 3, 1", reqs, accs)
	}
}

func TestConfig(t *testing.T) {
	for _, tt := range []struct {
		cfg  throttle.Config
		want string
	}{
		{throttle.Config{K: 0.99}, "K must be a finite number of at least 1"},
		{throttle.Config{K: 0.5}, "K must be"},
		{throttle.Config{K: math.NaN()}, "K must be"},
		{throttle.Config{K: math.Inf(1)}, "K must be"},
		{throttle.Config{Window: -time.Second}, "Window must not be negative"},
		{throttle.Config{Buckets: -1}, "Buckets must be in [1,1000]"},
		{throttle.Config{Buckets: 1001}, "Buckets must be in [1,1000]"},
		{throttle.Config{Window: time.Millisecond, Buckets: 10}, "each bucket must span at least 1ms"},
		{throttle.Config{MaxRejectionRate: 1.5}, "MaxRejectionRate must be in (0,1]"},
		{throttle.Config{MaxRejectionRate: -0.1}, "MaxRejectionRate must be in (0,1]"},
	} {
		if _, err := throttle.New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tt.cfg, err, tt.want)
		}
	}
	c := throttle.MustNew(throttle.Config{}).Config()
	if c.K != 2 || c.Window != 2*time.Minute || c.Buckets != 120 || c.MaxRejectionRate != 0.9 {
		t.Fatalf("defaults = %+v, want K 2, Window 2m, 120 buckets, MaxRejectionRate 0.9", c)
	}
	if w := (throttle.Config{MaxRejectionRate: 1}).Warnings(); len(w) != 1 || !strings.Contains(w[0], "MaxRejectionRate is 1") {
		t.Fatalf("Warnings = %q, want one about MaxRejectionRate 1", w)
	}
	if w := (throttle.Config{K: 1}).Warnings(); len(w) != 1 || !strings.Contains(w[0], "K is 1") {
		t.Fatalf("Warnings = %q, want one about K 1", w)
	}
	if w := (throttle.Config{}).Warnings(); w != nil {
		t.Fatalf("Warnings of the defaults = %q, want none", w)
	}
}

func TestInAPipeline(t *testing.T) {
	th, _ := newThrottler(t, throttle.Config{Rand: func() float64 { return 0 }})
	p, err := spillway.NewPipeline(spillway.Policies[int]{Guards: []spillway.Guard{th}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Execute(context.Background(), func(context.Context) (int, error) { return 0, errDown })
	if err != errDown {
		t.Fatalf("first call = %v, want the downstream's error", err)
	}
	_, err = p.Execute(context.Background(), func(context.Context) (int, error) { return 1, nil })
	if spillway.ReasonOf(err) != spillway.ReasonThrottled {
		t.Fatalf("second call = %v, want throttled", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	th := throttle.MustNew(throttle.Config{Window: 50 * time.Millisecond, Buckets: 10})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				var err error
				if (i+g)%3 == 0 {
					err = errDown
				}
				_ = th.Execute(context.Background(), func(context.Context) error { return err })
				if p := th.RejectionProbability(); p < 0 || p > 0.9 {
					t.Errorf("RejectionProbability = %v", p)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			_ = th.Update(func(c *throttle.Config) { c.Buckets = 5 + i%10 })
		}
	})
	wg.Wait()
	if reqs, accs := th.Counts(); reqs < 0 || accs < 0 {
		t.Fatalf("Counts = %d, %d", reqs, accs)
	}
}
