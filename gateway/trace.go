package gateway

import (
	"net/http"
	"time"

	"github.com/spillway-dev/spillway"
)

// Tracer traces the requests the gateway serves (Options.Tracer).
// gateway/telemetry implements it with OpenTelemetry; the gateway knows
// only this interface, so that it compiles no tracing SDK and a gateway
// without a Tracer does no tracing work at all: one nil check per request.
type Tracer interface {
	// Start begins the server span of the inbound request r, continuing
	// the trace context its headers carry (traceparent, tracestate). It is
	// called on the request's goroutine before anything else.
	Start(r *http.Request) RequestSpan
}

// RequestSpan is the trace of one request: its server span and the client
// spans of its attempts. The gateway calls it from the request's
// goroutine, except AttemptEnd, which may come from the goroutine that
// closes the attempt's response body. Attempts do not overlap: an attempt
// ends (AttemptFailed or AttemptEnd) before the next one starts.
type RequestSpan interface {
	// Attempt begins the client span of the request's attempt n (1, 2,
	// ..., a replica's attempts counted after the route's upstream's) sent
	// to upstream at req.URL, the instance chosen, and writes the
	// trace context of that span into req.Header: the upstream continues
	// the trace from the attempt.
	Attempt(req *http.Request, upstream string, n int)
	// AttemptFailed ends the current attempt's span: no response came;
	// result is its value of the label result of
	// spillway_upstream_attempts_total.
	AttemptFailed(result string, err error)
	// AttemptResponse records the status of the current attempt's
	// response; its span ends with AttemptEnd, when the body is closed.
	AttemptResponse(status int)
	// AttemptEnd ends the current attempt's span; result is how its body
	// ended, a value of the label result of
	// spillway_upstream_attempts_total: success, reset (cut short),
	// timeout (cut by timeouts.body_idle or the attempt limit: a gRPC
	// answer whose status comes in its trailers), status_failure (its gRPC
	// status, in the head or the trailers, is a failure).
	AttemptEnd(result string)
	// Event records a decision a policy made for the request: a retry
	// scheduled, a rejection, a timeout.
	Event(e spillway.Event)
	// Fault records a fault injected into the request's next attempt
	// (FaultDelay with the delay drawn, or FaultAbort with the status
	// answered in the upstream's place).
	Fault(kind string, delay time.Duration, status int)
	// End ends the request's span with what the access log says of it.
	End(RequestInfo)
}

// RequestInfo is what a request came to, as the access log writes it.
type RequestInfo struct {
	Route, Upstream string
	Status          int
	Attempts        int
	// Outcome is the label outcome of spillway_requests_total; Reason the
	// Spillway reason of a refusal or failure; Fallback the kind of a
	// degraded answer (FallbackReplica, ...), "" when none.
	Outcome, Reason, Fallback string
	// Fault is the kind of the last fault injected into its attempts
	// (FaultDelay, FaultAbort), "" when none.
	Fault string
	// GRPCStatus is the grpc-status a gRPC call's client got, named as
	// rpc.response.status_code spells it (UNAVAILABLE), "" for a plain
	// HTTP request or a gRPC call that got none; GRPCFailed says the call
	// failed as spillwaygrpc counts a failure (a failing or missing
	// status), which comes at HTTP status 200.
	GRPCStatus string
	GRPCFailed bool
}
