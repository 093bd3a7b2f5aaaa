package chaos_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/chaos"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seeded returns a deterministic source for one goroutine.
func seeded(seed uint64) func() float64 { return rand.New(rand.NewPCG(seed, seed+1)).Float64 }

// TestRateIsRespected: at rate 0.3 a seeded source picks 30 % of 10,000
// calls within 1.5 points (4 standard deviations: sqrt(.3*.7/10000) ≈ 0.46
// points), and the same seed picks the same calls.
func TestRateIsRespected(t *testing.T) {
	count := func(seed uint64) int {
		p := chaos.Must(chaos.NewFault[int](chaos.Config{Enabled: true, Rate: 0.3, Rand: seeded(seed)}, nil))
		n := 0
		for range 10_000 {
			if _, replaced, _ := p.Inject(context.Background()); replaced {
				n++
			}
		}
		return n
	}
	got := count(42)
	if math.Abs(float64(got)/10_000-0.3) > 0.015 {
		t.Fatalf("rate 0.3 injected %d of 10000 calls", got)
	}
	if again := count(42); again != got {
		t.Fatalf("same seed, %d then %d injections", got, again)
	}
	t.Logf("seed 42: %d of 10000", got)
}

// TestRateBounds: rate 0 never injects and never draws; rate 1 always
// injects without drawing.
func TestRateBounds(t *testing.T) {
	draws := 0
	rnd := func() float64 { draws++; return 0 }
	p := chaos.Must(chaos.NewFault[int](chaos.Config{Enabled: true, Rate: 0, Rand: rnd}, nil))
	for range 100 {
		if _, replaced, _ := p.Inject(context.Background()); replaced {
			t.Fatal("rate 0 injected")
		}
	}
	if err := p.SetRate(1); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, replaced, _ := p.Inject(context.Background()); !replaced {
			t.Fatal("rate 1 did not inject")
		}
	}
	if draws != 0 {
		t.Fatalf("%d draws at rates 0 and 1, want none", draws)
	}
}

func TestInvalidConfigIsRefused(t *testing.T) {
	for _, r := range []float64{-0.1, 1.1, math.NaN()} {
		if _, err := chaos.NewFault[int](chaos.Config{Rate: r}, nil); err == nil {
			t.Errorf("rate %v accepted", r)
		}
	}
	p := chaos.Must(chaos.NewFault[int](chaos.Config{Rate: 0.5}, nil))
	if err := p.SetRate(2); err == nil || p.Rate() != 0.5 {
		t.Errorf("SetRate(2) = %v, rate now %v: want an error and 0.5 kept", err, p.Rate())
	}
	if _, err := chaos.NewLatency[int](chaos.Config{}, 0); err == nil {
		t.Error("latency 0 accepted")
	}
	if _, err := chaos.NewOutcome[int](chaos.Config{}, nil); err == nil {
		t.Error("nil outcome accepted")
	}
	if _, err := chaos.NewBehavior[int](chaos.Config{}, nil); err == nil {
		t.Error("nil behavior accepted")
	}
}

// TestDisabledByDefault: a zero Config's policy injects nothing, at any
// rate, until switched on.
func TestDisabledByDefault(t *testing.T) {
	p := chaos.Must(chaos.NewFault[int](chaos.Config{Rate: 1}, nil))
	if _, replaced, _ := p.Inject(context.Background()); replaced || p.Enabled() {
		t.Fatal("a policy without Enabled injected")
	}
	p.SetEnabled(true)
	if _, replaced, _ := p.Inject(context.Background()); !replaced {
		t.Fatal("an enabled policy at rate 1 did not inject")
	}
}

// TestSwitchFlipsUnderLoad flips the switch and the rate while callers
// inject concurrently (run with -race); once the flips are done, what the
// callers see follows the last state.
func TestSwitchFlipsUnderLoad(t *testing.T) {
	p := chaos.Must(chaos.NewFault[int](chaos.Config{Enabled: true, Rate: 1}, nil))
	var stop atomic.Bool
	var injected atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if _, replaced, _ := p.Inject(context.Background()); replaced {
					injected.Add(1)
				}
			}
		})
	}
	for i := range 1000 {
		p.SetEnabled(i%2 == 0)
		if err := p.SetRate(float64(i%3) / 2); err != nil {
			t.Fatal(err)
		}
	}
	p.SetEnabled(false)
	stop.Store(true)
	wg.Wait()
	for range 100 {
		if _, replaced, _ := p.Inject(context.Background()); replaced {
			t.Fatal("a disabled policy injected")
		}
	}
	p.SetEnabled(true)
	if err := p.SetRate(1); err != nil {
		t.Fatal(err)
	}
	if _, replaced, _ := p.Inject(context.Background()); !replaced {
		t.Fatal("re-enabled policy did not inject")
	}
}

