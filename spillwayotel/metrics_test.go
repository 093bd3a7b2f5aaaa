package spillwayotel_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayotel"
	"github.com/spillway-dev/spillway/timeout"
)

var errDown = errors.New("connection refused")

// A breaker that trips, rejects, turns half-open by itself and closes again:
// attempts, their durations, transitions, rejections and the state gauges.
func TestBreakerMetrics(t *testing.T) {
	h := newHarness(t)
	clk := spillway.NewManualClock(0)
	cb := breaker.MustNew(breaker.Config{
		Name: "catalog", WindowSize: 4, MinCalls: 4, OpenFor: 10 * time.Second,
		HalfOpenProbes: 1, Clock: clk, Observer: h.obs,
	})
	if err := h.obs.RegisterBreaker(cb); err != nil {
		t.Fatal(err)
	}
	pl := spillway.MustNewPipeline(spillway.Policies[string]{
		Guards: []spillway.Guard{cb}, Observer: h.obs, Clock: clk, Name: "catalog",
	})
	failing := func(context.Context) (string, error) {
		clk.Advance(250 * time.Millisecond)
		return "", errDown
	}

	ms := h.metrics()
	if v, _ := gauge(t, ms, "spillway.circuit.state", kv("name", "catalog", "state", "closed")); v != 1 {
		t.Errorf("state closed = %v before any call, want 1", v)
	}

	for range 4 {
		if _, err := pl.Execute(context.Background(), failing); !errors.Is(err, errDown) {
			t.Fatalf("Execute: %v, want the downstream's error", err)
		}
	}
	if _, err := pl.Execute(context.Background(), failing); spillway.ReasonOf(err) != spillway.ReasonBreakerOpen {
		t.Fatalf("fifth call: %v, want breaker_open", err)
	}

	ms = h.metrics()
	if got := counter(t, ms, "spillway.upstream.attempts", kv("name", "catalog", "result", "failure")); got != 4 {
		t.Errorf("attempts{failure} = %d, want 4 (the rejected call made no attempt)", got)
	}
	dp := histogram(t, ms, "spillway.upstream.attempt.duration", kv("name", "catalog"))
	if dp.Count != 4 || dp.Sum != 1.0 {
		t.Errorf("duration: count %d sum %v, want 4 and 1.0 s", dp.Count, dp.Sum)
	}
	if got := counter(t, ms, "spillway.circuit.transitions", kv("name", "catalog", "from", "closed", "to", "open")); got != 1 {
		t.Errorf("transitions{closed→open} = %d, want 1", got)
	}
	if got := counter(t, ms, "spillway.rejected", kv("name", "catalog", "reason", "breaker_open")); got != 1 {
		t.Errorf("rejected{breaker_open} = %d, want 1", got)
	}
	wantStates := func(current string) {
		t.Helper()
		if n := points(t, ms, "spillway.circuit.state"); n != 6 {
			t.Errorf("circuit.state has %d series, want one per state (6)", n)
		}
		for _, s := range []string{"closed", "open", "half_open", "forced_open", "disabled", "metrics_only"} {
			want := 0.0
			if s == current {
				want = 1
			}
			v, ok := gauge(t, ms, "spillway.circuit.state", kv("name", "catalog", "state", s))
			if !ok || v != want {
				t.Errorf("circuit.state{%s} = %v (present %v), want %v", s, v, ok, want)
			}
		}
	}
	wantStates("open")
	if v, _ := gauge(t, ms, "spillway.circuit.failure_rate", kv("name", "catalog")); v != 1 {
		t.Errorf("failure_rate = %v, want 1", v)
	}

	// The gauge reads State, which is time-aware: no call is needed.
	clk.Advance(10 * time.Second)
	ms = h.metrics()
	wantStates("half_open")

	if _, err := pl.Execute(context.Background(), func(context.Context) (string, error) { return "ok", nil }); err != nil {
		t.Fatalf("probe: %v", err)
	}
	ms = h.metrics()
	wantStates("closed")
	for _, tr := range [][2]string{{"open", "half_open"}, {"half_open", "closed"}} {
		if got := counter(t, ms, "spillway.circuit.transitions", kv("name", "catalog", "from", tr[0], "to", tr[1])); got != 1 {
			t.Errorf("transitions{%s→%s} = %d, want 1", tr[0], tr[1], got)
		}
	}
	if got := counter(t, ms, "spillway.upstream.attempts", kv("name", "catalog", "result", "success")); got != 1 {
		t.Errorf("attempts{success} = %d, want 1", got)
	}
	if v, _ := gauge(t, ms, "spillway.circuit.failure_rate", kv("name", "catalog")); v != 0 {
		t.Errorf("failure_rate = %v after closing with an empty window, want 0", v)
	}
}

