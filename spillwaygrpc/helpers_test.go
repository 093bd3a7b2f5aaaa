package spillwaygrpc_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwaygrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scripted is a TestService whose answers follow a script: script(n) is the
// error of the n-th call (1-based) of a kind, nil to answer normally. It
// counts the calls that reached it.
type scripted struct {
	testpb.UnimplementedTestServiceServer
	unary, streams atomic.Int64
	// script decides each unary call's error; nil answers every call.
	script func(ctx context.Context, n int64) error
	// streamScript decides each stream's error before it sends anything.
	streamScript func(n int64) error
	// failAfterFirst makes a server stream fail with it after its first
	// message.
	failAfterFirst error
	// hold, when set, keeps each server stream open after its first message
	// (after its headers with headersFirst) until hold is closed.
	hold chan struct{}
	// headersFirst makes a server stream send its headers before it runs
	// streamScript or sends any message.
	headersFirst bool
}

// wait waits for hold, if set, or for the end of the stream's ctx.
func (s *scripted) wait(ctx context.Context) error {
	if s.hold == nil {
		return nil
	}
	select {
	case <-s.hold:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *scripted) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	n := s.unary.Add(1)
	if s.script != nil {
		if err := s.script(ctx, n); err != nil {
			return nil, err
		}
	}
	return &testpb.SimpleResponse{}, nil
}

func (s *scripted) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	n := s.streams.Add(1)
	if s.headersFirst {
		if err := stream.SendHeader(metadata.MD{}); err != nil {
			return err
		}
		if err := s.wait(stream.Context()); err != nil {
			return err
		}
	}
	if s.streamScript != nil {
		if err := s.streamScript(n); err != nil {
			return err
		}
	}
	for i := range req.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
		if i > 0 {
			continue
		}
		if s.failAfterFirst != nil {
			return s.failAfterFirst
		}
		if !s.headersFirst {
			if err := s.wait(stream.Context()); err != nil {
				return err
			}
		}
	}
	return nil
}

// FullDuplexCall echoes one response per request, after the script let the
// stream go on.
func (s *scripted) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	n := s.streams.Add(1)
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	if s.streamScript != nil {
		if err := s.streamScript(n); err != nil {
			return err
		}
	}
	for {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
		if req, err = stream.Recv(); err != nil {
			return nil // io.EOF: the client is done.
		}
	}
}

// serve starts srv on a loopback port with opts and returns its address;
// the server stops when the test ends.
func serve(t testing.TB, srv testpb.TestServiceServer, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	testpb.RegisterTestServiceServer(s, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return lis.Addr().String()
}

// dial connects to addr with opts; the connection closes when the test ends.
func dial(t testing.TB, addr string, opts ...grpc.DialOption) testpb.TestServiceClient {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return testpb.NewTestServiceClient(cc)
}

// policies are the test's policies, handed to the interceptors through
// NewDownstream so that the test can inspect them.
type policies struct {
	d    *spillwaygrpc.Downstream
	keys atomic.Int64
}

func (p *policies) config() spillwaygrpc.Config {
	return spillwaygrpc.Config{NewDownstream: func(string, spillway.Observer) (*spillwaygrpc.Downstream, error) {
		p.keys.Add(1)
		return p.d, nil
	}}
}

// fastRetry is the default retry policy with millisecond backoffs and no
// budget, so that tests count attempts without waiting.
func fastRetry(max int) *retry.Policy {
	return retry.MustNew(retry.Config{MaxAttempts: max, Initial: time.Millisecond, Max: 2 * time.Millisecond, NoBudget: true})
}

// quietBreaker is a breaker that the tests' few failures do not open.
func quietBreaker() *breaker.Breaker {
	return breaker.MustNew(breaker.Config{MinCalls: 1000, WindowSize: 1000})
}

// clientWith dials addr with both client interceptors over d.
func clientWith(t testing.TB, addr string, d *spillwaygrpc.Downstream) (testpb.TestServiceClient, *policies) {
	p := &policies{d: d}
	cfg := p.config()
	return dial(t, addr,
		grpc.WithUnaryInterceptor(spillwaygrpc.UnaryClientInterceptor(cfg)),
		grpc.WithStreamInterceptor(spillwaygrpc.StreamClientInterceptor(cfg))), p
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func newBulkhead(n int) *bulkhead.Bulkhead {
	return bulkhead.MustNew(bulkhead.Config{MaxConcurrent: n})
}

// grpcStream is the dial option of a stream interceptor over cfg.
func grpcStream(cfg spillwaygrpc.Config) grpc.DialOption {
	return grpc.WithStreamInterceptor(spillwaygrpc.StreamClientInterceptor(cfg))
}
