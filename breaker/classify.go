package breaker

import (
	"context"
	"errors"

	"github.com/spillway-dev/spillway"
)

// DefaultClassify is the classification a breaker uses unless
// Config.Classify replaces it:
//   - nil is a Success;
//   - the caller's own end is Ignored: it says nothing about the downstream.
//     That is spillway.ErrCallerDone, which a Pipeline, Execute and Do attach
//     (spillway.CallerDone) when the caller's context was cancelled or reached
//     its deadline, and any context.Canceled;
//   - a local rejection (spillway.IsRejection: another guard's bulkhead_full,
//     an exhausted budget, another breaker's breaker_open) is Ignored: the
//     downstream was never called;
//   - everything else is a Failure, a context.DeadlineExceeded that is not
//     the caller's and the timeout policy's deadline_exceeded errors included
//     (a downstream too slow to answer is failing), and so is a
//     *spillway.PanicError.
//
// A custom Classify can refine it, for example to ignore a "not found":
//
//	Classify: func(err error) spillway.Outcome {
//		if errors.Is(err, ErrNotFound) {
//			return spillway.Ignored
//		}
//		return breaker.DefaultClassify(err)
//	}
func DefaultClassify(err error) spillway.Outcome {
	switch err.(type) {
	case nil:
		return spillway.Success
	case *spillway.Error, interface{ Unwrap() error }, interface{ Unwrap() []error }, interface{ Is(error) bool }, interface{ As(any) bool }:
		// A chain to walk.
	default:
		// A plain error, the common failure: neither errors.Is nor
		// errors.As could match anything but err itself.
		if err == context.Canceled || err == spillway.ErrCallerDone {
			return spillway.Ignored
		}
		return spillway.Failure
	}
	if errors.Is(err, spillway.ErrCallerDone) || errors.Is(err, context.Canceled) || spillway.IsRejection(err) {
		return spillway.Ignored
	}
	return spillway.Failure
}

// ignoringCallerDone makes a custom classification ignore the caller's own
// end, as every breaker must, whatever the custom function says of it.
func ignoringCallerDone(classify func(error) spillway.Outcome) func(error) spillway.Outcome {
	return func(err error) spillway.Outcome {
		if errors.Is(err, spillway.ErrCallerDone) {
			return spillway.Ignored
		}
		return classify(err)
	}
}
