package spillwayprom_test

import (
	"strings"
	"testing"

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
