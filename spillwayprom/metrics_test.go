package spillwayprom_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayprom"
	"github.com/spillway-dev/spillway/timeout"
)

var errDown = errors.New("downstream down")

// scenario drives real policies named "catalog", all observed by one
// Metrics: a pipeline whose retried attempts fail and trip the breaker, the
// third attempt rejected by the open breaker and a static fallback serving;
// a bulkhead that is full (its one slot held until the test ends); a
// timeout that expires. The breaker's open time then passes.
type scenario struct {
	reg    *prometheus.Registry
	m      *spillwayprom.Metrics
	clock  *spillway.ManualClock
	br     *breaker.Breaker
	bh     *bulkhead.Bulkhead
	budget *retry.Budget
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	s := &scenario{reg: prometheus.NewPedanticRegistry(), clock: spillway.NewManualClock(0)}
	var err error
	s.m, err = spillwayprom.New(s.reg, spillwayprom.WithBuckets([]float64{0.01, 0.1, 1}))
	if err != nil {
		t.Fatal(err)
	}
	s.br = breaker.MustNew(breaker.Config{Name: "catalog", WindowSize: 2, MinCalls: 2, OpenFor: 10 * time.Second,
		Clock: s.clock, Observer: s.m})
	s.bh = bulkhead.MustNew(bulkhead.Config{Name: "catalog", MaxConcurrent: 1, Observer: s.m})
	// A floor of 0.5 retry a second over 20 s and no ratio: 10 retries.
	s.budget = retry.MustNewBudget(retry.BudgetConfig{Ratio: -1, MinPerSecond: 0.5, Window: 20 * time.Second, Clock: s.clock})
	rt := retry.MustNew(retry.Config{Name: "catalog", MaxAttempts: 3, Budget: s.budget, Observer: s.m,
		Rand: func() float64 { return 0 }}) // full jitter at 0: no backoff to wait
	fb := fallback.MustNew(fallback.Config{Name: "catalog", Observer: s.m}, fallback.Value("static", "[]"))
	if err := s.m.Register(s.br, s.bh, rt); err != nil {
		t.Fatal(err)
	}

	pl := spillway.MustNewPipeline(spillway.Policies[string]{Name: "catalog", Fallback: fb, Retry: rt,
		Guards: []spillway.Guard{s.br, s.bh}, Observer: s.m, Clock: s.clock})
	calls := 0
	v, err := pl.Execute(context.Background(), func(context.Context) (string, error) {
		calls++
		s.clock.Advance(50 * time.Millisecond)
		return "", errDown
	})
	if err != nil || v != "[]" || calls != 2 {
		t.Fatalf("pipeline: got %q, %v after %d calls; want the fallback after 2 calls", v, err, calls)
	}

	p, err := s.bh.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Release(nil) })
	if err := s.bh.Execute(context.Background(), func(context.Context) error { return nil }); spillway.ReasonOf(err) != spillway.ReasonBulkheadFull {
		t.Fatalf("full bulkhead: got %v", err)
	}

	to, err := timeout.New(timeout.Config{Name: "catalog", Duration: time.Millisecond, Observer: s.m})
	if err != nil {
		t.Fatal(err)
	}
	if err := to.Run(context.Background(), func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}); spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded {
		t.Fatalf("timeout: got %v", err)
	}

	s.clock.Advance(10 * time.Second)
	return s
}

// scrape serves reg on a loopback server and returns the exposition.
func scrape(t *testing.T, reg *prometheus.Registry) (url string, body []byte) {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	t.Cleanup(srv.Close)
	client := srv.Client()
	t.Cleanup(client.CloseIdleConnections)
	resp, err := client.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v\n%s", resp.StatusCode, err, body)
	}
	return srv.URL + "/metrics", body
}