// A retry that retries twice, then succeeds; the shared budget's gauge.
func TestRetryMetrics(t *testing.T) {
	h := newHarness(t)
	clk := spillway.NewManualClock(0)
	budget := retry.MustNewBudget(retry.BudgetConfig{Clock: clk})
	if err := h.obs.RegisterBudget("search", budget); err != nil {
		t.Fatal(err)
	}
	rp := retry.MustNew(retry.Config{
		Name: "search", Budget: budget, Initial: time.Microsecond, Max: time.Microsecond,
		Jitter: retry.NoJitter, Observer: h.obs,
	})
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Retry: rp, Observer: h.obs, Name: "search"})
	calls := 0
	v, err := pl.Execute(context.Background(), func(context.Context) (string, error) {
		calls++
		if calls <= 2 {
			return "", errDown
		}
		return "found", nil
	})
	if err != nil || v != "found" {
		t.Fatalf("Execute = %q, %v", v, err)
	}

	ms := h.metrics()
	name := kv("name", "search")
	if got := counter(t, ms, "spillway.retries", name); got != 2 {
		t.Errorf("retries = %d, want 2", got)
	}
	if got := counter(t, ms, "spillway.upstream.attempts", kv("name", "search", "result", "failure")); got != 2 {
		t.Errorf("attempts{failure} = %d, want 2", got)
	}
	if got := counter(t, ms, "spillway.upstream.attempts", kv("name", "search", "result", "success")); got != 1 {
		t.Errorf("attempts{success} = %d, want 1", got)
	}
	if dp := histogram(t, ms, "spillway.upstream.attempt.duration", name); dp.Count != 3 {
		t.Errorf("duration count = %d, want 3", dp.Count)
	}
	want := budget.Remaining()
	if got, ok := gauge(t, ms, "spillway.retry.budget.remaining", name); !ok || got != want {
		t.Errorf("budget remaining = %v (present %v), want %v", got, ok, want)
	}
	// 10 retries/s floor over 10 s, plus 20 % of one request, minus two retries.
	if want < 98 || want > 98.2 {
		t.Errorf("Remaining = %v, want about 98.2", want)
	}
}

// A budget that refuses the retry is a rejection with reason budget_exhausted.
func TestBudgetRejectionMetrics(t *testing.T) {
	h := newHarness(t)
	budget := retry.MustNewBudget(retry.BudgetConfig{Ratio: 0.01, MinPerSecond: -1, Clock: spillway.NewManualClock(0)})
	if err := h.obs.RegisterBudget("ledger", budget); err != nil {
		t.Fatal(err)
	}
	rp := retry.MustNew(retry.Config{Name: "ledger", Budget: budget, Observer: h.obs})
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Retry: rp, Observer: h.obs, Name: "ledger"})
	_, err := pl.Execute(context.Background(), func(context.Context) (string, error) { return "", errDown })
	if !errors.Is(err, retry.ErrBudgetExhausted) {
		t.Fatalf("Execute: %v, want ErrBudgetExhausted", err)
	}
	ms := h.metrics()
	if got := counter(t, ms, "spillway.rejected", kv("name", "ledger", "reason", "budget_exhausted")); got != 1 {
		t.Errorf("rejected{budget_exhausted} = %d, want 1", got)
	}
	if got := counter(t, ms, "spillway.retries", kv("name", "ledger")); got != 0 {
		t.Errorf("retries = %d, want 0", got)
	}
	if got, _ := gauge(t, ms, "spillway.retry.budget.remaining", kv("name", "ledger")); got >= 1 {
		t.Errorf("budget remaining = %v, want < 1", got)
	}
}

// A full bulkhead rejects; its gauges follow InFlight and Limit.
func TestBulkheadMetrics(t *testing.T) {
	h := newHarness(t)
	bh := bulkhead.MustNew(bulkhead.Config{Name: "reports", MaxConcurrent: 1, Observer: h.obs})
	if err := h.obs.RegisterBulkhead(bh); err != nil {
		t.Fatal(err)
	}
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Guards: []spillway.Guard{bh}, Observer: h.obs, Name: "reports"})
	held, err := bh.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = pl.Execute(context.Background(), func(context.Context) (string, error) { return "report", nil })
	if !errors.Is(err, bulkhead.ErrFull) {
		t.Fatalf("Execute: %v, want ErrFull", err)
	}
	name := kv("name", "reports")
	ms := h.metrics()
	if got := counter(t, ms, "spillway.rejected", kv("name", "reports", "reason", "bulkhead_full")); got != 1 {
		t.Errorf("rejected{bulkhead_full} = %d, want 1", got)
	}
	if v, _ := gauge(t, ms, "spillway.bulkhead.in_flight", name); v != 1 {
		t.Errorf("in_flight = %v, want 1", v)
	}
	if v, _ := gauge(t, ms, "spillway.bulkhead.limit", name); v != 1 {
		t.Errorf("limit = %v, want 1", v)
	}

	held.Release(nil)
	if err := bh.Resize(3, 0); err != nil {
		t.Fatal(err)
	}
	ms = h.metrics()
	if v, _ := gauge(t, ms, "spillway.bulkhead.in_flight", name); v != 0 {
		t.Errorf("in_flight = %v after release, want 0", v)
	}
	if v, _ := gauge(t, ms, "spillway.bulkhead.limit", name); v != 3 {
		t.Errorf("limit = %v after Resize, want 3", v)
	}
}

