package telemetry

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/spillwayotel"
)

// The gateway's own attributes, namespaced as spillwayotel's span events'.
const (
	attrUpstream = attribute.Key("spillway.upstream")
	attrOutcome  = attribute.Key("spillway.outcome")
	attrReason   = attribute.Key("spillway.reason")
	attrFallback = attribute.Key("spillway.fallback")
	attrAttempts = attribute.Key("spillway.attempts")
	attrAttempt  = attribute.Key("spillway.attempt")
	attrResult   = attribute.Key("spillway.attempt.result")
	attrKind     = attribute.Key("spillway.kind")
	attrFault    = attribute.Key("spillway.fault")
)

// The options of the spans, made once: an option allocates.
var (
	serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	clientSpan = trace.WithSpanKind(trace.SpanKindClient)
)

// headerCarrier is propagation.HeaderCarrier without the canonicalisation
// of the key at every Get and Set, which allocates: the trace context's
// two headers are looked up by their canonical names.
type headerCarrier http.Header

func canonical(key string) string {
	switch key {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	}
	return http.CanonicalHeaderKey(key)
}

func (h headerCarrier) Get(key string) string {
	if v := h[canonical(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (h headerCarrier) Set(key, value string) { h[canonical(key)] = []string{value} }

func (h headerCarrier) Keys() []string { return propagation.HeaderCarrier(h).Keys() }

// Start begins the server span of r (gateway.Tracer). A span that is not
// sampled records nothing, but its context still goes to the upstream.
func (p *Provider) Start(r *http.Request) gateway.RequestSpan {
	ctx := p.prop.Extract(context.Background(), headerCarrier(r.Header))
	ctx, span := p.tracer.Start(ctx, r.Method, serverSpan...)
	if span.IsRecording() {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		span.SetAttributes(
			semconv.HTTPRequestMethodKey.String(r.Method),
			semconv.URLPath(r.URL.Path),
			semconv.URLScheme(scheme),
			semconv.NetworkProtocolVersion(strconv.Itoa(r.ProtoMajor)+"."+strconv.Itoa(r.ProtoMinor)),
			semconv.UserAgentOriginal(r.UserAgent()))
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			span.SetAttributes(semconv.ClientAddress(host))
		}
		host, port, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host // no port
		}
		span.SetAttributes(semconv.ServerAddress(host))
		if n, err := strconv.Atoi(port); err == nil {
			span.SetAttributes(semconv.ServerPort(n))
		}
	}
	return &requestSpan{p: p, ctx: ctx, span: span, method: r.Method}
}

// requestSpan is a request's server span and its current attempt's span.
type requestSpan struct {
	p    *Provider
	ctx  context.Context // carries span
	span trace.Span
	// method names the span at its end, with the route.
	method string
	// mu guards attempt: AttemptEnd may come from the goroutine closing
	// the response body.
	mu      sync.Mutex
	attempt trace.Span
	// status is the attempt's response status, 0 before its head.
	status int
}

// Attempt starts the client span of attempt n and sends its context with
// req. A request that is not sampled sends the server span's context, with
// the sampled flag off: the upstream's own sampler decides alike.
func (s *requestSpan) Attempt(req *http.Request, upstream string, n int) {
	h := headerCarrier(req.Header)
	if !s.span.IsRecording() {
		s.p.prop.Inject(s.ctx, h)
		return
	}
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(req.Method),
		semconv.ServerAddress(req.URL.Hostname()),
		// The instance's URL without its query, which may carry a secret.
		semconv.URLFull(req.URL.Scheme + "://" + req.URL.Host + req.URL.EscapedPath()),
		attrUpstream.String(upstream),
		attrAttempt.Int(n),
	}
	if port, err := strconv.Atoi(req.URL.Port()); err == nil {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	if n > 1 {
		attrs = append(attrs, semconv.HTTPRequestResendCount(n-1))
	}
	ctx, span := s.p.tracer.Start(s.ctx, req.Method, clientSpan, trace.WithAttributes(attrs...))
	s.p.prop.Inject(ctx, h)
	s.mu.Lock()
	s.endAttempt() // defensive: attempts do not overlap
	s.attempt, s.status = span, 0
	s.mu.Unlock()
}

// AttemptFailed ends the attempt's span with its failure.
func (s *requestSpan) AttemptFailed(result string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attempt == nil {
		return
	}
	s.attempt.SetAttributes(attrResult.String(result), semconv.ErrorTypeKey.String(result))
	s.attempt.SetStatus(codes.Error, err.Error())
	s.endAttempt()
}

// AttemptResponse records the attempt's response status.
func (s *requestSpan) AttemptResponse(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attempt == nil {
		return
	}
	result := "success"
	if status >= 500 {
		result = "status_failure"
	}
	s.status = status
	s.attempt.SetAttributes(semconv.HTTPResponseStatusCode(status), attrResult.String(result))
	if status >= 400 { // a client span's 4xx is an error too (semantic conventions)
		s.attempt.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
		s.attempt.SetStatus(codes.Error, "")
	}
}

// AttemptEnd ends the attempt's span once its body is closed, with the
// result the body ended with. A 5xx response's result (status_failure,
// set by AttemptResponse) stays.
func (s *requestSpan) AttemptEnd(result string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attempt == nil {
		return
	}
	if result != "success" && s.status < 500 {
		s.attempt.SetAttributes(attrResult.String(result), semconv.ErrorTypeKey.String(result))
		s.attempt.SetStatus(codes.Error, endDescription(result))
	}
	s.endAttempt()
}

// endDescription is the span status's description of an attempt whose
// body ended with result, a failure.
func endDescription(result string) string {
	switch result {
	case "status_failure":
		return "the answer's grpc-status is a failure"
	case "timeout":
		return "the response body timed out"
	}
	return "the response body was cut short"
}

// endAttempt ends the current attempt's span; s.mu is held.
func (s *requestSpan) endAttempt() {
	if s.attempt != nil {
		s.attempt.End()
		s.attempt = nil
	}
}

// Event adds a policy's retry or rejection to the server span, as
// spillwayotel does in a program: spillway.retry, spillway.rejection.
func (s *requestSpan) Event(e spillway.Event) {
	if !s.span.IsRecording() {
		return
	}
	e.Context = s.ctx
	s.p.events.Observe(e)
}

// Fault adds a spillway.fault event to the server span: the kind of the
// fault injected into the next attempt, with its delay or the status
// answered in the upstream's place.
func (s *requestSpan) Fault(kind string, delay time.Duration, status int) {
	if !s.span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{attrKind.String(kind)}
	if delay > 0 {
		attrs = append(attrs, attribute.Float64("spillway.fault.delay_ms", float64(delay)/float64(time.Millisecond)))
	}
	if status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
	}
	s.span.AddEvent("spillway.fault", trace.WithAttributes(attrs...))
}

