package gateway_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway/gateway"
)

// lateFailUpstream is a TestService whose server-streaming call sends one
// message and then, after delay, ends with the status code (OK when 0):
// its status comes in the trailers, after the answer's head.
type lateFailUpstream struct {
	testpb.UnimplementedTestServiceServer
	addr  string
	code  atomic.Int32
	delay atomic.Int64 // nanoseconds
}

func newLateFailUpstream(t *testing.T, code codes.Code) *lateFailUpstream {
	t.Helper()
	u := &lateFailUpstream{}
	u.code.Store(int32(code))
	u.addr = serveTestService(t, u)
	return u
}

func (u *lateFailUpstream) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte("m")}}); err != nil {
		return err
	}
	if d := time.Duration(u.delay.Load()); d > 0 {
		// The upstream's slowness under test, not a wait for a state.
		select {
		case <-time.After(d):
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
	if c := codes.Code(u.code.Load()); c != codes.OK {
		return status.Error(c, "late")
	}
	return nil
}

// UnaryCall answers at once with the status code, trailers-only when it is
// not OK.
func (u *lateFailUpstream) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if c := codes.Code(u.code.Load()); c != codes.OK {
		return nil, status.Error(c, "early")
	}
	return &testpb.SimpleResponse{}, nil
}

// lateFailGateway serves a gateway whose upstream svc (h2c, with the keys
// extra) has the instances addrs, and returns it with a client through it.
func lateFailGateway(t *testing.T, extra string, addrs ...string) (*gateway.Gateway, testpb.TestServiceClient) {
	t.Helper()
	return lateFailGatewayWith(t, extra, gateway.Options{}, addrs...)
}

// lateFailGatewayWith is lateFailGateway with the gateway's options o.
func lateFailGatewayWith(t *testing.T, extra string, o gateway.Options, addrs ...string) (*gateway.Gateway, testpb.TestServiceClient) {
	t.Helper()
	yaml := fmt.Sprintf(`upstreams:
  svc:
    instances: ["http://%s"]
    http2: true
%s
routes:
  - name: svc
    match: {path_prefix: /grpc.testing.TestService/}
    upstream: svc
`, strings.Join(addrs, `", "http://`), extra)
	g, addr := serveGatewayWith(t, parse(t, yaml, nil), gateway.ListenerOptions{H2C: true}, o)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return g, testpb.NewTestServiceClient(cc)
}

// lateStream makes one server-streaming call and returns the status it
// ended with (OK at io.EOF), after checking that its message came through.
func lateStream(t *testing.T, c testpb.TestServiceClient) *status.Status {
	t.Helper()
	stream, err := c.StreamingOutputCall(grpcCtx(t), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil {
		return status.Convert(err)
	}
	if string(m.GetPayload().GetBody()) != "m" {
		t.Fatalf("message %q, want m", m.GetPayload().GetBody())
	}
	if _, err = stream.Recv(); err == io.EOF {
		return status.New(codes.OK, "")
	}
	return status.Convert(err)
}

// lateStreams makes n calls with lateStream, each of which must end with
// code and, unless msg is "", the message msg.
func lateStreams(t *testing.T, c testpb.TestServiceClient, n int, code codes.Code, msg string) {
	t.Helper()
	for i := range n {
		if s := lateStream(t, c); s.Code() != code || msg != "" && s.Message() != msg {
			t.Fatalf("call %d: %v %q, want %v %q", i, s.Code(), s.Message(), code, msg)
		}
	}
}

// TestGRPCTrailerFailureOpensTheBreaker: a call that fails after sending a
// message (UNAVAILABLE in the trailers) counts as a failure.
func TestGRPCTrailerFailureOpensTheBreaker(t *testing.T) {
	u := newLateFailUpstream(t, codes.Unavailable)
	g, c := lateFailGateway(t, "    breaker: {min_calls: 3}", u.addr)
	lateStreams(t, c, 3, codes.Unavailable, "late")
	waitFor(t, "the breaker to open", func() bool { return g.Status().Upstreams["svc"].Breaker.State == "open" })
	if s := lateStream(t, c); s.Code() != codes.Unavailable || !strings.HasPrefix(s.Message(), "breaker_open: ") {
		t.Errorf("fourth call: %v %q, want Unavailable breaker_open", s.Code(), s.Message())
	}
}

// TestGRPCTrailerInvalidArgumentIsASuccess: INVALID_ARGUMENT after a
// message is the client's mistake, a success for the breaker; the
// UNAVAILABLE that follows is one failure among four calls.
func TestGRPCTrailerInvalidArgumentIsASuccess(t *testing.T) {
	u := newLateFailUpstream(t, codes.InvalidArgument)
	g, c := lateFailGateway(t, "    breaker: {min_calls: 2}", u.addr)
	lateStreams(t, c, 3, codes.InvalidArgument, "")
	u.code.Store(int32(codes.Unavailable))
	if s := lateStream(t, c); s.Code() != codes.Unavailable || s.Message() != "late" {
		t.Fatalf("last call: %v %q, want the upstream's Unavailable late", s.Code(), s.Message())
	}
	waitFor(t, "a failure rate of 1/4", func() bool {
		b := g.Status().Upstreams["svc"].Breaker
		if b.State != "closed" {
			t.Fatalf("breaker %s: INVALID_ARGUMENT counted as a failure", b.State)
		}
		return b.FailureRate == 0.25
	})
}

// TestGRPCTrailerFailureEjectsTheInstance: outlier detection counts a
// failing status in the trailers against the instance that sent it.
func TestGRPCTrailerFailureEjectsTheInstance(t *testing.T) {
	bad, good := newLateFailUpstream(t, codes.Unavailable), newLateFailUpstream(t, codes.OK)
	g, c := lateFailGateway(t, "    breaker: {min_calls: 1000}\n    outlier: {consecutive_failures: 2}", bad.addr, good.addr)
	waitFor(t, "the failing instance to be ejected", func() bool {
		lateStream(t, c)
		v, _ := g.Upstream("svc")
		return v.Instances[0].Ejected
	})
	if v, _ := g.Upstream("svc"); v.Instances[1].Ejected {
		t.Errorf("the instance that ends its calls OK was ejected: %+v", v.Instances)
	}
}