const scenarioMetrics = `
# HELP spillway_upstream_attempts_total Attempts made to a downstream, by result (success or failure).
# TYPE spillway_upstream_attempts_total counter
spillway_upstream_attempts_total{name="catalog",result="failure"} 2
# HELP spillway_upstream_attempt_duration_seconds Duration of the attempts made to a downstream, in seconds.
# TYPE spillway_upstream_attempt_duration_seconds histogram
spillway_upstream_attempt_duration_seconds_bucket{name="catalog",le="0.01"} 0
spillway_upstream_attempt_duration_seconds_bucket{name="catalog",le="0.1"} 2
spillway_upstream_attempt_duration_seconds_bucket{name="catalog",le="1"} 2
spillway_upstream_attempt_duration_seconds_bucket{name="catalog",le="+Inf"} 2
spillway_upstream_attempt_duration_seconds_sum{name="catalog"} 0.1
spillway_upstream_attempt_duration_seconds_count{name="catalog"} 2
# HELP spillway_retries_total Retries scheduled by retry policies.
# TYPE spillway_retries_total counter
spillway_retries_total{name="catalog"} 2
# HELP spillway_rejected_total Calls refused by a policy before the downstream was called, by reason.
# TYPE spillway_rejected_total counter
spillway_rejected_total{name="catalog",reason="breaker_open"} 1
spillway_rejected_total{name="catalog",reason="bulkhead_full"} 1
# HELP spillway_circuit_transitions_total Circuit breaker state changes, by the states left and entered.
# TYPE spillway_circuit_transitions_total counter
spillway_circuit_transitions_total{from="closed",name="catalog",to="open"} 1
# HELP spillway_fallback_total Degraded answers served by a fallback, by the step that served.
# TYPE spillway_fallback_total counter
spillway_fallback_total{kind="static",name="catalog"} 1
# HELP spillway_timeouts_total Calls cut short by a timeout policy.
# TYPE spillway_timeouts_total counter
spillway_timeouts_total{name="catalog"} 1
# HELP spillway_circuit_state Circuit breaker state: 1 for the current state, 0 for the others.
# TYPE spillway_circuit_state gauge
spillway_circuit_state{name="catalog",state="closed"} 0
spillway_circuit_state{name="catalog",state="disabled"} 0
spillway_circuit_state{name="catalog",state="forced_open"} 0
spillway_circuit_state{name="catalog",state="half_open"} 1
spillway_circuit_state{name="catalog",state="metrics_only"} 0
spillway_circuit_state{name="catalog",state="open"} 0
# HELP spillway_circuit_failure_rate Share of failed calls in the circuit breaker's window, from 0 to 1.
# TYPE spillway_circuit_failure_rate gauge
spillway_circuit_failure_rate{name="catalog"} FAILURE_RATE
# HELP spillway_bulkhead_in_flight Calls running under the bulkhead.
# TYPE spillway_bulkhead_in_flight gauge
spillway_bulkhead_in_flight{name="catalog"} 1
# HELP spillway_bulkhead_limit Concurrent calls the bulkhead admits.
# TYPE spillway_bulkhead_limit gauge
spillway_bulkhead_limit{name="catalog"} 1
# HELP spillway_retry_budget_remaining Retries the retry budget allows right now.
# TYPE spillway_retry_budget_remaining gauge
spillway_retry_budget_remaining{name="catalog"} 8
`

var allNames = []string{
	"spillway_upstream_attempts_total", "spillway_upstream_attempt_duration_seconds", "spillway_retries_total",
	"spillway_rejected_total", "spillway_circuit_transitions_total", "spillway_fallback_total",
	"spillway_timeouts_total", "spillway_circuit_state", "spillway_circuit_failure_rate",
	"spillway_bulkhead_in_flight", "spillway_bulkhead_limit", "spillway_retry_budget_remaining",
}

func TestScrapeRealPolicies(t *testing.T) {
	s := newScenario(t)
	url, _ := scrape(t, s.reg)
	snap := s.br.Snapshot()
	want := strings.Replace(scenarioMetrics, "FAILURE_RATE", strconv.FormatFloat(snap.FailureRate, 'g', -1, 64), 1)
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(want), allNames...); err != nil {
		t.Error(err)
	}
	// The same through the registry, and the pedantic registry's checks.
	if err := testutil.GatherAndCompare(s.reg, strings.NewReader(want), allNames...); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(s.reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestPromtoolCheckMetrics runs Debian's promtool over the scraped
// exposition. Without promtool it skips, unless CI is set: CI installs it.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("promtool not found (%v); CI must install it (Debian package prometheus)", err)
		}
		t.Skipf("promtool not found (%v): install Debian's prometheus package to run this check; it fails instead of skipping when CI is set", err)
	}
	s := newScenario(t)
	_, body := scrape(t, s.reg)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\non:\n%s", err, out, body)
	}
}