// A fallback that serves is counted by the step that served.
func TestFallbackMetrics(t *testing.T) {
	h := newHarness(t)
	fb := fallback.MustNew(fallback.Config{Name: "catalog", Observer: h.obs},
		fallback.Func("replica", func(context.Context, error) (string, error) { return "", errors.New("replica down") }),
		fallback.Value("static", `{"items":[]}`))
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Fallback: fb, Observer: h.obs, Name: "catalog"})
	for range 2 {
		res := pl.ExecuteResult(context.Background(), func(context.Context) (string, error) { return "", errDown })
		if res.Err != nil || res.Fallback != "static" {
			t.Fatalf("result: %+v, want served by static", res)
		}
	}
	ms := h.metrics()
	if got := counter(t, ms, "spillway.fallback", kv("name", "catalog", "kind", "static")); got != 2 {
		t.Errorf("fallback{static} = %d, want 2", got)
	}
	if n := points(t, ms, "spillway.fallback"); n != 1 {
		t.Errorf("fallback has %d series, want 1 (a step that failed did not serve)", n)
	}
}

// A timeout policy that cuts a call short is counted; the attempt fails.
func TestTimeoutMetrics(t *testing.T) {
	h := newHarness(t)
	to := timeout.MustNew(timeout.Config{Name: "slow", Duration: time.Millisecond, Observer: h.obs})
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Attempt: to, Observer: h.obs, Name: "slow"})
	_, err := pl.Execute(context.Background(), func(ctx context.Context) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	})
	if spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded {
		t.Fatalf("Execute: %v, want deadline_exceeded", err)
	}
	ms := h.metrics()
	if got := counter(t, ms, "spillway.timeouts", kv("name", "slow")); got != 1 {
		t.Errorf("timeouts = %d, want 1", got)
	}
	if got := counter(t, ms, "spillway.upstream.attempts", kv("name", "slow", "result", "failure")); got != 1 {
		t.Errorf("attempts{failure} = %d, want 1", got)
	}
}

// The histogram's buckets are in seconds, Prometheus's by default.
func TestBuckets(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []spillwayotel.Option
		want []float64
	}{
		{"default", nil, spillwayotel.DefaultBuckets},
		{"WithBuckets", []spillwayotel.Option{spillwayotel.WithBuckets(0.1, 1)}, []float64{0.1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			h.obs.Observe(spillway.Event{Kind: spillway.EventAttempt, Name: "x", Duration: 300 * time.Millisecond})
			dp := histogram(t, h.metrics(), "spillway.upstream.attempt.duration", kv("name", "x"))
			if fmt.Sprint(dp.Bounds) != fmt.Sprint(tc.want) {
				t.Errorf("bounds %v, want %v", dp.Bounds, tc.want)
			}
			if dp.Sum != 0.3 {
				t.Errorf("sum %v, want 0.3", dp.Sum)
			}
		})
	}
}

// Events that are not measured leave no metric, and a nil Context is fine.
func TestIgnoredEvents(t *testing.T) {
	h := newHarness(t)
	h.obs.Observe(spillway.Event{})
	h.obs.Observe(spillway.Event{Kind: spillway.EventKind(99), Name: "x"})
	ms := h.metrics()
	for name := range ms {
		if n := points(t, ms, name); n != 0 {
			t.Errorf("%s has %d points", name, n)
		}
	}
}

