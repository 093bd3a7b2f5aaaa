// Package breaker is a circuit breaker: it stops calling a downstream that
// keeps failing or answering slowly, fails fast instead, and probes the
// downstream now and then to find out when it has recovered.
//
// # Model
//
// A [Breaker] is closed, open or half-open, or in one of three manual states:
//
//   - Closed: every call is admitted and its outcome recorded in a window,
//     the last [Config.WindowSize] calls ([CountWindow], the default) or the
//     calls of the last [Config.WindowDuration] in [Config.Buckets] buckets
//     ([TimeWindow]). Once the window holds [Config.MinCalls] calls, the
//     breaker opens when the failure rate reaches [Config.FailureRate] or
//     the slow-call rate reaches [Config.SlowCallRate] (>=, not >), and also,
//     if set, after [Config.ConsecutiveFailures] failures in a row.
//   - Open: every call is rejected for [Config.OpenFor]. Then the breaker is
//     half-open: State reports it at once, without any goroutine, and the
//     next Acquire makes the transition.
//   - Half-open: at most [Config.HalfOpenProbes] probe calls run at a time.
//     A probe that fails, is slow or outlives [Config.ProbeTimeout] opens the
//     breaker again, for OpenFor × [Config.OpenBackoff] per reopening up to
//     [Config.MaxOpenFor], jittered by [Config.OpenJitter] either way (the
//     first opening is never jittered). HalfOpenProbes successful probes close it,
//     with an empty window and the open duration back to OpenFor.
//   - Slow start: with [Config.SlowStart] set, a breaker that a probe closed
//     admits a share of the calls that grows linearly from [SlowStartFloor]
//     (10 %) to all of them over SlowStart, and rejects the others with
//     ErrOpen and a RetryAfter of SlowStart/10, so that a downstream that
//     has just recovered is not hit by the whole load at once. It records
//     and trips as any closed breaker; a manual close does not ramp.
//     Snapshot.SlowStartShare and SlowStartLeft show the ramp.
//   - ForcedOpen rejects every call, Disabled admits every call and records
//     nothing, MetricsOnly records and judges as Closed does but never
//     rejects: a dry run that counts the calls it would have rejected
//     (Snapshot.WouldReject).
//
// Every state change starts a new generation, and each permit carries the
// generation it was issued in: an outcome released for an older generation
// is dropped, so a slow call from before a trip can neither close a
// half-open breaker nor count in a new window. Every permit must be released
// exactly once; Execute and Do do it, also when the call panics (the outcome
// is then a *spillway.PanicError and the panic goes on). A probe whose
// permit is never released counts as failed once ProbeTimeout has passed,
// when the next Acquire, State or Snapshot looks, so half-open cannot get
// stuck.
//
// [Breaker.Track] is for a call whose outcome comes after its own permit
// went back (a gRPC answer that streams messages has its status in its
// trailers: the gateway releases the call's permit ignored at the answer's
// head): a closed breaker's permit, issued without admitting anything (no
// refusal, no slow start's draw, nothing reported), that records the
// outcome and the duration from Track when released, and nothing when
// dropped.
//
// # Defaults
//
// The zero Config is the brief's breaker: a count window of the last 100
// calls, judged from 20 calls on, opening at a failure rate of 50 % (slow
// calls off; when on, at a slow-call rate of 100 %), open for 30 s, then 60 s,
// 120 s, ... up to 5 min on repeated failed probes (±10 %), 5 half-open
// probes of at most 5 s each. A time window defaults to 10 s in 10 buckets.
// Each field's comment says its default.
//
// # Outcomes
//
// [DefaultClassify] decides how an outcome counts unless [Config.Classify]
// replaces it: nil is a success; the caller's cancellation
// (context.Canceled), an outcome marked spillway.ErrCallerDone (Execute, Do
// and spillway.Pipeline mark a call that ended because the caller's own
// context was done, its deadline included) and local rejections
// (spillway.IsRejection: a full bulkhead, another breaker's rejection) are
// ignored, neither recorded nor counted as a probe's success; everything
// else is a failure, a policy's timeout and panics included. ErrCallerDone
// is ignored even under a custom Classify. A call that lasts [Config.SlowCallDuration] or more is
// also recorded as slow, whether it succeeded or failed.
//
// # Errors
//
// Acquire, Execute and Do reject a call with a *spillway.Error whose Code is
// spillway.ReasonBreakerOpen, whose Policy is "breaker", whose Err is
// [ErrOpen] (so errors.Is(err, breaker.ErrOpen) holds) and whose RetryAfter
// is the open duration as of the opening (0 when forced open or when every
// half-open probe is taken). These errors are allocated when the breaker
// opens, not when it rejects, and must not be modified. New, Reconfigure
// and Update return an error naming the invalid field; State.UnmarshalText's
// error lists the valid state names.
//
// # Concurrency and cost
//
// Every method is safe for concurrent use, and the breaker starts no
// goroutine. The configuration is an immutable snapshot behind an atomic
// pointer; the state and generation are one atomic word; a mutex guards only
// transitions and the half-open bookkeeping. In the closed state Acquire
// reads that one word (and the clock when slow-call detection is on or a
// slow start is ramping, which also draws Config.Rand) and takes no lock; releasing a success into a count window full of successes
// writes nothing at all; other outcomes cost an atomic add for the ring
// position and, when the slot changes, a swap and an add for the totals. A
// time window adds one atomic add to the current bucket and reads the clock.
// An open breaker rejects with one clock read and one atomic add, without
// allocating.
//
// Lock-free recording has small, bounded inaccuracies under concurrency,
// none of which lets a count exceed its window: calls racing each other
// have no order, so the consecutive-failure run and the ring's order are
// those of some interleaving; a Snapshot taken while calls are recorded may
// see one call's eviction before its insertion (counts are clamped to the
// window); a call recorded while Reconfigure copies a resized window is
// lost; in a time window, a call that found its bucket current just before a
// new bucket started and adds to it just after is left out of the judged
// totals until the next bucket starts (Snapshot still counts it), and a call
// stalled for a whole window may land in a recycled bucket. With calls made one at a time,
// the counts, rates and trip decisions are exact (a property test checks
// them against a naive model).
//
// # Observing
//
// [Config.Observer] receives a spillway.EventTransition (From and To are the
// states' names, see [State.String]) for every state change and a
// spillway.EventRejection for every rejected call. It is called
// synchronously but never under the breaker's lock, so it may call back into
// the breaker; transitions are reported in the order they happened, by one
// goroutine at a time (possibly another call's). An Observer that can block
// belongs behind spillway.NewChannelObserver, which drops events rather than
// wait. [Breaker.AttachObserver] adds observers that get the same events the
// same way: a spillway.Pipeline attaches its Observer to its breaker, so a
// breaker in a pipeline needs no Observer of its own.
//
// # Runtime changes
//
// [Breaker.Update] changes the settings its function sets and keeps every
// other one; [Breaker.Reconfigure] replaces the whole configuration (a zero
// field means its default there, as in New, so a partial Config resets the
// fields it leaves out). Both work while calls go on and keep the state, the
// open deadline and the recorded outcomes that still fit the new window;
// neither changes the clock. [Breaker.TransitionTo], [Breaker.ForceOpen],
// [Breaker.Disable], [Breaker.MetricsOnly] and [Breaker.Reset] are the
// admin API's manual transitions. [Config.Warnings] lists settings that
// cannot work, for spillway validate.
package breaker
