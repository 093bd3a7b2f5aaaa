// Package spillwayprom exports Spillway's library policies to Prometheus
// (client_golang) under the brief's metric names, with a name label.
//
// # Model
//
// A Metrics is two things at once. As a spillway.Observer it counts the
// events that policies report; pass it as the Observer of every pipeline
// you want measured (Policies.Observer: the pipeline hands it to its
// policies, which need none of their own) and of the policies you use
// without one:
//
//	spillway_upstream_attempts_total{name,result}        EventAttempt; result is success or failure
//	spillway_upstream_attempt_duration_seconds{name}     EventAttempt's Duration (histogram)
//	spillway_retries_total{name}                         EventRetry
//	spillway_rejected_total{name,reason}                 EventRejection
//	spillway_circuit_transitions_total{name,from,to}     EventTransition
//	spillway_fallback_total{name,kind}                   EventFallback; kind is the step's name
//	spillway_timeouts_total{name}                        EventTimeout (an addition to the brief)
//	spillway_hedges_total{name,outcome}                  EventHedge (outcome sent), EventHedgeWon (outcome won)
//
// As a prometheus.Collector it reads gauges at scrape time from the policies
// registered with Register (or RegisterBreaker, RegisterBulkhead,
// RegisterBudget, RegisterRateLimiter, RegisterThrottle and RegisterHedge).
// A spillway.Pipeline whose Policies.Observer is the Metrics registers its
// policies (breaker, bulkhead, guards, hedge, retry budget), and a
// spillwayhttp.Transport or spillwaygrpc interceptor whose Config.Observer
// is the Metrics registers every downstream it makes, so that one field
// instruments a client:
//
//	tr, err := spillwayhttp.New(spillwayhttp.Config{Observer: metrics})
//
// The gauges are:
//
//	spillway_circuit_state{name,state}                   one series per state, 1 for the current one
//	spillway_circuit_failure_rate{name}                  the window's failure rate, 0 to 1
//	spillway_bulkhead_in_flight{name}
//	spillway_bulkhead_limit{name}                        Limit(): an adaptive bulkhead's current limit
//	spillway_retry_budget_remaining{name}
//	spillway_rate_limit_tokens{name}                     a *ratelimit.Limiter's Tokens()
//	spillway_throttle_rejection_probability{name}        a *throttle.Throttler's RejectionProbability()
//	spillway_throttle_window_requests{name}              its Counts(): requests in the window
//	spillway_throttle_window_accepts{name}               and accepts
//	spillway_hedge_delay_seconds{name}                   a *hedge.Policy's Delay(); no series while it has none
//
// The overload policies' refusals (a rate limiter's, a throttle's) are
// EventRejections with reason throttled, counted in spillway_rejected_total
// under the policy's name; spillway_hedges_total and
// spillway_throttle_rejection_probability are the gateway's families of the
// same names, with name for its upstream label.
//
// An attempt's result is success when its Err is nil (spillway.ReasonOf
// says "") and failure otherwise, whatever the reason: an attempt the caller
// abandoned counts as a failure here although the breaker ignores it.
// Rejected calls never reach the downstream, so they are not attempts: the
// pipeline reports no EventAttempt for them, and they are counted in
// spillway_rejected_total.
//
// The brief's spillway_requests_total and spillway_request_duration_seconds
// (per route) and the gateway's instance and queue metrics belong to the
// gateway, which has routes; a library call is measured by its attempts.
//
// The name label is the Event's Name, that is the name given to the policy
// in its Config (and Policies.Name for a pipeline's attempts), or the name a
// gauge was registered under. Give the policies that guard one downstream the
// same name and its series line up: a pipeline "catalog" with a breaker
// "catalog" and a bulkhead "catalog".
//
// # Cardinality
//
// No label carries a path, an id or an error's text. result is success or
// failure; reason is one of spillway.Reasons, any other reason is counted as
// "other"; from, to and state are the six breaker states, any other state
// name is counted as "other"; kind is a fallback step's name, fixed when
// the fallback is built; outcome is sent or won. name values are the policy names the program chose:
// bounded as long as the program does not make names from request data.
// As a safety net, events with more than WithMaxNames distinct names (default
// 1000) are counted under the name OverflowName instead. Forget removes a
// name's series when its policies are gone, after a reload for example.
//
// # Concurrency and cost
//
// Every method is safe for concurrent use, and nothing starts a goroutine.
// Observe is lock-free and, once a (name, label values) series has been seen,
// allocates nothing: the series of each name are cached behind atomic
// pointers in a copy-on-write map, so the steady state costs a map lookup
// and an atomic add (or a histogram observation). The first event of a new
// series takes client_golang's own lock and allocates, and the first of a
// new name or fallback kind also takes a mutex of this package to copy its
// map. Collect takes a read
// lock on the registered policies and reads each one's Snapshot, InFlight,
// Limit, Remaining, Tokens, RejectionProbability and Counts, or Delay: the
// policies' hot paths do nothing for the gauges.
//
// # Errors
//
// New returns the error of registering the Metrics with the Registerer (for
// example a prometheus.AlreadyRegisteredError when another collector already
// exports these names) or an error naming an invalid option. The Register
// methods return an error for a nil or unnamed policy and for a name that
// another policy of the same kind already has (two policies cannot share a
// series), as spillwayotel's do; Forget frees a name.
package spillwayprom
