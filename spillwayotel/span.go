package spillwayotel

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/spillway-dev/spillway"
)

// The names of the span events.
const (
	EventNameRetry     = "spillway.retry"
	EventNameRejection = "spillway.rejection"
	EventNameFallback  = "spillway.fallback"
	EventNameHedge     = "spillway.hedge"
	EventNameHedgeWon  = "spillway.hedge_won"
)

// recordingSpan returns the call's span when span events are on and it
// records, so that a call that is not traced pays one context lookup.
func (o *Observer) recordingSpan(ctx context.Context) (trace.Span, bool) {
	if !o.cfg.spanEvents {
		return nil, false
	}
	span := trace.SpanFromContext(ctx)
	return span, span.IsRecording()
}

// retryEvent adds a spillway.retry event for a scheduled retry.
func (o *Observer) retryEvent(ctx context.Context, e spillway.Event) {
	span, ok := o.recordingSpan(ctx)
	if !ok {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs,
		spanPolicy.String(e.Policy),
		spanName.String(e.Name),
		spanAttempt.Int(e.Attempt),
		spanDelay.Float64(e.Delay.Seconds()),
		spanReason.String(string(spillway.ReasonOf(e.Err))))
	attrs = o.message(attrs, e.Err)
	span.AddEvent(EventNameRetry, trace.WithAttributes(attrs...))
}

// rejectionEvent adds a spillway.rejection event for a refused call.
func (o *Observer) rejectionEvent(ctx context.Context, e spillway.Event, reason spillway.Reason) {
	span, ok := o.recordingSpan(ctx)
	if !ok {
		return
	}
	span.AddEvent(EventNameRejection, trace.WithAttributes(
		spanPolicy.String(e.Policy),
		spanName.String(e.Name),
		spanReason.String(string(reason))))
}

// fallbackEvent adds a spillway.fallback event for a served fallback.
func (o *Observer) fallbackEvent(ctx context.Context, e spillway.Event) {
	span, ok := o.recordingSpan(ctx)
	if !ok {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs,
		spanPolicy.String(e.Policy),
		spanName.String(e.Name),
		spanKind.String(e.Fallback),
		spanReason.String(string(spillway.ReasonOf(e.Err))))
	attrs = o.message(attrs, e.Err)
	span.AddEvent(EventNameFallback, trace.WithAttributes(attrs...))
}

// hedgeEvent adds a spillway.hedge event for a hedge sent (with the delay
// the previous attempt went unanswered) or a spillway.hedge_won event for
// a hedge that answered first (with the call's latency).
func (o *Observer) hedgeEvent(ctx context.Context, name string, e spillway.Event) {
	span, ok := o.recordingSpan(ctx)
	if !ok {
		return
	}
	took := spanDelay.Float64(e.Delay.Seconds())
	if e.Kind == spillway.EventHedgeWon {
		took = spanDuration.Float64(e.Duration.Seconds())
	}
	span.AddEvent(name, trace.WithAttributes(
		spanPolicy.String(e.Policy),
		spanName.String(e.Name),
		spanAttempt.Int(e.Attempt),
		took))
}

// message appends err's text as error.message, unless err is nil or messages
// are off.
func (o *Observer) message(attrs []attribute.KeyValue, err error) []attribute.KeyValue {
	if err == nil || !o.cfg.errorMessages {
		return attrs
	}
	return append(attrs, spanMessage.String(err.Error()))
}