func TestBudgetExhaustedIsARejection(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := spillwayprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	clock := spillway.NewManualClock(0)
	// 0.1 retry a second over 10 s: one retry.
	budget := retry.MustNewBudget(retry.BudgetConfig{Ratio: -1, MinPerSecond: 0.1, Window: 10 * time.Second, Clock: clock})
	rt := retry.MustNew(retry.Config{Name: "orders", MaxAttempts: 5, Budget: budget, Observer: m, Rand: func() float64 { return 0 }})
	if err := m.RegisterBudget("orders", budget); err != nil {
		t.Fatal(err)
	}
	err = rt.Run(context.Background(), func(context.Context) error { return errDown })
	if !errors.Is(err, retry.ErrBudgetExhausted) {
		t.Fatalf("got %v, want the budget's refusal", err)
	}
	want := `
# HELP spillway_rejected_total Calls refused by a policy before the downstream was called, by reason.
# TYPE spillway_rejected_total counter
spillway_rejected_total{name="orders",reason="budget_exhausted"} 1
# HELP spillway_retries_total Retries scheduled by retry policies.
# TYPE spillway_retries_total counter
spillway_retries_total{name="orders"} 1
# HELP spillway_retry_budget_remaining Retries the retry budget allows right now.
# TYPE spillway_retry_budget_remaining gauge
spillway_retry_budget_remaining{name="orders"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"spillway_rejected_total", "spillway_retries_total", "spillway_retry_budget_remaining"); err != nil {
		t.Error(err)
	}
}

func TestLabelsStayInClosedSets(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := spillwayprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(spillway.Event{Kind: spillway.EventRejection, Name: "a", Reason: "made_up_reason"})
	m.Observe(spillway.Event{Kind: spillway.EventRejection, Name: "a", Reason: spillway.ReasonThrottled})
	m.Observe(spillway.Event{Kind: spillway.EventTransition, Name: "a", From: "closed", To: "sideways"})
	m.Observe(spillway.Event{Kind: spillway.EventAttempt, Name: "a", Err: context.Canceled})
	m.Observe(spillway.Event{Kind: spillway.EventAttempt, Name: "a"})
	m.Observe(spillway.Event{Kind: spillway.EventFallback, Name: "a", Fallback: "replica"})
	m.Observe(spillway.Event{Kind: spillway.EventFallback, Name: "a", Fallback: "stale-cache"})
	m.Observe(spillway.Event{Kind: spillway.EventFallback, Name: "a", Fallback: "replica"})
	m.Observe(spillway.Event{Kind: spillway.EventKind(99), Name: "a"})
	want := `
# HELP spillway_rejected_total Calls refused by a policy before the downstream was called, by reason.
# TYPE spillway_rejected_total counter
spillway_rejected_total{name="a",reason="other"} 1
spillway_rejected_total{name="a",reason="throttled"} 1
# HELP spillway_circuit_transitions_total Circuit breaker state changes, by the states left and entered.
# TYPE spillway_circuit_transitions_total counter
spillway_circuit_transitions_total{from="closed",name="a",to="other"} 1
# HELP spillway_upstream_attempts_total Attempts made to a downstream, by result (success or failure).
# TYPE spillway_upstream_attempts_total counter
spillway_upstream_attempts_total{name="a",result="failure"} 1
spillway_upstream_attempts_total{name="a",result="success"} 1
# HELP spillway_fallback_total Degraded answers served by a fallback, by the step that served.
# TYPE spillway_fallback_total counter
spillway_fallback_total{kind="replica",name="a"} 2
spillway_fallback_total{kind="stale-cache",name="a"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "spillway_rejected_total",
		"spillway_circuit_transitions_total", "spillway_upstream_attempts_total", "spillway_fallback_total"); err != nil {
		t.Error(err)
	}
}

func TestMaxNamesOverflow(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := spillwayprom.New(reg, spillwayprom.WithMaxNames(3))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c", "d", "a", "e"} {
		m.Observe(spillway.Event{Kind: spillway.EventRetry, Name: name})
	}
	want := `
# HELP spillway_retries_total Retries scheduled by retry policies.
# TYPE spillway_retries_total counter
spillway_retries_total{name="_overflow"} 3
spillway_retries_total{name="a"} 2
spillway_retries_total{name="b"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "spillway_retries_total"); err != nil {
		t.Error(err)
	}
	// Forgetting a name frees its slot.
	m.Forget("b")
	m.Observe(spillway.Event{Kind: spillway.EventRetry, Name: "f"})
	want = `
# HELP spillway_retries_total Retries scheduled by retry policies.
# TYPE spillway_retries_total counter
spillway_retries_total{name="_overflow"} 3
spillway_retries_total{name="a"} 2
spillway_retries_total{name="f"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "spillway_retries_total"); err != nil {
		t.Error(err)
	}
}

