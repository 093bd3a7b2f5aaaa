// Package spillwayhttp applies Spillway's policies to net/http: a
// RoundTripper for clients, middleware for servers (deadline propagation and
// a bulkhead), and the brief's error answer.
//
// # Client
//
// Transport wraps a base http.RoundTripper (default: a tuned *http.Transport,
// NewBaseTransport) and sends each request through the policies of its
// downstream. A downstream is named by Config.Key (default: the URL's host)
// and gets its policies (a Downstream: breaker, retry policy with its retry
// budget, bulkhead, timeouts) from Config.NewDownstream the first time a
// request goes to it; every later request to it shares them, so one retry
// budget bounds the retries to one downstream. Looking a downstream up takes
// no lock and allocates nothing.
//
//	client := &http.Client{Transport: spillwayhttp.MustNew(spillwayhttp.Config{})}
//
// One request runs as a spillway.Pipeline does, on the same engine
// (spillway.Engine for each attempt, spillway.Retry for the retries):
// retry → breaker → bulkhead → attempt (Downstream.Guards, a client-side
// throttle, come before the breaker). Each attempt acquires the breaker and
// the bulkhead, sends a copy
// of the request with the header TimeoutHeader, and releases both permits
// exactly once, when the response headers arrive (or the attempt fails): the
// outcome is known then, and a slow reader of a body holds no slot. With
// Config.BulkheadSpansBody the bulkhead slot is held until the body is read
// to its end or closed instead (the engine hands the slot to the body, which
// releases it once). If Config.Base panics or calls runtime.Goexit, the
// permits are released with a *spillway.PanicError before the panic goes on.
// Downstream.Chaos (chaos.Policy) injects faults into the attempts, under
// the attempt's limit and in place of Config.Base when one replaces the
// call.
//
// Downstream.Hedge (a *hedge.Policy) hedges the attempts of GET, HEAD and
// OPTIONS requests (Hedgeable) whose body can be sent again: each attempt is
// raced against hedges sent after the policy's delay, each one through the
// breaker and the bulkhead and drawing a retry from the policy's budget; the
// first success is returned and the other attempts are cancelled (a loser
// cut short is released as the caller's doing, which breakers do not count)
// and their responses closed. The winner's response body stays readable: an
// attempt's context derives from the request's, and the race's cancellation
// reaches it only while it waits for its response head. A Base that keeps
// state per request tells a hedge by HedgeOf(req.Context()).
//
// Classification (Config.Classify, default DefaultClassify): transport
// errors, 5xx, 408 and 429 are failures; every other response, 4xx included,
// is a success for the breaker. A failure is retried only when
// Config.Retryable allows it (default DefaultRetryable: GET, HEAD, OPTIONS,
// PUT, DELETE, TRACE, or any request with an Idempotency-Key header) and the
// retry policy does (attempts, budget, deadline; never a rejection, never
// after the caller's context ended). A response that is retried is drained
// (up to 64 KiB) and closed, so its connection is reused. Its Retry-After
// (seconds or HTTP-date; Config.RetryAfter reads another hint) raises the
// next backoff, capped at the retry policy's MaxRetryAfter (default its Max).
//
// Request bodies are replayed with GetBody (http.NewRequest sets it for
// bytes, strings and their readers). A body without GetBody is buffered up
// to Config.MaxReplayBody (1 MiB) when the request could be retried; a longer
// one is streamed once and the request is never retried.
//
// # What RoundTrip returns
//
// When the last attempt got a response, RoundTrip returns that response,
// body intact, and a nil error — a 503 after exhausted retries too, as
// failsafe-go's HTTP support does: the caller sees the downstream's answer.
// ErrorOf(resp) says why such a failing response came back instead of being
// retried (the retry policy's error: retry.ErrExhausted, budget_exhausted;
// or the response's *StatusError when it was not to be retried), and
// ReasonOf(resp) its reason code; both are nil and "" for a response that
// did not fail, which pays nothing for them. Errors are for what produced no response: a transport error (after
// exhausted retries, wrapped in the retry policy's error, whose reason is
// still the transport error's), a rejection (breaker_open, bulkhead_full,
// budget_exhausted when the budget refused the retry of a transport error),
// a time limit (deadline_exceeded, errors.Is context.DeadlineExceeded and
// timeout.ErrTimeout) or the caller's own context error. spillway.ReasonOf
// reads the reason through http.Client's *url.Error. A retried response is
// drained before the backoff, so when the next attempt is rejected (the
// breaker opened meanwhile) or cut by the total limit, that error is
// returned, not the earlier response.
//
// # Timeouts
//
// Timeouts (default DefaultTimeouts: connect 2s, TLS handshake 5s, response
// headers 5s, body idle 30s, attempt 5s, total 15s). The attempt and total
// limits bound the time to the response headers, backoffs and retries
// included; they never cut a response body short. Once RoundTrip returns a
// response, its body is governed only by BodyIdle (a Read that gets no byte
// for that long fails with deadline_exceeded) and by the caller's own
// context. Each attempt runs under a context of its own, derived from the
// request's, which ends when the caller reads the body to its end or closes
// it — close every body, as always with net/http. The limits are enforced
// with timers, not goroutines.
//
// # Deadline propagation
//
// Every attempt carries TimeoutHeader ("Spillway-Timeout-Ms"): the whole
// milliseconds it will wait for its response headers, the least of the
// attempt limit, the rest of the total limit and the rest of the request
// context's deadline. On the server, Deadline turns the header into the
// request context's deadline, capped by the server's own limit, so that a
// chain of services shares one time budget. See docs/http.md.
//
// # Priority propagation
//
// An attempt whose request context carries a class other than the default
// (spillway.WithPriority: critical or sheddable) carries it in
// PriorityHeader ("Spillway-Priority"), unless the request writes that
// header itself. On the server, Priority turns the header into the request
// context's class, so that the class a client (or the gateway's route)
// gave a call travels down the chain of calls, and each service's load
// shedder (package shed) and the gateway's shed: refuse the same calls
// first. See docs/overload.md.
//
// # Server
//
// Protect runs a handler under a bulkhead and answers the requests it refuses
// with WriteError's answer: status 503, Retry-After: 1, Spillway-Reason:
// bulkhead_full and the brief's JSON body. WriteError writes that answer for
// any error: 503, or 504 for deadline_exceeded and 429 for throttled.
//
// # Concurrency and observation
//
// A Transport is safe for concurrent use and starts no goroutine of its own
// (a timer's function runs only when a limit fires). Config.Observer receives
// an EventAttempt per attempt (Policy "http", Name the key: the shape a
// spillway.Pipeline and spillwaygrpc report too) and an EventTimeout when a
// limit fires; Config.NewDownstream gets it for the downstreams' policies
// (DefaultDownstream passes it on), which report their retries, rejections
// and transitions to it as well, and an Observer with a method
// Register(policies ...any) error (spillwayprom's Metrics, spillwayotel's
// Observer) gets every new downstream's breaker, bulkhead, retry budget,
// hedging policy and guards registered, so that one field exports their
// gauges too:
//
//	spillwayhttp.Config{Observer: metrics}
package spillwayhttp
