package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/gateway"
)

// attemptsOf returns spillway_upstream_attempts_total{upstream,result} in
// g's registry, 0 when the series does not exist.
func attemptsOf(t *testing.T, g *gateway.Gateway, upstream, result string) float64 {
	t.Helper()
	return max(gatewayMetric(t, g, "spillway_upstream_attempts_total", "upstream", upstream, "result", result), 0)
}

// wantAttempts waits until g has counted n attempts of upstream svc with
// result, and checks that it counted none with any other result: the
// gateway counts an answer whose status is in its trailers when it closes
// the upstream's body, just after the client has them.
func wantAttempts(t *testing.T, g *gateway.Gateway, result string, n float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%v attempts counted %s", n, result), func() bool { return attemptsOf(t, g, "svc", result) == n })
	for _, r := range []string{"success", "status_failure", "reset", "canceled", "timeout"} {
		if got := attemptsOf(t, g, "svc", r); r != result && got != 0 {
			t.Errorf("%v attempts counted %s, want 0", got, r)
		}
	}
}

// TestGRPCTrailerFailureCountsAsStatusFailure: a call that fails in its
// trailers after sending a message is an attempt whose result is
// status_failure, as a trailers-only failure is, not a success.
func TestGRPCTrailerFailureCountsAsStatusFailure(t *testing.T) {
	u := newLateFailUpstream(t, codes.Unavailable)
	g, c := lateFailGateway(t, "    breaker: {min_calls: 1000}", u.addr)
	lateStreams(t, c, 3, codes.Unavailable, "late")
	wantAttempts(t, g, "status_failure", 3)
}

// TestGRPCTrailerInvalidArgumentCountsAsSuccess: INVALID_ARGUMENT in the
// trailers is the client's mistake: the attempt is a success, once.
func TestGRPCTrailerInvalidArgumentCountsAsSuccess(t *testing.T) {
	u := newLateFailUpstream(t, codes.InvalidArgument)
	g, c := lateFailGateway(t, "", u.addr)
	lateStreams(t, c, 2, codes.InvalidArgument, "")
	wantAttempts(t, g, "success", 2)
}

// TestGRPCSlowStreamIsASlowCall: a call whose head comes at once and whose
// trailers (OK) come after breaker.slow_call.duration is a slow call, as
// spillwaygrpc judges a unary call by its whole duration: three of them
// open the breaker.
func TestGRPCSlowStreamIsASlowCall(t *testing.T) {
	u := newLateFailUpstream(t, codes.OK)
	u.delay.Store(int64(100 * time.Millisecond))
	g, c := lateFailGateway(t, "    breaker: {min_calls: 3, slow_call: {duration: 50ms, rate: 100%}}", u.addr)
	lateStreams(t, c, 3, codes.OK, "")
	waitFor(t, "the breaker to open on slow calls", func() bool { return g.Status().Upstreams["svc"].Breaker.State == "open" })
}

// TestGRPCAbandonedStreamCountsAsSuccess: a call whose client goes away
// after a message, before the trailers, is one successful attempt, as its
// head was: nothing says the upstream failed.
func TestGRPCAbandonedStreamCountsAsSuccess(t *testing.T) {
	u := newLateFailUpstream(t, codes.Unavailable)
	u.delay.Store(int64(time.Minute))
	g, c := lateFailGateway(t, "", u.addr)
	abandonStream(t, c)
	wantAttempts(t, g, "success", 1)
}

// abandonStream makes a server-streaming call, reads its first message
// and goes away.
func abandonStream(t *testing.T, c testpb.TestServiceClient) {
	t.Helper()
	ctx, cancel := context.WithCancel(grpcCtx(t))
	defer cancel()
	stream, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
}

