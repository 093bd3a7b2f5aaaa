package spillwayprom_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/spillwayprom"
	"github.com/spillway-dev/spillway/throttle"
)

// overload is a pipeline "catalog" with every overload policy — a rate
// limiter, a throttle and an adaptive bulkhead as its guards, a hedging
// policy — whose only wiring to the metrics is Policies.Observer and each
// policy's Config.Observer.
type overload struct {
	clk    *spillway.ManualClock
	refuse atomic.Bool // the throttle refuses whenever its probability is above 0
	rl     *ratelimit.Limiter
	th     *throttle.Throttler
	bh     *bulkhead.Bulkhead
	hp     *hedge.Policy
	pl     *spillway.Pipeline[string]
}

func newOverload(t *testing.T, obs spillway.Observer) *overload {
	t.Helper()
	o := &overload{clk: spillway.NewManualClock(time.Second)}
	o.rl = ratelimit.MustNew(ratelimit.Config{Name: "catalog", Limit: 10, Burst: 5, Clock: o.clk, Observer: obs})
	o.th = throttle.MustNew(throttle.Config{Name: "catalog", Clock: o.clk, Observer: obs, Rand: func() float64 {
		if o.refuse.Load() {
			return 0
		}
		return 0.999 // above MaxRejectionRate: never refused
	}})
	o.bh = bulkhead.MustNew(bulkhead.Config{Name: "catalog", MaxConcurrent: 10, Adaptive: bulkhead.Adaptive{
		Algorithm: bulkhead.AIMD, InitialLimit: 10, MinSamples: 1, Window: time.Millisecond, Clock: o.clk}})
	o.hp = hedge.MustNew(hedge.Config{Name: "catalog", Delay: time.Millisecond, Observer: obs, Clock: o.clk})
	var err error
	// The rate limiter and the throttle come before the bulkhead, so that
	// their refusals never reach it.
	o.pl, err = spillway.NewPipeline(spillway.Policies[string]{Guards: []spillway.Guard{o.rl, o.th, o.bh},
		Hedge: o.hp, Observer: obs, Name: "catalog"})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// run drives the policies to known values: a dropped call (100ms, a
// timeout) that takes the adaptive limit from 10 to 9 and gives the
// throttle a failure, a call the throttle refuses, four
// accepted calls that empty the rate limiter, one it refuses, then one
// hedged call whose hedge wins.
func (o *overload) run(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ok := func(context.Context) (string, error) { return "ok", nil }
	_, err := o.pl.Execute(ctx, func(context.Context) (string, error) {
		o.clk.Advance(100 * time.Millisecond) // one token back, past the bulkhead's window
		return "", context.DeadlineExceeded
	})
	if spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded {
		t.Fatalf("dropped call: %v", err)
	}
	o.refuse.Store(true)
	if _, err := o.pl.Execute(ctx, ok); !errors.Is(err, throttle.ErrThrottled) {
		t.Fatalf("throttled call: %v", err)
	}
	o.refuse.Store(false)
	for i := range 4 {
		if _, err := o.pl.Execute(ctx, ok); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if _, err := o.pl.Execute(ctx, ok); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("rate-limited call: %v", err)
	}
	if got := o.bh.Limit(); got != 9 {
		t.Fatalf("adaptive limit %d, want 9", got)
	}
	o.hedged(t)
}

// hedged makes one hedged call whose primary hangs until its hedge wins,
// with two tokens in the rate limiter: one for each attempt.
func (o *overload) hedged(t *testing.T) {
	t.Helper()
	o.clk.Advance(200 * time.Millisecond) // two tokens: the primary's and the hedge's
	var calls atomic.Int32
	r := o.pl.ExecuteHedged(context.Background(), func(ctx context.Context) (string, error) {
		if calls.Add(1) == 1 {
			<-ctx.Done()
			return "", ctx.Err()
		}
		return "hedge", nil
	})
	if r.Err != nil || r.Value != "hedge" {
		t.Fatalf("hedged call: %q, %v", r.Value, r.Err)
	}
}

// TestPipelineExportsTheOverloadPolicies: a pipeline whose Observer is the
// metrics exports the rate limiter's tokens, the throttle's probability and
// window, the adaptive bulkhead's moved limit and the hedging policy's delay
// and hedges, and counts the rate limiter's and the throttle's refusals as
// throttled rejections under the policies' name; no Register call.
func TestPipelineExportsTheOverloadPolicies(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := spillwayprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	o := newOverload(t, m)
	o.run(t)

	// One refusal each from the throttle and the rate limiter. The
	// throttle's window holds the dropped call, its refusal, the four
	// accepted calls and the hedged call's winner (its loser, cut short, is
	// not counted).
	want := `
# HELP spillway_bulkhead_in_flight Calls running under the bulkhead.
# TYPE spillway_bulkhead_in_flight gauge
spillway_bulkhead_in_flight{name="catalog"} 0
# HELP spillway_bulkhead_limit Concurrent calls the bulkhead admits.
# TYPE spillway_bulkhead_limit gauge
spillway_bulkhead_limit{name="catalog"} 9
# HELP spillway_hedge_delay_seconds The delay after which the hedging policy hedges an unanswered attempt (absent until it has one).
# TYPE spillway_hedge_delay_seconds gauge
spillway_hedge_delay_seconds{name="catalog"} 0.001
# HELP spillway_hedges_total Hedges of slow attempts, by outcome: sent, won (answered first).
# TYPE spillway_hedges_total counter
spillway_hedges_total{name="catalog",outcome="sent"} 1
spillway_hedges_total{name="catalog",outcome="won"} 1
# HELP spillway_rate_limit_tokens Tokens the rate limiter's bucket holds now (negative while callers wait for tokens to come).
# TYPE spillway_rate_limit_tokens gauge
spillway_rate_limit_tokens{name="catalog"} 0
# HELP spillway_rejected_total Calls refused by a policy before the downstream was called, by reason.
# TYPE spillway_rejected_total counter
spillway_rejected_total{name="catalog",reason="throttled"} 2
# HELP spillway_throttle_rejection_probability The probability with which the client-side throttle refuses a call now.
# TYPE spillway_throttle_rejection_probability gauge
spillway_throttle_rejection_probability{name="catalog"} 0
# HELP spillway_throttle_window_accepts Requests the downstream accepted in the client-side throttle's window.
# TYPE spillway_throttle_window_accepts gauge
spillway_throttle_window_accepts{name="catalog"} 5
# HELP spillway_throttle_window_requests Requests (refused ones included) in the client-side throttle's window.
# TYPE spillway_throttle_window_requests gauge
spillway_throttle_window_requests{name="catalog"} 7
`
	families := []string{"spillway_bulkhead_in_flight", "spillway_bulkhead_limit", "spillway_hedge_delay_seconds",
		"spillway_hedges_total", "spillway_rate_limit_tokens", "spillway_rejected_total",
		"spillway_throttle_rejection_probability", "spillway_throttle_window_accepts", "spillway_throttle_window_requests"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), families...); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// The gauges are read at scrape time: the throttle's probability after the
// failures of one scrape, the adaptive limit after another drop.
func TestOverloadGaugesAreReadAtScrapeTime(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := spillwayprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	o := newOverload(t, m)
	fail := func(context.Context) (string, error) {
		o.clk.Advance(100 * time.Millisecond)
		return "", context.DeadlineExceeded
	}
	for range 2 {
		if _, err := o.pl.Execute(context.Background(), fail); err == nil {
			t.Fatal("no error")
		}
	}
	// Two failures, no accept: (2 − 2·0) / (2 + 1); two drops: 10 → 9 → 8.
	want := `
# HELP spillway_bulkhead_limit Concurrent calls the bulkhead admits.
# TYPE spillway_bulkhead_limit gauge
spillway_bulkhead_limit{name="catalog"} 8
# HELP spillway_throttle_rejection_probability The probability with which the client-side throttle refuses a call now.
# TYPE spillway_throttle_rejection_probability gauge
spillway_throttle_rejection_probability{name="catalog"} ` + strconv.FormatFloat(2.0/3, 'g', -1, 64) + `
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"spillway_bulkhead_limit", "spillway_throttle_rejection_probability"); err != nil {
		t.Error(err)
	}
	// No hedge delay series while the policy has none to report.
	lazy := hedge.MustNew(hedge.Config{Name: "lazy"})
	if err := m.RegisterHedge(lazy); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m, "spillway_hedge_delay_seconds"); n != 1 {
		t.Errorf("%d hedge delay series, want only catalog's", n)
	}
}

// Forget drops the new policies' gauges and the hedges counter with the
// rest of a name's series.
func TestForgetDropsTheOverloadPolicies(t *testing.T) {
	m, err := spillwayprom.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	o := newOverload(t, m)
	o.run(t)
	m.Forget("catalog")
	for _, family := range []string{"spillway_rate_limit_tokens", "spillway_throttle_rejection_probability",
		"spillway_throttle_window_requests", "spillway_throttle_window_accepts", "spillway_hedge_delay_seconds",
		"spillway_hedges_total", "spillway_bulkhead_limit"} {
		if n := testutil.CollectAndCount(m, family); n != 0 {
			t.Errorf("%s: %d series after Forget", family, n)
		}
	}
	// The name is free again: new policies register under it.
	if err := m.Register(ratelimit.MustNew(ratelimit.Config{Name: "catalog", Limit: 1}),
		throttle.MustNew(throttle.Config{Name: "catalog"}), hedge.MustNew(hedge.Config{Name: "catalog"})); err != nil {
		t.Error(err)
	}
}
