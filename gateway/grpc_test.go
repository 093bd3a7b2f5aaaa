package gateway_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// grpcUpstream is a gRPC TestService on 127.0.0.1: its unary calls answer
// as script says (nil: OK, with a trailer x-trailer), its streams echo.
type grpcUpstream struct {
	testpb.UnimplementedTestServiceServer
	addr  string
	unary atomic.Int64
	// script is the error of the n-th unary call (1-based), nil for OK.
	script atomic.Pointer[func(ctx context.Context, n int64) error]
	// deadline is the time the last unary call had left when it came in.
	deadline atomic.Int64
}

// newGRPCUpstream serves a grpcUpstream, over TLS with creds when set.
func newGRPCUpstream(t *testing.T, creds credentials.TransportCredentials) *grpcUpstream {
	t.Helper()
	u := &grpcUpstream{}
	var opts []grpc.ServerOption
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	u.addr = serveTestService(t, u, opts...)
	return u
}

// serveTestService serves impl on 127.0.0.1 until the test ends and
// returns its address.
func serveTestService(t *testing.T, impl testpb.TestServiceServer, opts ...grpc.ServerOption) string {
	t.Helper()
	s := grpc.NewServer(opts...)
	testpb.RegisterTestServiceServer(s, impl)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func (u *grpcUpstream) setScript(f func(ctx context.Context, n int64) error) { u.script.Store(&f) }

func (u *grpcUpstream) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	n := u.unary.Add(1)
	if dl, ok := ctx.Deadline(); ok {
		u.deadline.Store(int64(time.Until(dl)))
	}
	if f := u.script.Load(); f != nil {
		if err := (*f)(ctx, n); err != nil {
			return nil, err
		}
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t"+fmt.Sprint(n)))
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (u *grpcUpstream) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	for i := range req.GetResponseParameters() {
		body := []byte{byte(i)}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	stream.SetTrailer(metadata.Pairs("x-trailer", "stream"))
	return nil
}

func (u *grpcUpstream) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// grpcRoute routes the TestService to the upstream at %s (scheme http or
// https) over HTTP/2; %s are extra upstream keys.
const grpcRoute = `upstreams:
  svc:
    instances: ["%s://%s"]
    http2: true
    retry: {backoff: {initial: 1ms, max: 2ms}}
%s
routes:
  - name: svc
    match: {path_prefix: /grpc.testing.TestService/}
    upstream: svc
`

// grpcGateway serves a gateway in front of u (h2c to it) on a public
// listener with o, and returns a TestService client through it; extra are
// upstream keys, base the gateway's Options.Base (nil: its own).
func grpcGateway(t *testing.T, u *grpcUpstream, scheme, extra string, o gateway.ListenerOptions, base http.RoundTripper, creds credentials.TransportCredentials) testpb.TestServiceClient {
	t.Helper()
	cfg := parse(t, fmt.Sprintf(grpcRoute, scheme, u.addr, extra), nil)
	_, addr := serveGatewayWith(t, cfg, o, gateway.Options{Base: base})
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

func h2cGateway(t *testing.T, u *grpcUpstream, extra string) testpb.TestServiceClient {
	return grpcGateway(t, u, "http", extra, gateway.ListenerOptions{H2C: true}, nil, nil)
}

func grpcCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGRPCUnaryThroughH2CWithTrailers(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	c := h2cGateway(t, u, "")
	var trailer metadata.MD
	resp, err := c.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hi")}}, grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(resp.GetPayload().GetBody()); got != "hi" {
		t.Errorf("payload %q, want hi", got)
	}
	if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "t1" {
		t.Errorf("trailer x-trailer %q, want [t1]", got)
	}
}

func TestGRPCUnavailableRetriedThenOK(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	u.setScript(func(_ context.Context, n int64) error {
		if n == 1 {
			return status.Error(codes.Unavailable, "warming up")
		}
		return nil
	})
	c := h2cGateway(t, u, "")
	if _, err := c.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("again")}}); err != nil {
		t.Fatalf("call: %v, want OK after a retry", err)
	}
	if n := u.unary.Load(); n != 2 {
		t.Errorf("upstream saw %d calls, want 2", n)
	}
}

