package spillwayprom_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayprom"
)

// A pipeline whose Observer is the metrics (alone or among Observers)
// registers its breaker's, bulkhead's and budget's gauges itself: no
// Register call per policy.
func TestPipelineRegistersItsPoliciesGauges(t *testing.T) {
	m, err := spillwayprom.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hooks := &spillway.Hooks{OnOpen: func(spillway.Event) {}}
	br := breaker.MustNew(breaker.Config{Name: "catalog"})
	bh := bulkhead.MustNew(bulkhead.Config{Name: "catalog", MaxConcurrent: 4})
	rp := retry.MustNew(retry.Config{Name: "catalog"})
	spillway.MustNewPipeline(spillway.Policies[string]{Retry: rp, Breaker: br, Bulkhead: bh,
		Observer: spillway.Observers{hooks, m}, Name: "catalog"})
	want := `
# HELP spillway_bulkhead_limit Concurrent calls the bulkhead admits.
# TYPE spillway_bulkhead_limit gauge
spillway_bulkhead_limit{name="catalog"} 4
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "spillway_bulkhead_limit"); err != nil {
		t.Error(err)
	}
	for _, family := range []string{"spillway_circuit_state", "spillway_retry_budget_remaining"} {
		if n := testutil.CollectAndCount(m, family); n == 0 {
			t.Errorf("no %s series: the pipeline did not register its policies", family)
		}
	}

	// Another breaker under a name the metrics already hold is an error at
	// construction, not a gauge silently showing the wrong breaker.
	_, err = spillway.NewPipeline(spillway.Policies[string]{Breaker: breaker.MustNew(breaker.Config{Name: "catalog"}), Observer: m})
	if err == nil || !strings.Contains(err.Error(), `another breaker named "catalog"`) {
		t.Fatalf("err %v, want a name conflict", err)
	}
}

// A pipeline whose Observer is the metrics counts its policies' events
// (here the breaker's transition and rejection, the retries) although the
// policies have no Observer: the one line instruments everything. The
// bulkhead has the metrics as its own Observer too, and its refusal is
// counted once.
func TestPipelineCountsItsPoliciesEvents(t *testing.T) {
	m, err := spillwayprom.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	br := breaker.MustNew(breaker.Config{Name: "catalog", ConsecutiveFailures: 2, OpenFor: time.Hour})
	bh := bulkhead.MustNew(bulkhead.Config{Name: "catalog", MaxConcurrent: 1, Observer: m})
	rp := retry.MustNew(retry.Config{Name: "catalog", MaxAttempts: 2, Initial: time.Nanosecond, NoBudget: true})
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Retry: rp, Breaker: br, Bulkhead: bh, Observer: m, Name: "catalog"})
	ctx := context.Background()
	// A call that holds the bulkhead's slot makes the nested one refused.
	_, _ = pl.Execute(ctx, func(context.Context) (string, error) {
		_, _ = pl.Execute(ctx, func(context.Context) (string, error) { return "", nil })
		return "", nil
	})
	_, _ = pl.Execute(ctx, func(context.Context) (string, error) { return "", errors.New("down") }) // opens the breaker
	_, _ = pl.Execute(ctx, func(context.Context) (string, error) { return "", nil })                // refused
	want := `
# HELP spillway_circuit_transitions_total Circuit breaker state changes, by the states left and entered.
# TYPE spillway_circuit_transitions_total counter
spillway_circuit_transitions_total{from="closed",name="catalog",to="open"} 1
# HELP spillway_rejected_total Calls refused by a policy before the downstream was called, by reason.
# TYPE spillway_rejected_total counter
spillway_rejected_total{name="catalog",reason="breaker_open"} 1
spillway_rejected_total{name="catalog",reason="bulkhead_full"} 1
# HELP spillway_retries_total Retries scheduled by retry policies.
# TYPE spillway_retries_total counter
spillway_retries_total{name="catalog"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want),
		"spillway_circuit_transitions_total", "spillway_rejected_total", "spillway_retries_total"); err != nil {
		t.Error(err)
	}
}
