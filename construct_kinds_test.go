package spillway_test

import (
	"strings"
	"testing"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
)

// The real breaker and bulkhead say their kind, so swapping them in
// Policies is an error at construction, not a surprise in production.
func TestNewPipelineRefusesSwappedBreakerAndBulkhead(t *testing.T) {
	br := breaker.MustNew(breaker.Config{Name: "catalog"})
	bh := bulkhead.MustNew(bulkhead.Config{Name: "catalog"})
	if _, err := spillway.NewPipeline(spillway.Policies[string]{Breaker: bh, Bulkhead: br}); err == nil ||
		!strings.Contains(err.Error(), "Breaker") {
		t.Fatalf("swapped guards: err %v, want an error naming Breaker", err)
	}
	if _, err := spillway.NewPipeline(spillway.Policies[string]{Breaker: br, Bulkhead: bh}); err != nil {
		t.Fatalf("guards in place: %v", err)
	}
}