func TestGRPCInvalidArgumentNotRetried(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	u.setScript(func(context.Context, int64) error { return status.Error(codes.InvalidArgument, "name is empty: é") })
	// A breaker that would open on the first failure: INVALID_ARGUMENT is
	// the client's mistake, a success for it.
	c := h2cGateway(t, u, "    breaker: {min_calls: 1}")
	for i := range 3 {
		_, err := c.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{})
		if s := status.Convert(err); s.Code() != codes.InvalidArgument || s.Message() != "name is empty: é" {
			t.Errorf("call %d: status %v %q, want InvalidArgument with the upstream's message", i, s.Code(), s.Message())
		}
	}
	if n := u.unary.Load(); n != 3 {
		t.Errorf("upstream saw %d calls, want 3 (one each, the breaker closed)", n)
	}
}

func TestGRPCBreakerOpenIsUnavailable(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	c := h2cGateway(t, u, "    breaker: {mode: forced_open}")
	var trailer metadata.MD
	_, err := c.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
	s := status.Convert(err)
	if s.Code() != codes.Unavailable || !strings.HasPrefix(s.Message(), "breaker_open: ") {
		t.Errorf("status %v %q, want Unavailable breaker_open: ...", s.Code(), s.Message())
	}
	if got := trailer.Get("spillway-reason"); len(got) != 1 || got[0] != "breaker_open" {
		t.Errorf("spillway-reason %q, want [breaker_open]", got)
	}
	if n := u.unary.Load(); n != 0 {
		t.Errorf("upstream saw %d calls, want 0", n)
	}
}

func TestGRPCFailuresOpenTheBreaker(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	u.setScript(func(context.Context, int64) error { return status.Error(codes.Internal, "broken") })
	c := h2cGateway(t, u, "    breaker: {min_calls: 2}")
	ctx := grpcCtx(t)
	for range 2 {
		if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); status.Code(err) != codes.Internal {
			t.Fatalf("call: %v, want the upstream's Internal", err)
		}
	}
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	if s := status.Convert(err); s.Code() != codes.Unavailable || !strings.HasPrefix(s.Message(), "breaker_open: ") {
		t.Errorf("third call: %v %q, want Unavailable breaker_open (INTERNAL counts as a failure)", s.Code(), s.Message())
	}
}

func TestGRPCDeadlineFromClientContext(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	u.setScript(func(ctx context.Context, n int64) error {
		if n > 1 {
			<-ctx.Done()
			return status.FromContextError(ctx.Err()).Err()
		}
		return nil
	})
	c := h2cGateway(t, u, "    timeouts: {attempt: 1s}")
	ctx, cancel := context.WithTimeout(grpcCtx(t), 5*time.Second)
	defer cancel()
	if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	// The upstream's grpc-timeout is the attempt's limit, not the client's
	// 5s (one more millisecond: the gateway decides).
	if d := time.Duration(u.deadline.Load()); d <= 0 || d > time.Second+time.Millisecond {
		t.Errorf("the upstream had %v left, want at most the attempt limit, 1s", d)
	}
	ctx, cancel = context.WithTimeout(grpcCtx(t), 100*time.Millisecond)
	defer cancel()
	if _, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("call: %v, want DeadlineExceeded", err)
	}
}

