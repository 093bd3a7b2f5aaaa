package spillway

import (
	"context"
	"errors"
)

// Reason is a short, stable code that explains why a call failed. It is used
// verbatim in the gateway's Spillway-Reason header, in its JSON error body and
// as a metric label, so the set is small and closed.
type Reason string

// The reason codes of the brief. ReasonCanceled is an addition: the caller
// went away (nginx's 499), which is never counted against a downstream.
const (
	ReasonBreakerOpen       Reason = "breaker_open"
	ReasonBulkheadFull      Reason = "bulkhead_full"
	ReasonBudgetExhausted   Reason = "budget_exhausted"
	ReasonDeadlineExceeded  Reason = "deadline_exceeded"
	ReasonNoHealthyInstance Reason = "no_healthy_instance"
	ReasonUpstreamError     Reason = "upstream_error"
	ReasonThrottled         Reason = "throttled"
	ReasonCanceled          Reason = "canceled"
)

// Reasons lists every reason code, for metric pre-registration and docs.
var Reasons = []Reason{
	ReasonBreakerOpen, ReasonBulkheadFull, ReasonBudgetExhausted, ReasonDeadlineExceeded,
	ReasonNoHealthyInstance, ReasonUpstreamError, ReasonThrottled, ReasonCanceled,
}

// Reasoner is implemented by errors that carry a reason code.
type Reasoner interface {
	Reason() Reason
}

// reasonError is an error that carries a reason; errors.AsType needs the
// error constraint, which Reasoner alone does not have.
type reasonError interface {
	error
	Reasoner
}

// ReasonOf returns the reason that explains err:
//   - "" for a nil error;
//   - the reason of the first error in err's chain that implements Reasoner;
//   - ReasonDeadlineExceeded for a context.DeadlineExceeded from elsewhere;
//   - ReasonCanceled for context.Canceled;
//   - ReasonUpstreamError for any other error (the downstream's own failure).
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	if r, ok := errors.AsType[reasonError](err); ok {
		if reason := r.Reason(); reason != "" {
			return reason
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	}
	return ReasonUpstreamError
}

// IsRejection reports whether err is a local rejection made before the
// downstream was called: an open breaker, a full bulkhead, an exhausted budget,
// a throttle or no healthy instance. Breakers ignore such outcomes and retries
// never retry them.
func IsRejection(err error) bool {
	e, ok := errors.AsType[*Error](err)
	if !ok {
		return false
	}
	switch e.Code {
	case ReasonBreakerOpen, ReasonBulkheadFull, ReasonBudgetExhausted, ReasonThrottled, ReasonNoHealthyInstance:
		return true
	}
	return false
}