// TestGRPCSlowStreamClosesAHalfOpenBreaker: a half-open breaker's probe
// that streams is judged at its head, as spillwaygrpc judges an
// established stream: a stream slow to end (not to answer) closes the
// breaker, and its end counts nothing.
func TestGRPCSlowStreamClosesAHalfOpenBreaker(t *testing.T) {
	u := newLateFailUpstream(t, codes.OK)
	u.delay.Store(int64(600 * time.Millisecond))
	g, c := lateFailGateway(t, "    breaker: {min_calls: 3, slow_call: {duration: 300ms, rate: 100%}, open_for: 200ms, half_open_probes: 1}", u.addr)
	state := func() string { return g.Status().Upstreams["svc"].Breaker.State }
	lateStreams(t, c, 3, codes.OK, "")
	waitFor(t, "the breaker to open on slow calls", func() bool { return state() == "open" })
	waitFor(t, "the breaker to turn half-open", func() bool { return state() == "half_open" })
	if s := lateStream(t, c); s.Code() != codes.OK {
		t.Fatalf("probe: %v %q, want OK", s.Code(), s.Message())
	}
	if got := state(); got != "closed" {
		t.Errorf("after a slow streamed probe the breaker is %s, want closed", got)
	}
}

// TestGRPCIdleStreamCountsAsTimeout: a call whose upstream goes quiet
// after a message, past timeouts.body_idle, is an attempt that timed out.
func TestGRPCIdleStreamCountsAsTimeout(t *testing.T) {
	u := newLateFailUpstream(t, codes.OK)
	u.delay.Store(int64(time.Minute))
	g, c := lateFailGateway(t, "    timeouts: {body_idle: 100ms}", u.addr)
	if s := lateStream(t, c); s.Code() == codes.OK {
		t.Fatal("the idle stream ended OK")
	}
	wantAttempts(t, g, "timeout", 1)
}

// endTracer is a Tracer that keeps the result each attempt's span ended
// with (RequestSpan.AttemptEnd) and each request's RequestInfo, and
// ignores the rest.
type endTracer struct {
	mu      sync.Mutex
	results []string
	infos   []gateway.RequestInfo
}

func (e *endTracer) Start(*http.Request) gateway.RequestSpan { return endSpan{e} }

func (e *endTracer) ended() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.results)
}

type endSpan struct{ e *endTracer }

func (endSpan) Attempt(*http.Request, string, int) {}
func (endSpan) AttemptFailed(string, error)        {}
func (endSpan) AttemptResponse(int)                {}
func (s endSpan) AttemptEnd(result string) {
	s.e.mu.Lock()
	s.e.results = append(s.e.results, result)
	s.e.mu.Unlock()
}
func (endSpan) Event(spillway.Event)             {}
func (endSpan) Fault(string, time.Duration, int) {}
func (s endSpan) End(info gateway.RequestInfo) {
	s.e.mu.Lock()
	s.e.infos = append(s.e.infos, info)
	s.e.mu.Unlock()
}

func (e *endTracer) requests() []gateway.RequestInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.infos)
}

// TestGRPCFailingStatusOnTheSpan: an attempt's span ends with the result
// the metric counts: status_failure for a failing status in the trailers
// and for one in the head (a trailers-only answer), not reset.
func TestGRPCFailingStatusOnTheSpan(t *testing.T) {
	u := newLateFailUpstream(t, codes.Unavailable)
	tr := &endTracer{}
	g, c := lateFailGatewayWith(t, "    retry: {max_attempts: 1}", gateway.Options{Tracer: tr}, u.addr)
	if s := lateStream(t, c); s.Code() != codes.Unavailable {
		t.Fatalf("stream: %v %q, want the upstream's Unavailable", s.Code(), s.Message())
	}
	if _, err := c.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("unary call: %v, want the upstream's Unavailable", err)
	}
	wantAttempts(t, g, "status_failure", 2)
	waitFor(t, "two attempt spans ended", func() bool { return len(tr.ended()) == 2 })
	if got := tr.ended(); !slices.Equal(got, []string{"status_failure", "status_failure"}) {
		t.Errorf("attempt spans ended %q, want status_failure twice", got)
	}
	// The request's span: the status its client got, and a failure
	// although the HTTP status is 200.
	waitFor(t, "two request spans ended", func() bool { return len(tr.requests()) == 2 })
	for _, info := range tr.requests() {
		if info.Status != http.StatusOK || info.GRPCStatus != "UNAVAILABLE" || !info.GRPCFailed || info.Outcome != "upstream_5xx" {
			t.Errorf("request span info %+v, want status 200, GRPCStatus UNAVAILABLE, GRPCFailed, outcome upstream_5xx", info)
		}
	}
}