func TestErrors(t *testing.T) {
	if _, err := spillwayotel.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
	h := newHarness(t)
	cb := breaker.MustNew(breaker.Config{Name: "a"})
	bh := bulkhead.MustNew(bulkhead.Config{Name: "a"})
	bu := retry.MustNewBudget(retry.BudgetConfig{})
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil breaker", h.obs.RegisterBreaker(nil), "nil breaker"},
		{"unnamed breaker", h.obs.RegisterBreaker(breaker.MustNew(breaker.Config{})), "needs a name"},
		{"breaker", h.obs.RegisterBreaker(cb), ""},
		{"same breaker", h.obs.RegisterBreaker(cb), ""},
		{"another breaker", h.obs.RegisterBreaker(breaker.MustNew(breaker.Config{Name: "a"})), `another breaker named "a" is already registered`},
		{"nil bulkhead", h.obs.RegisterBulkhead(nil), "nil bulkhead"},
		{"unnamed bulkhead", h.obs.RegisterBulkhead(bulkhead.MustNew(bulkhead.Config{})), "needs a name"},
		{"bulkhead", h.obs.RegisterBulkhead(bh), ""},
		{"same bulkhead", h.obs.RegisterBulkhead(bh), ""},
		{"another bulkhead", h.obs.RegisterBulkhead(bulkhead.MustNew(bulkhead.Config{Name: "a"})), `another bulkhead named "a" is already registered`},
		{"nil budget", h.obs.RegisterBudget("a", nil), "nil budget"},
		{"unnamed budget", h.obs.RegisterBudget("", bu), "needs a name"},
		{"budget", h.obs.RegisterBudget("a", bu), ""},
		{"same budget", h.obs.RegisterBudget("a", bu), ""},
		{"another budget", h.obs.RegisterBudget("a", retry.MustNewBudget(retry.BudgetConfig{})), `another budget named "a" is already registered`},
		{"nil policies", h.obs.Register(nil, (*breaker.Breaker)(nil), (*bulkhead.Bulkhead)(nil), (*retry.Policy)(nil)), ""},
	} {
		switch {
		case tc.want == "" && tc.err != nil:
			t.Errorf("%s: %v", tc.name, tc.err)
		case tc.want != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error containing %q", tc.name, tc.err, tc.want)
		}
	}
}

// After Close the registered policies are no longer read; events still count.
func TestClose(t *testing.T) {
	h := newHarness(t)
	if err := h.obs.RegisterBulkhead(bulkhead.MustNew(bulkhead.Config{Name: "a"})); err != nil {
		t.Fatal(err)
	}
	if n := points(t, h.metrics(), "spillway.bulkhead.limit"); n != 1 {
		t.Fatalf("limit has %d points before Close, want 1", n)
	}
	if err := h.obs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.obs.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	h.obs.Observe(spillway.Event{Kind: spillway.EventRetry, Name: "a"})
	ms := h.metrics()
	if n := points(t, ms, "spillway.bulkhead.limit"); n != 0 {
		t.Errorf("limit has %d points after Close, want 0", n)
	}
	if got := counter(t, ms, "spillway.retries", kv("name", "a")); got != 1 {
		t.Errorf("retries = %d after Close, want 1", got)
	}
}

// Observe from many goroutines while the SDK collects and policies register:
// every event is counted once, under -race.
func TestConcurrentObserve(t *testing.T) {
	h := newHarness(t)
	const goroutines, perG = 8, 500
	names := []string{"a", "b", "c", "d"}
	reasons := []spillway.Reason{spillway.ReasonBreakerOpen, spillway.ReasonBulkheadFull, spillway.ReasonBudgetExhausted}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				name := names[(g+i)%len(names)]
				h.obs.Observe(spillway.Event{Kind: spillway.EventRejection, Name: name, Reason: reasons[i%len(reasons)]})
				h.obs.Observe(spillway.Event{Kind: spillway.EventTransition, Name: name, From: "closed", To: "open"})
				h.obs.Observe(spillway.Event{Kind: spillway.EventFallback, Name: name, Fallback: fmt.Sprint("step", i%2)})
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			_ = h.obs.RegisterBulkhead(bulkhead.MustNew(bulkhead.Config{Name: fmt.Sprint("bh", i)}))
			h.metrics()
		}
	})
	wg.Wait()

	ms := h.metrics()
	var rejected, transitions, fallbacks int64
	for _, n := range names {
		for _, r := range reasons {
			rejected += counter(t, ms, "spillway.rejected", kv("name", n, "reason", string(r)))
		}
		transitions += counter(t, ms, "spillway.circuit.transitions", kv("name", n, "from", "closed", "to", "open"))
		for _, k := range []string{"step0", "step1"} {
			fallbacks += counter(t, ms, "spillway.fallback", kv("name", n, "kind", k))
		}
	}
	const want = goroutines * perG
	if rejected != want || transitions != want || fallbacks != want {
		t.Errorf("rejected %d, transitions %d, fallbacks %d; want %d each", rejected, transitions, fallbacks, want)
	}
	if n := points(t, ms, "spillway.bulkhead.limit"); n != 20 {
		t.Errorf("limit has %d series, want 20", n)
	}
}
