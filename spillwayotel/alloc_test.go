//go:build !race

package spillwayotel_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/spillway-dev/spillway"
)

// Once a name's attribute sets exist, observing allocates nothing in this
// package nor, for these instruments, in the SDK; an unsampled span costs no
// span event either.
func TestObserveAllocatesNothing(t *testing.T) {
	h := newHarness(t)
	tp, _ := newTracer(t, sdktrace.WithSampler(sdktrace.NeverSample()))
	unsampled, span := tp.Tracer("test").Start(context.Background(), "unsampled")
	defer span.End()
	for _, e := range []spillway.Event{
		{Kind: spillway.EventAttempt, Name: "catalog", Duration: time.Millisecond},
		{Kind: spillway.EventAttempt, Name: "catalog", Duration: time.Millisecond, Err: errDown},
		{Kind: spillway.EventRetry, Context: unsampled, Name: "catalog", Attempt: 1, Err: errDown},
		{Kind: spillway.EventRejection, Context: unsampled, Name: "catalog", Reason: spillway.ReasonBulkheadFull},
		{Kind: spillway.EventTransition, Name: "catalog", From: "closed", To: "open"},
		{Kind: spillway.EventFallback, Context: unsampled, Name: "catalog", Fallback: "static", Err: errDown},
		{Kind: spillway.EventTimeout, Name: "catalog", Duration: time.Second},
		{Kind: spillway.EventHedge, Context: unsampled, Name: "catalog", Attempt: 1, Delay: time.Millisecond},
		{Kind: spillway.EventHedgeWon, Context: unsampled, Name: "catalog", Attempt: 1, Duration: time.Millisecond},
	} {
		h.obs.Observe(e) // builds the attribute set
		if n := testing.AllocsPerRun(200, func() { h.obs.Observe(e) }); n != 0 {
			t.Errorf("Observe(%v) allocates %v times", e.Kind, n)
		}
	}
}
