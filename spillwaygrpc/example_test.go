package spillwaygrpc_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/spillwaygrpc"
)

// flaky answers UNAVAILABLE to its first call, then succeeds.
type flaky struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int64
}

func (f *flaky) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if f.calls.Add(1) == 1 {
		return nil, status.Error(codes.Unavailable, "warming up")
	}
	return &testpb.SimpleResponse{}, nil
}

// A client whose calls go through the brief's policies: the UNAVAILABLE is
// retried, and the caller sees only the success. The server sheds load above
// 100 concurrent calls.
func Example() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(spillwaygrpc.UnaryServerInterceptor(bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 100}))))
	backend := &flaky{}
	testpb.RegisterTestServiceServer(srv, backend)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(spillwaygrpc.UnaryClientInterceptor(spillwaygrpc.Config{})),
		grpc.WithStreamInterceptor(spillwaygrpc.StreamClientInterceptor(spillwaygrpc.Config{})))
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	_, err = testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{})
	fmt.Println("code:", status.Code(err), "attempts:", backend.calls.Load())
	// Output: code: OK attempts: 2
}

// Classify and Retryable decide what a status code means.
func ExampleClassify() {
	for _, c := range []codes.Code{codes.Unavailable, codes.NotFound, codes.Internal} {
		err := status.Error(c, "")
		fmt.Println(c, spillwaygrpc.Classify(err), spillwaygrpc.Retryable(err))
	}
	// Output:
	// Unavailable failure true
	// NotFound success false
	// Internal failure false
}

// One Downstream per service, shared by the unary and the stream
// interceptor (each interceptor creates its keys on its own, so the shared
// map needs a lock), with a tighter attempt timeout than the default.
func ExampleConfig() {
	var mu sync.Mutex
	downstreams := map[string]*spillwaygrpc.Downstream{}
	cfg := spillwaygrpc.Config{
		Key: func(_ *grpc.ClientConn, method string) string {
			return method[:strings.LastIndexByte(method, '/')] // "/pkg.Service"
		},
		NewDownstream: func(key string, obs spillway.Observer) (*spillwaygrpc.Downstream, error) {
			mu.Lock()
			defer mu.Unlock()
			if d, ok := downstreams[key]; ok {
				return d, nil
			}
			d, err := spillwaygrpc.DefaultDownstream(key, obs)
			if err != nil {
				return nil, err
			}
			if err := d.Attempt.SetDuration(800 * time.Millisecond); err != nil {
				return nil, err
			}
			downstreams[key] = d
			return d, nil
		},
	}
	opts := []grpc.DialOption{
		grpc.WithUnaryInterceptor(spillwaygrpc.UnaryClientInterceptor(cfg)),
		grpc.WithStreamInterceptor(spillwaygrpc.StreamClientInterceptor(cfg)),
	}
	d, _ := cfg.NewDownstream("/grpc.testing.TestService", nil)
	fmt.Println(len(opts), "interceptors;", d.Attempt.Duration(), "per attempt")
	// Output: 2 interceptors; 800ms per attempt
}
