// Package ratelimit caps how often calls may start: a token bucket for one
// policy ([Limiter]) and a set of buckets, one per client key, with bounded
// memory ([Keyed]).
//
// # Model
//
// A bucket holds at most [Config.Burst] tokens and gains [Config.Limit]
// tokens per [Config.Per] (100 per second: Limit 100, Per time.Second), one
// every emission interval Per/Limit. A call takes one token; a call that
// finds none is refused, or, with [Config.MaxWait], waits for the next token
// if it comes within MaxWait. A bucket starts full.
//
//   - Smooth: Burst 1 (the default) spaces calls evenly, at most one per
//     interval. With MaxWait a burst of callers is not refused but queued,
//     each admitted one interval after the previous (a leaky bucket).
//   - Bursty: Burst N admits up to N calls at once after a quiet spell, and
//     Limit per Per on average.
//
// Over any span of time T from the start, a bucket admits at most
// Burst + T·Limit/Per calls (the property test holds it to that).
//
// A refused call gets a *spillway.Error with Reason
// [spillway.ReasonThrottled] that wraps [ErrLimited]. Its RetryAfter is one
// emission interval: the longest time until the next token can come (a
// refusal happens only when the bucket is empty, and an empty bucket gains a
// token within one interval). The error is preallocated, so a refusal
// allocates nothing even under a flood; a caller that wants the exact wait
// uses [Limiter.Allow] or [Keyed.AllowKey], which return it.
//
// # Implementation
//
// The bucket is the generic cell rate algorithm (GCRA): its whole state is
// one atomic int64, the theoretical arrival time (TAT) of the next call, and
// taking a token is a compare-and-swap on it. No lock, no goroutine, no
// ticker, no allocation: tokens are computed from the clock ([Config.Clock])
// when a call arrives.
//
// # Per-key limits
//
// [Keyed] keeps one bucket per key (a client address, an API key) in
// shards, each a map under its own lock, so that calls of different clients
// rarely meet on one lock; the call itself is the same compare-and-swap.
// Memory is bounded by [KeyedConfig.MaxKeys] (default 100,000): a new key
// arriving at a full shard evicts first every key whose bucket is full again
// among a random sample of the shard's keys (a full bucket carries no
// state, so forgetting it changes nothing), and, if none is full, the
// sampled key whose bucket is the fullest (the one whose debt is the
// smallest to forgive). Keys longer than [MaxKeyLen] bytes are tracked by a
// 128-bit seeded hash of themselves, so a key's memory is bounded too. A key
// already tracked costs no allocation.
//
// # Changes at run time
//
// [Limiter.Update] and [Keyed.Update] change the limit, the burst and
// MaxWait in place: every bucket keeps the tokens it holds (at most the new
// burst) and refills at the new rate from then on.
//
// Limiter implements spillway.Guard and spillway.Releaser, so it can be one
// of a spillway.Pipeline's guards (Policies.Guards): it admits or refuses
// an attempt, and releasing its permit does nothing (a token is spent when
// taken).
package ratelimit
