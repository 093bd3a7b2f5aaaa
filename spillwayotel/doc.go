// Package spillwayotel reports what Spillway's policies decide to
// OpenTelemetry: metrics through the OTel metric API, and an event on the
// call's span for every retry, rejection and fallback.
//
// # Model
//
// An Observer is a spillway.Observer: give it to a spillway.Pipeline's
// Policies.Observer (the pipeline hands it to its policies, which need none
// of their own), or to a policy's Config.Observer outside a pipeline, and it
// turns their events into measurements on the meter of the MeterProvider passed to
// New. Gauges that describe a policy's state rather than its events are read
// when the SDK collects, from the policies registered with Observer.Register
// (or RegisterBreaker, RegisterBulkhead, RegisterBudget,
// RegisterRateLimiter, RegisterThrottle and RegisterHedge); a
// spillway.Pipeline whose Policies.Observer is the Observer registers its
// policies (breaker, bulkhead, guards, hedge, retry budget), and a
// spillwayhttp.Transport or spillwaygrpc interceptor whose Config.Observer
// is the Observer registers every downstream it makes. The package uses only the OTel API; which SDK,
// reader and exporter run behind the MeterProvider is the program's choice.
//
// # Metrics
//
// The instruments carry the brief's metric names in OTel style, with the
// policy's name (Event.Name) as the attribute name instead of the gateway's
// upstream or route. An OTel→Prometheus exporter turns a name into the
// brief's Prometheus name by replacing dots with underscores and adding
// _total to counters and the unit's suffix (_seconds for "s") to the others.
// Units written in braces ({attempt}) are annotations that add no suffix.
// The table's last column is what go.opentelemetry.io/otel/exporters/prometheus
// (v0.69.0, default settings) exposes, and promtool check metrics accepts it.
// The attribute keys are the spillwayprom collector's label names (name,
// result, reason, from, to, kind, state, outcome), so a dashboard reads the series of
// either adapter alike. (Span events, which share a span with other
// libraries, namespace theirs: spillway.name, spillway.reason, ...)
//
//	OTel instrument                      kind           attributes      Prometheus name
//	spillway.upstream.attempts           counter        name, result    spillway_upstream_attempts_total
//	spillway.upstream.attempt.duration   histogram (s)  name            spillway_upstream_attempt_duration_seconds
//	spillway.retries                     counter        name            spillway_retries_total
//	spillway.rejected                    counter        name, reason    spillway_rejected_total
//	spillway.circuit.transitions         counter        name, from, to  spillway_circuit_transitions_total
//	spillway.fallback                    counter        name, kind      spillway_fallback_total
//	spillway.timeouts                    counter        name            spillway_timeouts_total
//	spillway.hedges                      counter        name, outcome   spillway_hedges_total
//	spillway.circuit.state               gauge (int)    name, state     spillway_circuit_state
//	spillway.circuit.failure_rate        gauge (float)  name            spillway_circuit_failure_rate
//	spillway.bulkhead.in_flight          gauge (int)    name            spillway_bulkhead_in_flight
//	spillway.bulkhead.limit              gauge (int)    name            spillway_bulkhead_limit
//	spillway.retry.budget.remaining      gauge (float)  name            spillway_retry_budget_remaining
//	spillway.rate_limit.tokens           gauge (float)  name            spillway_rate_limit_tokens
//	spillway.throttle.rejection_probability
//	                                     gauge (float)  name            spillway_throttle_rejection_probability
//	spillway.throttle.window.requests    gauge (int)    name            spillway_throttle_window_requests
//	spillway.throttle.window.accepts     gauge (int)    name            spillway_throttle_window_accepts
//	spillway.hedge.delay                 gauge (s)      name            spillway_hedge_delay_seconds
//
// spillway.timeouts counts the calls a timeout policy cut short; it is not in
// the brief's list and matches the spillwayprom collector's addition.
// spillway.hedges counts EventHedge (outcome "sent") and EventHedgeWon
// (outcome "won"). The overload policies' gauges read a *ratelimit.Limiter's
// Tokens, a *throttle.Throttler's RejectionProbability and Counts, an
// adaptive or static bulkhead's current Limit, and a *hedge.Policy's Delay
// (no point while it has none); a rate limiter's or a throttle's refusal is
// an EventRejection counted in spillway.rejected with reason throttled.
//
// The counters are Int64Counters, the histogram a Float64Histogram, the
// gauges observable gauges read by one callback.
//
// result is "success" (the attempt returned nil) or "failure"; reason is a
// reason code (spillway.Reasons); from, to and state are a breaker state's
// name (breaker.State.String), and spillway.circuit.state has one series per
// state of the six, 1 for the current one and 0 for the others, as
// Resilience4j does; kind is the name of the fallback step that served. The
// failure rate is a fraction in [0,1] and has no unit, so that no exporter adds
// a _ratio suffix.
//
// # Defaults
//
// The attempt duration's buckets are Prometheus's (DefaultBuckets, 5ms to
// 10s); WithBuckets changes them. Span events are on, with error messages;
// WithoutSpanEvents and WithoutErrorMessages turn them off.
//
// Attribute values are policy names, state names, reason codes and fallback
// step names: the cardinality is bounded by the policies a program builds,
// never by its traffic. No path, id or error text becomes an attribute of a
// metric.
//
// # Span events
//
// For an EventRetry, an EventRejection, an EventFallback, an EventHedge and
// an EventHedgeWon, the Observer adds an event to the span of the call
// (trace.SpanFromContext of Event.Context):
//
//	spillway.retry       spillway.policy, spillway.name, spillway.attempt (the attempt that failed),
//	                     spillway.delay (seconds, float), spillway.reason, error.message
//	spillway.rejection   spillway.policy, spillway.name, spillway.reason
//	spillway.fallback    spillway.policy, spillway.name, spillway.kind, spillway.reason
//	                     (of the error the fallback replaced), error.message
//	spillway.hedge       spillway.policy, spillway.name, spillway.attempt (the hedge's number),
//	                     spillway.delay (seconds the previous attempt went unanswered)
//	spillway.hedge_won   spillway.policy, spillway.name, spillway.attempt,
//	                     spillway.duration (the call's latency, seconds)
//
// spillway.reason is spillway.ReasonOf of the event's error (the rejection's
// own Reason for a rejection). error.message is the error's text; span events
// are per call, so the text does no harm to cardinality, but it may hold data a
// program does not want exported: WithoutErrorMessages leaves it out, and
// WithoutSpanEvents turns span events off. When the context holds no
// recording span (no tracing, or a span that was not sampled), the Observer
// checks span.IsRecording first and builds nothing.
//
// # Concurrency and cost
//
// An Observer is safe for concurrent use. Observe runs on the goroutine of the
// call that caused the event, so it is kept cheap: the attribute sets of each
// (name, result), (name, reason), (name, from, to) and (name, kind) are built
// once, when first seen ({name, outcome} with the name's), and read afterwards from copy-on-write maps without a
// lock or an allocation. What the SDK itself costs per measurement is the
// SDK's. Registered policies are read under a mutex once per collection.
//
// # Errors
//
// New returns an error when the MeterProvider is nil or refuses an
// instrument or the callback. The Register methods return an error for a nil
// policy, an empty name, or a name that another policy of the same kind
// already has (two policies under one name would report one series), as
// spillwayprom's do; registering the same policy again is not an error.
// Observe never fails: a measurement the SDK drops is the SDK's business.
package spillwayotel