// End ends the server span with what the request came to; the span is
// named after the method and the Spillway route (http.route), whose
// number is bounded, never after the path.
func (s *requestSpan) End(info gateway.RequestInfo) {
	s.mu.Lock()
	s.endAttempt()
	s.mu.Unlock()
	span := s.span
	if !span.IsRecording() {
		span.End()
		return
	}
	if info.Route != "" {
		span.SetName(s.method + " " + info.Route)
		span.SetAttributes(semconv.HTTPRoute(info.Route))
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(info.Status), attrOutcome.String(info.Outcome), attrAttempts.Int(info.Attempts))
	if info.Upstream != "" {
		span.SetAttributes(attrUpstream.String(info.Upstream))
	}
	if info.Reason != "" {
		span.SetAttributes(attrReason.String(info.Reason))
	}
	if info.Fallback != "" {
		span.SetAttributes(attrFallback.String(info.Fallback))
		span.AddEvent(spillwayotel.EventNameFallback, trace.WithAttributes(attrKind.String(info.Fallback), attrReason.String(info.Reason)))
	}
	if info.Fault != "" {
		span.SetAttributes(attrFault.String(info.Fault))
	}
	if info.GRPCStatus != "" {
		span.SetAttributes(semconv.RPCResponseStatusCode(info.GRPCStatus))
	}
	// A gRPC call's failure comes at HTTP status 200: its grpc-status says.
	if info.Status >= 500 || info.GRPCFailed {
		span.SetStatus(codes.Error, info.Reason)
	}
	span.End()
}
