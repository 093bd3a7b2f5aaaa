// Package gateway is the reverse proxy behind `spillway serve`: it routes each
// request to an upstream named in the configuration and applies that
// upstream's policies — a pool of instances with balancing, health checks and
// outlier ejection, a circuit breaker, retries with a retry budget, a
// bulkhead and time limits — then, when the upstream fails or rejects the
// request, the route's fallback chain: a replica upstream, a stale cache,
// a static answer, and last the brief's JSON error answer.
//
// # Request flow
//
//  1. ServeHTTP refuses what a reverse proxy must not serve: a request of
//     a connection whose framing a proxy in front could read otherwise
//     (request smuggling: 400 and Connection: close, see NewListener),
//     CONNECT, absolute-form and asterisk-form targets and paths with dot
//     segments (400, reason bad_request), bodies over the configured
//     max_body (413, body_too_large). The upstream's address always comes
//     from the configuration, never from the request: the gateway is no
//     open proxy. A Connection header may not name the headers the gateway
//     decides on or sets (Idempotency-Key, X-Forwarded-*, ...): those
//     names are taken out of it.
//  2. The first route whose match holds wins (host without port, a
//     segment-aware path prefix or an exact path, methods, headers). No
//     route: 404 with {"error":{"reason":"no_route","message":"..."}}. A
//     path that some upstreams would resolve outside the route once
//     stripped or decoded again (//host, a backslash, /..;/, %252e%252e)
//     gets 400 unless the route allows it.
//  3. An optional route whose upstream's breaker is open, or that an
//     operator switched off (Gateway.SetRoute), answers its default at once
//     (Spillway-Fallback: default).
//  4. The request goes through the gateway's forwarder (forward.go: what
//     httputil.ReverseProxy does, in one copy of the request: hop-by-hop
//     headers and the client's X-Real-IP, True-Client-IP, X-Original-URL,
//     ... removed, X-Forwarded-For/Proto/Host and X-Real-IP set, 1xx
//     answers and trailers passed on, streams flushed, 32 KiB buffers from
//     a sync.Pool) to the upstream's spillwayhttp.Transport:
//     retry → throttle (when the upstream has throttle:) → breaker →
//     bulkhead → attempt, under the attempt and total
//     limits (the route's timeout replaces the upstream's total; an incoming
//     Spillway-Timeout-Ms header lowers it). Each attempt picks an instance
//     from the pool, preferring another one than the previous attempt's, and
//     reports its outcome to the instance's outlier detection. Retries happen
//     only before anything is written to the client. An attempt to the
//     route's own upstream first draws the route's faults (fault.go): an
//     injected delay waits inside it, an injected abort answers it, and the
//     policies above take it as the upstream's.
//  5. When the upstream fails (a transport error, or a 5xx once retries are
//     over) or rejects the request (breaker_open, bulkhead_full,
//     budget_exhausted, no_healthy_instance, deadline_exceeded), the route's
//     fallback chain is tried in order; when it is empty or every step
//     fails, spillwayhttp.WriteError answers (503, 504 for
//     deadline_exceeded) with Spillway-Reason, Retry-After and a JSON body.
//     A route without any fallback passes an upstream's 5xx through as it is.
//     A request that fails on its own deadline (its Spillway-Timeout-Ms
//     budget, or its connection) gets 504 and no fallback at all. The
//     stale cache stores no answer to a request with credentials
//     (Authorization, cookies but those of ignore_cookies) and follows
//     RFC 9111's rules for a shared cache that serves only stale entries,
//     within max_bytes and max_entries.
//
// # Async routes
//
// A route with async: settings does not proxy. With Options.Queue set, its
// requests (method, path, query, headers minus hop-by-hop, body up to
// async.max_body) are stored as one job of the queue named after the route
// and answered 202 Accepted with Location: /_spillway/jobs/<id> once the
// store acknowledged them, 503 queue_unavailable / queue_full when it
// refused them, 504 queue_timeout when it did not answer in time (the job
// may have been stored). An Idempotency-Key (bounded; scoped by a client
// header with async.key_scope) dedupes; reused for another request it gets
// 409 idempotency_key_reused. GET /_spillway/jobs/<id> answers the job's
// status. A queue.Worker per async route delivers the jobs to the route's
// current upstream through its breaker, bulkhead, time limits and pool,
// without its retry policy: the queue retries, dead-letters after
// max_attempts, and pauses while the breaker is open (WorkerOptions.Gate).
// All of it lives in package gateway/async, which this package constructs
// and reaches through a small interface (jobs: Accept, JobStatus); async
// reaches the gateway only through async.Upstreams (Deliver a job's
// request along its route, the breaker state of its upstream), which this
// package implements (async.go). Package gateway imports gateway/async,
// never the other way round.
//
// # Reload
//
// Gateway.Apply (and Reload, which logs what it returns) changes the
// running upstreams in place and swaps the routing table atomically:
// requests in flight finish on the table they started with. A changed
// upstream keeps its breaker (Reconfigure: state and window), bulkhead
// (Resize: calls in flight), retry budget (unless its settings change),
// connection pool (unless timeouts.connect changes) and the health and
// ejection state of the instances that stay; its transports and retry
// policy, which hold no state, are rebuilt. Apply returns every change
// applied and every state reset (the admin reload's answer). A route whose
// stale_cache settings are unchanged keeps its cache, and an async route
// whose async settings are unchanged keeps its worker. Pools no longer
// referenced are closed, workers no longer wanted stopped.
//
// # Files, in the order a request travels
//
//   - listener.go, framing.go: the public listener (NewListener,
//     ConfigureServer) and its reading of each connection's framing, which
//     marks the requests a proxy in front could read otherwise.
//   - inbound.go: what ServeHTTP refuses or rewrites before any route
//     (screen, checkPath, the headers only a proxy may set).
//   - proxy.go: ServeHTTP itself, the request's steps in order; the
//     exchange, the request's state and context; modifyResponse and a phase
//     of the request at one upstream (phase).
//   - forward.go: the forwarder a phase sends its request through: the
//     outbound request, the answer's head, body and trailers.
//   - route.go: the routing table's match and a route resolved against
//     its upstreams.
//   - upstream.go: an upstream's policies, pool and transports, one
//     downstream of policies per total time limit, made at table build.
//   - attempt.go: one attempt, the transports' base (picker: an instance
//     per attempt), its outcome for the instance, its classification and
//     the retry rule.
//   - fault.go: fault injection, the file's, the runtime API's (AddFault)
//     and the request's own (fault headers), drawn per attempt.
//   - fallback.go, cache.go: the fallback chain (replica, stale cache,
//     static answer) and the error answer; the stale cache.
//   - async.go: the async routes' side of the gateway (see above).
//   - accesslog.go, metrics.go: what a request leaves behind (finish).
//   - trace.go: the Tracer interface (Options.Tracer) of the request's
//     trace, a server span and a client span per attempt; nil: none, at
//     the cost of a nil check. gateway/telemetry implements it over OTLP.
//   - gateway.go, apply.go, check.go: the Gateway and its table (New,
//     Status, Ready, Close), live changes (Apply, Reload), and Check,
//     which builds without starting anything.
//   - events.go: the EventBus (Gateway.Events), a ring of the decisions
//     the gateway makes — breaker transitions, sampled rejections,
//     instance transitions, applied changes — that the admin API streams.
//
// Below it (it imports them): gateway/pool (instances, balancing, health
// checks, outlier ejection), gateway/async (the async routes) and
// gateway/internal/reply (the error answers both write). Above it:
// gateway/admin, the admin API, which imports gateway.
//
// See docs/gateway.md for the decisions taken where the issue is silent.
package gateway