func TestForgetRemovesEverySeriesOfAName(t *testing.T) {
	s := newScenario(t)
	other := breaker.MustNew(breaker.Config{Name: "recs", Observer: s.m})
	if err := s.m.RegisterBreaker(other); err != nil {
		t.Fatal(err)
	}
	other.ForceOpen()
	if got := testutil.CollectAndCount(s.m); got == 0 {
		t.Fatal("no series before Forget")
	}
	s.m.Forget("catalog")
	// What is left is recs: its six state series, its failure rate and its
	// transition.
	if got := testutil.CollectAndCount(s.m); got != 8 {
		t.Errorf("after Forget: %d series, want 8 (recs only)", got)
	}
	if got := testutil.CollectAndCount(s.m, "spillway_circuit_transitions_total"); got != 1 {
		t.Errorf("transitions after Forget: %d series, want recs's 1", got)
	}
	// Events of a forgotten name start from zero.
	s.m.Observe(spillway.Event{Kind: spillway.EventRetry, Name: "catalog"})
	want := `
# HELP spillway_retries_total Retries scheduled by retry policies.
# TYPE spillway_retries_total counter
spillway_retries_total{name="catalog"} 1
`
	if err := testutil.GatherAndCompare(s.reg, strings.NewReader(want), "spillway_retries_total"); err != nil {
		t.Error(err)
	}
}

