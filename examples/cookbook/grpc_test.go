package cookbook_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwaygrpc"
)

// A gRPC client whose calls go through spillwaygrpc's interceptor: each
// target gets its policies (breaker, retry with its budget, bulkhead,
// attempt timeout) on its first call. UNAVAILABLE is retried; a client
// error such as INVALID_ARGUMENT is not, and counts as an answer (a success)
// for the breaker; an outage opens the breaker, whose rejections are
// UNAVAILABLE statuses with the reason breaker_open, and the retry stops at
// the first one.
func Example_grpcClient() {
	srv, addr := startInventory()
	defer srv.stop()

	var policies *spillwaygrpc.Downstream
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(spillwaygrpc.UnaryClientInterceptor(spillwaygrpc.Config{
			NewDownstream: func(key string, obs spillway.Observer) (*spillwaygrpc.Downstream, error) {
				d, err := spillwaygrpc.DefaultDownstream(key, obs) // the brief's policies, named key
				if err != nil {
					return nil, err
				}
				// Short times for the example; keep the defaults' shape in production.
				d.Retry, err = d.Retry.With(func(c *retry.Config) { c.Initial = time.Millisecond })
				if err != nil {
					return nil, err
				}
				err = d.Breaker.Update(func(c *breaker.Config) { c.MinCalls, c.WindowSize, c.FailureRate = 5, 10, 0.6 })
				policies = d
				return d, err
			},
		})))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	inventory := healthpb.NewHealthClient(conn)

	check := func(service string) {
		before := srv.calls.Load()
		resp, err := inventory.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		calls := srv.calls.Load() - before
		if err != nil {
			fmt.Printf("%s: %s (%s), server calls %d\n", service, status.Code(err), spillway.ReasonOf(err), calls)
			return
		}
		fmt.Printf("%s: %s, server calls %d\n", service, resp.GetStatus(), calls)
	}

	check("lamps")
	srv.failNext.Store(2) // two transient failures: retried
	check("chairs")
	check("bad") // a client error: not retried
	srv.failNext.Store(1 << 20)
	for _, s := range []string{"tables", "desks", "beds"} { // an outage
		check(s)
	}
	fmt.Println("breaker:", policies.Breaker.State())
	// Output:
	// lamps: SERVING, server calls 1
	// chairs: SERVING, server calls 3
	// bad: InvalidArgument (upstream_error), server calls 1
	// tables: Unavailable (upstream_error), server calls 3
	// desks: Unavailable (breaker_open), server calls 0
	// beds: Unavailable (breaker_open), server calls 0
	// breaker: open
}

// inventory is the example's server: the standard health service, failing
// the next failNext calls with UNAVAILABLE and every request for "bad" with
// INVALID_ARGUMENT.
type inventory struct {
	healthpb.UnimplementedHealthServer
	failNext, calls atomic.Int64
	srv             *grpc.Server
	done            chan struct{}
}

func (s *inventory) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	s.calls.Add(1)
	switch {
	case req.Service == "bad":
		return nil, status.Error(codes.InvalidArgument, "unknown service name")
	case s.failNext.Add(-1) >= 0:
		return nil, status.Error(codes.Unavailable, "overloaded")
	}
	s.failNext.Store(0)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// startInventory serves an inventory on 127.0.0.1 and returns it with its address.
func startInventory() (*inventory, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	s := &inventory{srv: grpc.NewServer(), done: make(chan struct{})}
	healthpb.RegisterHealthServer(s.srv, s)
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, ln.Addr().String()
}

func (s *inventory) stop() {
	s.srv.Stop()
	<-s.done
}