func TestFaultError(t *testing.T) {
	ctx := context.Background()
	def := chaos.Must(chaos.NewFault[int](chaos.Config{Name: "db", Enabled: true, Rate: 1}, nil))
	_, _, err := def.Inject(ctx)
	if !errors.Is(err, chaos.ErrInjected) || spillway.ReasonOf(err) != spillway.ReasonUpstreamError {
		t.Fatalf("default fault %v: reason %s", err, spillway.ReasonOf(err))
	}
	if got, want := err.Error(), `spillway: chaos "db": injected fault`; got != want {
		t.Fatalf("error reads %q, want %q", got, want)
	}
	_, _, again := def.Inject(ctx)
	if again != err {
		t.Fatal("the default fault is built per call: want one error built once")
	}
	mine := errors.New("connection reset")
	p := chaos.Must(chaos.NewFault[int](chaos.Config{Enabled: true, Rate: 1}, context.DeadlineExceeded))
	_, _, err = p.Inject(ctx)
	if !errors.Is(err, chaos.ErrInjected) || !errors.Is(err, context.DeadlineExceeded) ||
		spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded {
		t.Fatalf("fault of DeadlineExceeded: %v, reason %s", err, spillway.ReasonOf(err))
	}
	p = chaos.Must(chaos.NewFault[int](chaos.Config{Enabled: true, Rate: 1}, mine))
	if _, _, err = p.Inject(ctx); !errors.Is(err, mine) || spillway.ReasonOf(err) != spillway.ReasonUpstreamError {
		t.Fatalf("fault of %v: %v", mine, err)
	}
}

// TestOutcomeIsTyped: a substitute value comes back as the pipeline's T.
func TestOutcomeIsTyped(t *testing.T) {
	type reply struct{ Status int }
	p := chaos.Must(chaos.NewOutcome(chaos.Config{Enabled: true, Rate: 1}, func(context.Context) (reply, error) {
		return reply{Status: 503}, nil
	}))
	v, replaced, err := p.Inject(context.Background())
	if !replaced || err != nil || v.Status != 503 {
		t.Fatalf("Inject = %+v, %v, %v", v, replaced, err)
	}
	boom := errors.New("boom")
	p = chaos.Must(chaos.NewOutcome(chaos.Config{Enabled: true, Rate: 1}, func(context.Context) (reply, error) {
		return reply{}, boom
	}))
	if _, _, err := p.Inject(context.Background()); !errors.Is(err, boom) || !errors.Is(err, chaos.ErrInjected) {
		t.Fatalf("outcome error %v", err)
	}
}

func TestBehaviorRunsBeforeTheCall(t *testing.T) {
	ran := 0
	p := chaos.Must(chaos.NewBehavior[int](chaos.Config{Enabled: true, Rate: 1}, func(context.Context) error {
		ran++
		return nil
	}))
	if _, replaced, err := p.Inject(context.Background()); replaced || err != nil || ran != 1 {
		t.Fatalf("behavior: replaced %v, err %v, ran %d", replaced, err, ran)
	}
	boom := errors.New("cache dropped badly")
	p = chaos.Must(chaos.NewBehavior[int](chaos.Config{Enabled: true, Rate: 1}, func(context.Context) error { return boom }))
	if _, replaced, err := p.Inject(context.Background()); !replaced || !errors.Is(err, boom) || !errors.Is(err, chaos.ErrInjected) {
		t.Fatalf("failing behavior: replaced %v, err %v", replaced, err)
	}
}

// TestLatency waits the latency in fake time, and a context that ends
// during it ends the wait at once with its cause.
func TestLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := chaos.Must(chaos.NewLatency[int](chaos.Config{Enabled: true, Rate: 1}, time.Hour))
		start := time.Now()
		if _, replaced, err := p.Inject(t.Context()); replaced || err != nil || time.Since(start) != time.Hour {
			t.Fatalf("latency: replaced %v, err %v after %v", replaced, err, time.Since(start))
		}
		start = time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		_, replaced, err := p.Inject(ctx)
		if !replaced || !errors.Is(err, context.Canceled) || time.Since(start) != time.Second {
			t.Fatalf("cancelled latency: replaced %v, err %v after %v", replaced, err, time.Since(start))
		}
	})
}

type tenantKey struct{}

// TestPerCallDecision: EnabledFunc targets one tenant, RateFunc sets the
// rate per call, and OnInject sees each injection.
func TestPerCallDecision(t *testing.T) {
	var seen []chaos.Kind
	p := chaos.Must(chaos.NewFault[int](chaos.Config{
		Enabled:     true,
		Rate:        1,
		EnabledFunc: func(ctx context.Context) bool { return ctx.Value(tenantKey{}) == "acme" },
		OnInject:    func(_ context.Context, k chaos.Kind) { seen = append(seen, k) },
	}, nil))
	acme := context.WithValue(context.Background(), tenantKey{}, "acme")
	other := context.WithValue(context.Background(), tenantKey{}, "globex")
	if _, replaced, _ := p.Inject(other); replaced {
		t.Fatal("injected into another tenant")
	}
	if _, replaced, _ := p.Inject(acme); !replaced {
		t.Fatal("did not inject into the targeted tenant")
	}
	if len(seen) != 1 || seen[0] != chaos.Fault || seen[0].String() != "fault" {
		t.Fatalf("OnInject saw %v", seen)
	}
	q := chaos.Must(chaos.NewFault[int](chaos.Config{Enabled: true, Rate: 1,
		RateFunc: func(ctx context.Context) float64 { return 0 }}, nil))
	if _, replaced, _ := q.Inject(acme); replaced {
		t.Fatal("RateFunc 0 injected")
	}
}
