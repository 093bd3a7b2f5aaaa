package spillwayprom_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/internal/observetest"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/spillwayprom"
	"github.com/spillway-dev/spillway/throttle"
)

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
	o := observetest.NewOverload(t, m)
	o.Run(t)

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
	o := observetest.NewOverload(t, m)
	fail := func(context.Context) (string, error) {
		o.Clock.Advance(100 * time.Millisecond)
		return "", context.DeadlineExceeded
	}
	for range 2 {
		if _, err := o.PL.Execute(context.Background(), fail); err == nil {
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
	o := observetest.NewOverload(t, m)
	o.Run(t)
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
