package spillwaygrpc

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
)

// PushbackKey is the trailer in which a server tells a client when to retry,
// in milliseconds (gRPC's retry design, A6).
const PushbackKey = "grpc-retry-pushback-ms"

// ReasonKey is the trailer in which the server interceptors name the reason
// of a call they refused, as the gateway's Spillway-Reason header does.
const ReasonKey = "spillway-reason"

// statuser is implemented by errors that carry a gRPC status.
type statuser interface {
	error
	GRPCStatus() *status.Status
}

// codeOf returns the code of the status err carries, as status.Code does but
// without copying a wrapped status: codes.Unknown when it carries none.
func codeOf(err error) codes.Code {
	if s, ok := err.(statuser); ok {
		return s.GRPCStatus().Code()
	}
	if s, ok := errors.AsType[statuser](err); ok {
		return s.GRPCStatus().Code()
	}
	return codes.Unknown
}

// Classify is the default Config.Classify: how a call's error counts for the
// breaker.
//   - spillway.ErrCallerDone-marked errors and local rejections are Ignored:
//     the downstream is not to blame, or was not called;
//   - INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED,
//     ALREADY_EXISTS, FAILED_PRECONDITION, OUT_OF_RANGE, UNIMPLEMENTED and
//     CANCELED are a Success: the server answered, and a half-open breaker
//     may close on such answers (an Ignored probe would prove nothing);
//   - everything else is a Failure: UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED,
//     DEADLINE_EXCEEDED (the attempt timeout's included), INTERNAL, UNKNOWN,
//     DATA_LOSS and errors that carry no status.
func Classify(err error) spillway.Outcome {
	if err == nil {
		return spillway.Success
	}
	c := codeOf(err)
	if c == codes.Unknown && (errors.Is(err, spillway.ErrCallerDone) || spillway.IsRejection(err)) {
		return spillway.Ignored
	}
	return ClassifyCode(c)
}

// ClassifyCode is how Classify counts a status code the server answered
// with: INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED,
// ALREADY_EXISTS, FAILED_PRECONDITION, OUT_OF_RANGE, UNIMPLEMENTED, CANCELED
// (and OK) are a Success, every other code a Failure. The gateway counts the
// grpc-status of a proxied call with it.
func ClassifyCode(c codes.Code) spillway.Outcome {
	switch c {
	case codes.OK, codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated,
		codes.AlreadyExists, codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented, codes.Canceled:
		return spillway.Success
	}
	return spillway.Failure
}

// Retryable is the default Config.Retryable: UNAVAILABLE, RESOURCE_EXHAUSTED,
// ABORTED and DEADLINE_EXCEEDED are retried. DEADLINE_EXCEEDED is retried
// only while the caller's context is alive (an attempt timeout or a server's
// own deadline), and the retry policy never starts an attempt whose backoff
// would end past the caller's deadline. INTERNAL, UNKNOWN and DATA_LOSS are
// not: the server may have acted on the request. A custom function can add
// them for idempotent methods:
//
//	Retryable: func(err error) bool {
//		return spillwaygrpc.Retryable(err) || status.Code(err) == codes.Internal
//	}
func Retryable(err error) bool { return RetryableCode(codeOf(err)) }

// RetryableCode reports whether Retryable retries a call that ended with
// code c: UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED or DEADLINE_EXCEEDED. The
// gateway decides on the grpc-status of a proxied call with it.
func RetryableCode(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.DeadlineExceeded:
		return true
	}
	return false
}

// Error is a failure that Spillway made, seen through gRPC: status.Code and
// status.FromError report Code, while errors.Is, errors.As and
// spillway.ReasonOf see Err (a *spillway.Error for a rejection, the caller's
// context error for a call that ended while it waited).
type Error struct {
	// Code is the gRPC code the failure is reported with: UNAVAILABLE for a
	// rejection, DEADLINE_EXCEEDED or CANCELED for the caller's context.
	Code codes.Code
	// Err is the underlying error.
	Err error
}

// Error formats e as gRPC formats a status error.
func (e *Error) Error() string {
	return "rpc error: code = " + e.Code.String() + " desc = " + e.Err.Error()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// GRPCStatus returns the status with Code and Err's message, which lets
// status.FromError and status.Code see the code.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Err.Error()) }

// toStatus returns the error a call ends with: local rejections and the
// caller's context errors get a gRPC code, everything else is returned as it
// is (status errors, and Spillway errors that wrap them).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if spillway.IsRejection(err) {
		return &Error{Code: codes.Unavailable, Err: err}
	}
	if _, ok := errors.AsType[statuser](err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: codes.DeadlineExceeded, Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Code: codes.Canceled, Err: err}
	}
	return err
}

// withPushback attaches the server's pushback in trailer md to err: a delay
// hint when it is a number of milliseconds, spillway.Permanent when it is
// negative or malformed (the server asks not to be retried).
func withPushback(err error, md metadata.MD) error {
	if err == nil || len(md) == 0 {
		return err
	}
	v := md.Get(PushbackKey)
	if len(v) == 0 {
		return err
	}
	d, retry := ParsePushback(v[0])
	if !retry {
		return spillway.Permanent(err)
	}
	return spillway.WithRetryAfter(err, d)
}

// ParsePushback reads a grpc-retry-pushback-ms value (PushbackKey): the
// delay before the next attempt, or retry false when the value is negative
// or malformed, which asks not to retry (gRPC's retry design, A6). A delay
// past 292 years saturates.
func ParsePushback(v string) (d time.Duration, retry bool) {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0, false
	}
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// classifyAttempt is the engines' classifier: Classify's verdict on a
// call's error, which the breaker records as it is for a failure.
func (c *client) classifyAttempt(_ struct{}, err error) (spillway.Outcome, error) {
	if err == nil {
		return spillway.Success, nil
	}
	return c.classify(err), err
}

// retryableErr reports whether the interceptor may hand err to the retry
// policy: not once the caller's context has ended, not a pushback that forbids it, and
// Retryable.
func (c *client) retryableErr(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !spillway.IsPermanent(err) && c.retryable(err)
}
