// Package spillway holds what Spillway's resilience policies share: the reason
// codes that explain every locally made failure, the error type that carries
// them, the observation interface, the clock, the Guard/Permit contract that
// breakers and bulkheads implement, the Engine that runs guarded attempts and
// the Retry loop, and the Pipeline that composes policies.
//
// The policies themselves live in packages of their own — breaker, retry,
// timeout, bulkhead, fallback, hedge — which import this package; this package imports
// none of them, and all of them import only the standard library.
//
// # The standard order
//
// A Pipeline runs a call through its policies from the outside in:
//
//	fallback → total timeout → retry (with budget) → guards (breaker, bulkhead) → attempt timeout → call
//
// The fallback sees the final error after every retry; the total timeout bounds
// the whole execution including backoff sleeps; each retry re-enters the breaker
// and the bulkhead, so an open breaker stops a retry loop at once and a retry
// never holds a bulkhead slot while it sleeps; the attempt timeout bounds only
// the time spent in the downstream, not the time spent waiting for a bulkhead
// slot. NewPipeline builds it from Policies, a struct that names each
// policy's role, and refuses what cannot work (a typed nil policy, swapped
// guards, an attempt timeout not below the total); see docs/architecture.md.
// Chaos policies (Policies.Chaos, package chaos) run innermost, inside the
// attempt timeout just before the call, so that every other policy reacts
// to an injected fault as to a real one (docs/chaos.md).
//
// Policies.Hedge (package hedge) hedges each attempt of ExecuteHedged
// between the retry and the guards: a slow attempt is raced against hedges
// sent after a delay, each through the guards, the first success wins
// (Hedge, Hedger; docs/overload.md). The other methods never hedge: a
// hedged call escapes to the heap, which their callers do not pay for.
//
// Compose runs policies in an order of one's own, on the same Engine, for
// the pipelines the standard order does not fit.
//
// # One engine
//
// Every guarded attempt, whoever makes it, runs on an Engine: Pipeline and
// the HTTP and gRPC integrations (spillwayhttp, spillwaygrpc) acquire the
// guards in order, run the call, classify its outcome, release the permits in
// reverse order exactly once (a panic or runtime.Goexit included) and report
// an EventAttempt through Engine.Attempt; they and retry.Do retry through
// Retry. An
// integration brings its classifier and what it does around an attempt (an
// HTTP body's replay, a gRPC stream's establishment); EngineConfig.Keep lets
// a call hold a permit past its attempt (a response body, a stream).
//
// # Reasons
//
// Every failure a policy makes carries a Reason ([ReasonBreakerOpen],
// [ReasonBulkheadFull], ...); [ReasonOf] extracts it from any error chain.
//
// # Priorities
//
// A call's [Priority] — [PriorityCritical], [PriorityDefault] (the zero
// value) or [PrioritySheddable] — travels in its context ([WithPriority],
// [PriorityOf]); a load shedder (package shed) refuses the lowest class
// first when its downstream is under pressure.
package spillway
