package spillway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

// kindedGuard is a guard that says its kind, as breaker.Breaker and
// bulkhead.Bulkhead do through spillway.Kinded.
type kindedGuard struct {
	nopGuard
	kind string
}

func (g kindedGuard) PolicyKind() string { return g.kind }

// nilBulkhead stands for a *bulkhead.Bulkhead that was never built.
type nilBulkhead struct{ limit int }

func (b *nilBulkhead) Acquire(context.Context) (spillway.Permit, error) {
	_ = b.limit // what a real guard does first: read its own state
	return spillway.Permit{}, nil
}

func TestNewPipelineRefusesWhatCannotWork(t *testing.T) {
	var typedNil *nilBulkhead
	breakerGuard, bulkheadGuard := kindedGuard{kind: "breaker"}, kindedGuard{kind: "bulkhead"}
	second, threeSeconds := &settableTimeout{d: time.Second, name: "attempt"}, &settableTimeout{d: 3 * time.Second, name: "total"}
	tests := []struct {
		name string
		p    spillway.Policies[int]
		want string // "" builds
	}{
		{"the standard pipeline", spillway.Policies[int]{Retry: nopRetrier{}, Breaker: breakerGuard, Bulkhead: bulkheadGuard,
			Total: threeSeconds, Attempt: second}, ""},
		{"typed nil bulkhead", spillway.Policies[int]{Bulkhead: typedNil},
			"spillway: Policies.Bulkhead is a nil *spillway_test.nilBulkhead: leave the field unset for no policy"},
		{"typed nil guard", spillway.Policies[int]{Guards: []spillway.Guard{nopGuard{}, typedNil}}, "Policies.Guards[1] is a nil"},
		{"typed nil retrier", spillway.Policies[int]{Retry: (*countingRetrier)(nil)}, "Policies.Retry is a nil"},
		{"guards swapped", spillway.Policies[int]{Breaker: bulkheadGuard, Bulkhead: breakerGuard},
			"spillway: Policies.Breaker is a bulkhead: swap Breaker and Bulkhead"},
		{"breaker as bulkhead", spillway.Policies[int]{Bulkhead: breakerGuard}, "Policies.Bulkhead is a breaker"},
		{"one timeout in both roles", spillway.Policies[int]{Total: second, Attempt: second}, "are the same Timeout"},
		{"two timeouts of one name", spillway.Policies[int]{Total: threeSeconds, Attempt: &settableTimeout{d: time.Second, name: "total"}},
			`are both named "total"`},
		{"timeouts swapped", spillway.Policies[int]{Retry: nopRetrier{}, Total: second, Attempt: threeSeconds},
			"attempt timeout 3s >= total timeout 1s: a timed-out attempt leaves no time for a retry"},
		{"attempt equal to total", spillway.Policies[int]{Retry: nopRetrier{}, Total: threeSeconds,
			Attempt: &settableTimeout{d: 3 * time.Second, name: "attempt"}}, "attempt timeout 3s >= total timeout 3s"},
		{"no retry: nothing to leave room for", spillway.Policies[int]{Total: second, Attempt: threeSeconds}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, err := spillway.NewPipeline(tt.p)
			if tt.want == "" {
				if err != nil || pl == nil {
					t.Fatalf("NewPipeline = %v, %v", pl, err)
				}
				return
			}
			if pl != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewPipeline = %v, %v; want an error with %q", pl, err, tt.want)
			}
		})
	}
}