// TestGRPCTimeoutAnsweredByGateway sends a call whose grpc-timeout the
// gateway alone enforces (the client does not): the gateway answers
// DEADLINE_EXCEEDED in gRPC's shape.
func TestGRPCTimeoutAnsweredByGateway(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	u.setScript(func(ctx context.Context, _ int64) error {
		<-ctx.Done()
		return ctx.Err()
	})
	cfg := parse(t, fmt.Sprintf(grpcRoute, "http", u.addr, ""), nil)
	addr := servePublic(t, cfg, gateway.ListenerOptions{H2C: true})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	// An empty SimpleRequest: the 5-byte message prefix, length 0.
	req, err := http.NewRequestWithContext(grpcCtx(t), http.MethodPost, "http://"+addr+"/grpc.testing.TestService/UnaryCall",
		strings.NewReader("\x00\x00\x00\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", "50m")
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	// Well before the attempt limit (5s), which would answer the same.
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("answered after %v, want about 50ms (grpc-timeout)", took)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/grpc" ||
		resp.Header.Get("Grpc-Status") != "4" || resp.Header.Get("Spillway-Reason") != "deadline_exceeded" || len(body) != 0 {
		t.Errorf("answer %d %v %q, want 200 trailers-only grpc-status 4 (DEADLINE_EXCEEDED), Spillway-Reason deadline_exceeded",
			resp.StatusCode, resp.Header, body)
	}
}

func TestGRPCServerStreamingThrough(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	c := h2cGateway(t, u, "")
	params := make([]*testpb.ResponseParameters, 5)
	stream, err := c.StreamingOutputCall(grpcCtx(t), &testpb.StreamingOutputCallRequest{ResponseParameters: params})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if b := m.GetPayload().GetBody(); len(b) != 1 || int(b[0]) != i {
			t.Fatalf("message %d: %v", i, b)
		}
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v, want io.EOF", err)
	}
	if got := stream.Trailer().Get("x-trailer"); len(got) != 1 || got[0] != "stream" {
		t.Errorf("trailer %q, want [stream]", got)
	}
}

// TestGRPCBidiStreamingThrough sends each message only after the answer
// to the previous one came back: both directions must be flushed as they go.
func TestGRPCBidiStreamingThrough(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	c := h2cGateway(t, u, "")
	stream, err := c.FullDuplexCall(grpcCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		body := []byte(fmt.Sprint("ping", i))
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
			t.Fatal(err)
		}
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		if string(m.GetPayload().GetBody()) != string(body) {
			t.Fatalf("echo %d: %q", i, m.GetPayload().GetBody())
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v, want io.EOF", err)
	}
}

// TestGRPCOverTLS serves the gateway over TLS (ALPN h2) in front of an
// upstream over TLS (ALPN h2 through the gateway's transport).
func TestGRPCOverTLS(t *testing.T) {
	c := spillwaytest.LoopbackCert(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{c.TLS()}, MinVersion: tls.VersionTLS12}
	u := newGRPCUpstream(t, credentials.NewTLS(serverTLS))
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Roots()}, ForceAttemptHTTP2: true}
	defer base.CloseIdleConnections()
	client := grpcGateway(t, u, "https", "", gateway.ListenerOptions{TLSConfig: serverTLS}, base,
		credentials.NewTLS(&tls.Config{RootCAs: c.Roots()}))
	var trailer metadata.MD
	if _, err := client.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{}, grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	if got := trailer.Get("x-trailer"); len(got) != 1 {
		t.Errorf("trailer %q, want one x-trailer", got)
	}
}

// TestGRPCOverTLSFromTheConfig: the upstream's tls: keys (its CA, a client
// certificate it requires) and http2: true carry a gRPC call over TLS with
// ALPN h2, through the gateway's own transport.
func TestGRPCOverTLSFromTheConfig(t *testing.T) {
	ca := spillwaytest.NewCA(t, "upstream CA")
	serverTLS := &tls.Config{Certificates: []tls.Certificate{ca.Server(t)}, ClientCAs: ca.Pool(),
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	u := newGRPCUpstream(t, credentials.NewTLS(serverTLS))
	dir := t.TempDir()
	caFile := ca.WriteCA(t, dir, "ca.pem")
	certFile, keyFile := spillwaytest.WritePair(t, ca.Client(t, "gateway"), dir, "gateway")
	extra := fmt.Sprintf("    tls: {ca_file: %q, cert_file: %q, key_file: %q}", caFile, certFile, keyFile)
	client := grpcGateway(t, u, "https", extra, gateway.ListenerOptions{H2C: true}, nil, nil)
	var trailer metadata.MD
	if _, err := client.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{}, grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	if got := trailer.Get("x-trailer"); len(got) != 1 {
		t.Errorf("trailer %q, want one x-trailer", got)
	}
}