// TestRegisterErrors checks the convention spillwayotel shares: a nil or
// unnamed policy and a name another policy has are errors; the same policy
// again is not, and Forget frees the name.
func TestRegisterErrors(t *testing.T) {
	m, err := spillwayprom.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	bh := bulkhead.MustNew(bulkhead.Config{Name: "x", MaxConcurrent: 3})
	br := breaker.MustNew(breaker.Config{Name: "x"})
	bu := retry.MustNewBudget(retry.BudgetConfig{})
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil breaker", m.RegisterBreaker(nil), "nil breaker"},
		{"nil bulkhead", m.RegisterBulkhead(nil), "nil bulkhead"},
		{"nil budget", m.RegisterBudget("x", nil), "nil budget"},
		{"unnamed breaker", m.RegisterBreaker(breaker.MustNew(breaker.Config{})), "needs a name"},
		{"unnamed bulkhead", m.RegisterBulkhead(bulkhead.MustNew(bulkhead.Config{})), "needs a name"},
		{"unnamed budget", m.RegisterBudget("", bu), "needs a name"},
		{"bulkhead", m.RegisterBulkhead(bh), ""},
		{"same bulkhead", m.RegisterBulkhead(bh), ""},
		{"another bulkhead", m.RegisterBulkhead(bulkhead.MustNew(bulkhead.Config{Name: "x", MaxConcurrent: 7})), `another bulkhead named "x"`},
		{"breaker", m.RegisterBreaker(br), ""},
		{"another breaker", m.RegisterBreaker(breaker.MustNew(breaker.Config{Name: "x"})), `another breaker named "x"`},
		{"budget", m.RegisterBudget("x", bu), ""},
		{"another budget", m.RegisterBudget("x", retry.MustNewBudget(retry.BudgetConfig{})), `another budget named "x"`},
		{"nil policies", m.Register(nil, (*breaker.Breaker)(nil), (*bulkhead.Bulkhead)(nil), (*retry.Policy)(nil)), ""},
	} {
		switch {
		case tc.want == "" && tc.err != nil:
			t.Errorf("%s: %v", tc.name, tc.err)
		case tc.want != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error containing %q", tc.name, tc.err, tc.want)
		}
	}
	want := `
# HELP spillway_bulkhead_limit Concurrent calls the bulkhead admits.
# TYPE spillway_bulkhead_limit gauge
spillway_bulkhead_limit{name="x"} 3
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "spillway_bulkhead_limit"); err != nil {
		t.Error(err)
	}
	m.Forget("x")
	if err := m.RegisterBreaker(breaker.MustNew(breaker.Config{Name: "x"})); err != nil {
		t.Errorf("after Forget: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := spillwayprom.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := spillwayprom.New(reg); !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		t.Errorf("second registration: got %v, want AlreadyRegisteredError", err)
	}
	for name, opt := range map[string]spillwayprom.Option{
		"no buckets":      spillwayprom.WithBuckets(nil),
		"unsorted":        spillwayprom.WithBuckets([]float64{1, 0.5}),
		"zero max names":  spillwayprom.WithMaxNames(0),
		"duplicate bound": spillwayprom.WithBuckets([]float64{1, 1}),
	} {
		if _, err := spillwayprom.New(nil, opt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestConcurrentObserveAndScrape counts events from many goroutines over
// names that appear while scrapes run, then checks the totals.
func TestConcurrentObserveAndScrape(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := spillwayprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b", "c", "d"}
	const goroutines, events = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range events {
				name := names[(g+i)%len(names)]
				m.Observe(spillway.Event{Kind: spillway.EventAttempt, Name: name, Duration: time.Millisecond})
				m.Observe(spillway.Event{Kind: spillway.EventRejection, Name: name, Reason: spillway.ReasonBulkheadFull})
				m.Observe(spillway.Event{Kind: spillway.EventFallback, Name: name, Fallback: names[i%2]})
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	per := goroutines * events / len(names)
	var want strings.Builder
	want.WriteString("# HELP spillway_rejected_total Calls refused by a policy before the downstream was called, by reason.\n# TYPE spillway_rejected_total counter\n")
	for _, n := range names {
		want.WriteString(`spillway_rejected_total{name="` + n + `",reason="bulkhead_full"} ` + strconv.Itoa(per) + "\n")
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()), "spillway_rejected_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.CollectAndCount(m, "spillway_fallback_total"); got != 8 {
		t.Errorf("fallback series: %d, want 8", got)
	}
}

// TestObserveAllocatesNothing checks the steady state of every event kind.
func TestObserveAllocatesNothing(t *testing.T) {
	m, err := spillwayprom.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range benchEvents {
		m.Observe(be.e) // creates the series
		if n := testing.AllocsPerRun(100, func() { m.Observe(be.e) }); n != 0 {
			t.Errorf("%s: %v allocations per Observe", be.name, n)
		}
	}
}

var benchEvents = []struct {
	name string
	e    spillway.Event
}{
	{"attempt-success", spillway.Event{Kind: spillway.EventAttempt, Policy: "pipeline", Name: "catalog", Duration: 3 * time.Millisecond}},
	{"attempt-failure", spillway.Event{Kind: spillway.EventAttempt, Policy: "pipeline", Name: "catalog", Duration: 3 * time.Millisecond, Err: errDown}},
	{"retry", spillway.Event{Kind: spillway.EventRetry, Policy: "retry", Name: "catalog", Attempt: 1, Err: errDown}},
	{"rejection", spillway.Event{Kind: spillway.EventRejection, Policy: "breaker", Name: "catalog", Reason: spillway.ReasonBreakerOpen}},
	{"transition", spillway.Event{Kind: spillway.EventTransition, Policy: "breaker", Name: "catalog", From: "closed", To: "open"}},
	{"fallback", spillway.Event{Kind: spillway.EventFallback, Policy: "fallback", Name: "catalog", Fallback: "static", Err: errDown}},
	{"timeout", spillway.Event{Kind: spillway.EventTimeout, Policy: "timeout", Name: "catalog", Duration: time.Second}},
	{"hedge", spillway.Event{Kind: spillway.EventHedge, Policy: "hedge", Name: "catalog", Attempt: 1, Delay: time.Millisecond}},
	{"hedge-won", spillway.Event{Kind: spillway.EventHedgeWon, Policy: "hedge", Name: "catalog", Attempt: 1, Duration: time.Millisecond}},
}

func BenchmarkObserve(b *testing.B) {
	m, err := spillwayprom.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, be := range benchEvents {
		m.Observe(be.e)
		b.Run(be.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.Observe(be.e)
			}
		})
	}
	b.Run("parallel-attempts", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Observe(benchEvents[0].e)
			}
		})
	})
}

// TestForgetDuringObserve forgets names while events of those names arrive:
// nothing races, and the names that were not forgotten keep every count.
func TestForgetDuringObserve(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := spillwayprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	const events = 2000
	var wg sync.WaitGroup
	for _, name := range []string{"kept", "churned"} {
		wg.Go(func() {
			for range events {
				m.Observe(spillway.Event{Kind: spillway.EventRetry, Name: name})
				m.Observe(spillway.Event{Kind: spillway.EventFallback, Name: name, Fallback: "static"})
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			m.Forget("churned")
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	want := `
# HELP spillway_retries_total Retries scheduled by retry policies.
# TYPE spillway_retries_total counter
spillway_retries_total{name="kept"} 2000
`
	m.Forget("churned")
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "spillway_retries_total"); err != nil {
		t.Error(err)
	}
}
