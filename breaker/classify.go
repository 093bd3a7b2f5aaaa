package breaker

import (
	"errors"

	"github.com/spillway-dev/spillway"
)

// DefaultClassify is the classification a breaker uses unless
// Config.Classify replaces it, spillway.OutcomeOf:
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
func DefaultClassify(err error) spillway.Outcome { return spillway.OutcomeOf(err) }

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
