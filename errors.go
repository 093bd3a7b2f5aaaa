package spillway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Error is the error every policy returns for a failure it makes itself. Each
// policy package defines one sentinel (breaker.ErrOpen, bulkhead.ErrFull, ...)
// that errors.Is matches through Err, and Cause keeps the underlying error (the
// last attempt's failure, context.DeadlineExceeded, ...) for errors.Is/As too.
//
// Policies preallocate the Errors of their hot rejection paths, so an Error
// must be treated as immutable.
type Error struct {
	// Code is the reason code; see ReasonOf.
	Code Reason
	// Policy names the kind of policy: "breaker", "bulkhead", "retry", "timeout", "budget".
	Policy string
	// Name is the policy instance's name ("" when it has none).
	Name string
	// RetryAfter, when positive, is how long the policy expects the condition to
	// last: for an open breaker, the open duration as of when it opened.
	RetryAfter time.Duration
	// Err is the policy's sentinel, matched by errors.Is.
	Err error
	// Cause is the underlying error, if any.
	Cause error
}

// Reason implements Reasoner.
func (e *Error) Reason() Reason { return e.Code }

// Unwrap returns the sentinel and the cause, so errors.Is and errors.As see both.
func (e *Error) Unwrap() []error {
	switch {
	case e.Err == nil && e.Cause == nil:
		return nil
	case e.Cause == nil:
		return []error{e.Err}
	case e.Err == nil:
		return []error{e.Cause}
	}
	return []error{e.Err, e.Cause}
}

// Error reads `spillway: policy "name": err (retry after d): cause`. When
// Cause already holds an Error that reads the same (same reason, policy,
// name, hint and sentinel), it is the cause's text alone, so that nothing is
// said twice.
func (e *Error) Error() string {
	if e.Cause != nil && restates(e.Cause, e) {
		// The cause already says what e says, typically because the call
		// returned its context's cause (an HTTP client's error wraps
		// context.Cause, which is the timeout's own Error): say it once.
		return e.Cause.Error()
	}
	b := make([]byte, 0, 64)
	b = append(b, "spillway: "...)
	b = append(b, e.Policy...)
	if e.Name != "" {
		b = append(b, ' ')
		b = strconv.AppendQuote(b, e.Name)
	}
	b = append(b, ": "...)
	if e.Err != nil {
		b = append(b, e.Err.Error()...)
	} else {
		b = append(b, e.Code...)
	}
	if e.RetryAfter > 0 {
		b = append(b, " (retry after "...)
		b = append(b, e.RetryAfter.String()...)
		b = append(b, ')')
	}
	if e.Cause != nil {
		b = append(b, ": "...)
		b = append(b, e.Cause.Error()...)
	}
	return string(b)
}

// restates reports whether err's chain holds an *Error that reads as e
// does without its Cause: the same reason, policy, name, hint and sentinel.
func restates(err error, e *Error) bool {
	for err != nil {
		if c, ok := err.(*Error); ok && c.Code == e.Code && c.Policy == e.Policy && c.Name == e.Name &&
			c.RetryAfter == e.RetryAfter && errors.Is(c.Err, e.Err) {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				if restates(x, e) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// permanentError marks an error as not retryable.
type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

// Permanent marks err as permanent: no retry policy retries it. It returns nil
// for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error in its chain, was marked with Permanent.
func IsPermanent(err error) bool {
	_, ok := errors.AsType[*permanentError](err)
	return ok
}

// retryAfterError carries a delay hint, such as a server's Retry-After.
type retryAfterError struct {
	err   error
	delay time.Duration
}

func (r *retryAfterError) Error() string { return r.err.Error() }
func (r *retryAfterError) Unwrap() error { return r.err }

// WithRetryAfter attaches a delay hint to err (a server's Retry-After): a retry
// policy waits at least that long before the next attempt, capped at its
// maximum backoff. It returns nil for a nil err.
func WithRetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, delay: d}
}

// RetryAfterOf returns the delay hint carried by err: one attached with
// WithRetryAfter, or the RetryAfter of a spillway *Error. ok is false when err
// carries none.
func RetryAfterOf(err error) (d time.Duration, ok bool) {
	if ra, ok := errors.AsType[*retryAfterError](err); ok {
		return ra.delay, true
	}
	if e, ok := errors.AsType[*Error](err); ok && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// PanicError is the error a permit is released with when the call panicked.
// The panic itself is re-raised after every permit is released.
type PanicError struct{ Value any }

func (p *PanicError) Error() string { return fmt.Sprintf("spillway: call panicked: %v", p.Value) }

// ErrCallerDone marks the outcome of a call that ended because the caller's
// own context was cancelled or reached its deadline. The Engine (every
// Pipeline, HTTP transport and gRPC interceptor) releases its guards with
// such an outcome (see CallerDone and Engine.Judge), and breakers ignore it:
// the caller gave up, which says nothing about the downstream.
var ErrCallerDone = errors.New("the caller's context ended")

// callerDoneError wraps a call's error with ErrCallerDone.
type callerDoneError struct{ err error }

func (c *callerDoneError) Error() string {
	return "spillway: the caller's context ended: " + c.err.Error()
}
func (c *callerDoneError) Unwrap() []error { return []error{ErrCallerDone, c.err} }

// CallerDone marks err as the caller's own doing: errors.Is(result,
// ErrCallerDone) holds and err stays reachable. It returns nil for a nil err.
func CallerDone(err error) error {
	if err == nil {
		return nil
	}
	return &callerDoneError{err}
}

// IsCallerDone reports whether err is the caller's own cancellation or
// deadline: ctx is done and err is (or wraps) the context's error, and no
// policy made it. Such outcomes are never retried and never counted as
// failures by a breaker.
func IsCallerDone(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() == nil {
		return false
	}
	if _, ok := errors.AsType[*Error](err); ok {
		return false
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
