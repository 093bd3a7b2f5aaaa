// Package hedge sends a second copy of a slow idempotent call, so that one
// slow attempt does not make a slow call: the tail latency of a call becomes
// about the delay plus a normal attempt's latency, for a few percent more
// load.
//
// A [Policy] decides when: after a fixed Delay, or after the learned
// Quantile (default p95) of the latencies of the calls that succeeded in the
// last Window (default 30s). Until the window holds MinSamples latencies
// (default 20) it uses InitialDelay, and sends no hedge when that is 0. A
// call sends at most Max hedges (default 1), each after the delay since the
// previous attempt. Each hedge draws one retry from a Budget (a
// *retry.Budget shared with the retry policy), so that hedges count as
// retries in the budget's ratio and retries and hedges together cannot
// multiply the load; a hedge the budget refuses is not sent.
//
// [Do] and [DoDiscard] make one hedged call; a spillway.Pipeline's
// ExecuteHedged hedges each of its attempts with Policies.Hedge (its other
// methods never hedge: a hedged call escapes to the heap), between the retry policy and the
// guards, so that every hedge passes the breaker and the bulkhead itself:
// an open breaker or a full bulkhead stops hedges. The racing itself is
// spillway.Hedge's: the first success wins, the other attempts' contexts are
// cancelled and their results discarded (DoDiscard's discard, a pipeline's
// Policies.Discard: a response body is closed); when every attempt fails
// the primary's failure is returned.
//
// # Goroutines and cost
//
// The primary runs on the caller's goroutine; the delay is a runtime timer.
// A call answered before the delay starts no goroutine and allocates one
// object (256 B with a string result; three in a pipeline's ExecuteHedged):
// the timer of a delay that did not fire is reused by the next call (never
// across a testing/synctest bubble), and the primary's context becomes a
// cancellable context only when something asks for its Done channel (a
// select on it, a context derived from it). Each hedge sent runs on one
// goroutine of its own (the timer's). The primary must heed its context:
// when a hedge wins, the call returns once the cancelled primary has
// returned.
//
// # The learned delay
//
// The latencies are counted in a log-linear histogram (8 linear buckets per
// power of two from 1µs to 137s, so within 12.5%) over a sliding window of 4
// slots of atomic counters: recording one costs two atomic adds and a clock
// read, the memory is fixed (under 8 KiB per policy), and the quantile is
// recomputed every 32 samples. The delay is the upper bound of the
// quantile's bucket. A call's latency is taken from its start to its answer,
// whichever attempt gave it: hedged calls end after the delay, so hedging
// does not pull down the quantile it hedges at.
//
// Use hedging for idempotent calls only: the downstream may see each of
// them more than once.
package hedge
