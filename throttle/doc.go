// Package throttle is client-side adaptive throttling, as the Google SRE
// book describes it ("Handling Overload"): a client that sees its
// downstream accept fewer and fewer of its requests refuses some of them
// itself, before they cost the downstream anything, with the probability
//
//	max(0, (requests − K·accepts) / (requests + 1))
//
// over a sliding window (Config.Window, default 2 minutes), capped at
// Config.MaxRejectionRate (default 0.9). While the downstream accepts
// everything the probability is 0; once it accepts less than 1/K of the
// requests (K defaults to 2) the client sends about K times what the
// downstream accepts and refuses the rest locally, and as accepts come back
// the refusals fade with the window.
//
// A request is every call that reaches the [Throttler], the ones it
// refuses included (as in the book: refusals keep the probability up while
// the downstream accepts too little). An accept is a call that returned
// nil, or an error that Config.Classify calls a Success: the downstream
// accepted the request even if the answer is an error of the caller's
// making (an HTTP 4xx, which spillwayhttp already classifies as a
// success). A call that failed (overloaded, unavailable, too slow) is a
// request not accepted. A call refused by another guard, or that the caller
// abandoned, is not counted at all.
//
// A refused call gets a *spillway.Error with Reason
// [spillway.ReasonThrottled] that wraps [ErrThrottled], and an
// EventRejection goes to Config.Observer.
//
// # Beside or instead of the breaker
//
// The Throttler is a spillway.Guard: put it in a pipeline's
// Policies.Guards, or a transport's guards. Each ignores the other's
// refusals, so either order counts the same calls.
//
// Beside a breaker, the throttle sheds gradually while the downstream is
// degraded — it refuses the part of the load the downstream does not take,
// from the moment it accepts less than 1/K of the requests (K 1.1: from 9 %
// failing) — and the breaker still stops every call to a dead downstream
// (at its own FailureRate, 50 % by default) and probes it back.
//
// Instead of a breaker, for a downstream that refuses work because it is
// saturated: a breaker would cut all traffic and probe, in steps; the
// throttle keeps sending about K times what the downstream accepts, so the
// downstream stays busy at its capacity, and it never stops calling (at the
// cap, one call in ten still goes through) so it learns of a recovery from
// real traffic, without half-open probes.
//
// # Concurrency and cost
//
// A Throttler is safe for concurrent use. The window is a ring of buckets
// (one per second of window by default); an admitted call reads the clock
// and four atomic counters and adds to one, takes no lock except for the
// first call of a bucket, draws a random number (math/rand/v2's
// per-thread generator, or Config.Rand) only while the probability is
// above 0, and allocates nothing, a refusal included.
package throttle
