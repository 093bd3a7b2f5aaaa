// Package chaos injects faults into the attempts of a pipeline on purpose,
// to rehearse failure: an error, a latency, a substitute result or a
// behaviour (a function run before the call), each at a rate, behind a
// switch that can be flipped at run time. Polly's chaos strategies
// (ChaosFault, ChaosLatency, ChaosOutcome, ChaosBehavior) are the anchor.
//
// A [Policy] is a spillway.Injector: put it in spillway.Policies.Chaos (or
// spillwayhttp.Downstream.Chaos). It runs inside each attempt, after the
// breaker and the bulkhead admitted it and under the attempt timeout, just
// before the call, so that the other policies react to an injected fault
// exactly as to a real one: the breaker counts an injected error, the retry
// policy retries it, a fallback serves in its place, and the attempt
// timeout cuts an injected latency short.
//
// Every policy starts disabled (Config.Enabled) — chaos is opt-in — and is
// switched with SetEnabled and SetRate, safe for concurrent use. A disabled
// policy costs one atomic load per call and allocates nothing. When it is
// enabled, Config.EnabledFunc and Config.RateFunc decide per call from the
// call's context (one tenant, one test's requests), and Config.Rand draws
// the dice (math/rand/v2's Float64 by default; a seeded source makes a test
// deterministic).
//
// An injected error is a *spillway.Error of Policy "chaos" that wraps
// [ErrInjected] and the error given (none: ErrInjected alone, with
// spillway.ReasonUpstreamError, as an injected fault stands for a failing
// downstream). Its reason is the given error's (spillway.ReasonOf), so that
// an injected error is classified, retried and reported as the real one
// would be, while errors.Is(err, chaos.ErrInjected) still tells it apart.
//
// An injected latency waits on the standard library's timers (spillway.Sleep),
// so it follows testing/synctest's fake time, and ends at once with the
// context's cause when the context ends.
package chaos
