// Command grpcclient calls a flaky gRPC server through spillwaygrpc's client
// interceptor and prints what the policies did. The server runs in-process on
// 127.0.0.1 and implements the standard health service
// (grpc.health.v1.Health/Check) on a script: the service named in a request
// fails with UNAVAILABLE a number of times before it answers, "bad" is an
// INVALID_ARGUMENT, and the last calls meet an outage that opens the breaker.
//
//	go run ./examples/grpcclient
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwaygrpc"
	"github.com/spillway-dev/spillway/timeout"
)

func main() {
	calls := flag.Int("calls", 6, "calls before the outage")
	outage := flag.Int("outage", 6, "calls during the outage")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *calls, *outage); err != nil {
		fmt.Fprintln(os.Stderr, "grpcclient:", err)
		os.Exit(1)
	}
}

// flakyHealth is the scripted server. A request for service "svc-N" fails
// with UNAVAILABLE on its first N%3 attempts and then answers SERVING;
// "bad" is an INVALID_ARGUMENT; while down is set, every call is UNAVAILABLE.
type flakyHealth struct {
	healthpb.UnimplementedHealthServer
	down atomic.Bool

	mu       sync.Mutex
	attempts map[string]int // per requested service
}

func (h *flakyHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.mu.Lock()
	h.attempts[req.Service]++
	n := h.attempts[req.Service]
	h.mu.Unlock()

	if h.down.Load() {
		return nil, status.Error(codes.Unavailable, "outage")
	}
	if req.Service == "bad" {
		return nil, status.Error(codes.InvalidArgument, "no such service name")
	}
	fails, _ := strconv.Atoi(strings.TrimPrefix(req.Service, "svc-"))
	if n <= fails%3 {
		return nil, status.Error(codes.Unavailable, "try again")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (h *flakyHealth) attemptsOf(service string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts[service]
}

// policies are the example's downstream policies: the brief's shapes with
// short times, so that the program runs in a blink, and a breaker that
// judges the last 10 calls and opens at 75 % failures: the flaky phase stays
// below, the outage trips it.
func policies(key string) (*spillwaygrpc.Downstream, error) {
	b, err := breaker.New(breaker.Config{Name: key, MinCalls: 10, WindowSize: 10, FailureRate: 0.75, OpenFor: time.Minute})
	if err != nil {
		return nil, err
	}
	r, err := retry.New(retry.Config{Name: key, Initial: time.Millisecond, Max: 10 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	bh, err := bulkhead.New(bulkhead.Config{Name: key, MaxConcurrent: 10})
	if err != nil {
		return nil, err
	}
	t, err := timeout.New(timeout.Config{Name: key, Duration: time.Second})
	if err != nil {
		return nil, err
	}
	return &spillwaygrpc.Downstream{Breaker: b, Retry: r, Bulkhead: bh, Attempt: t}, nil
}

// run starts the flaky server, makes calls healthy calls, then outage calls
// while the server is down, printing each outcome and the server's attempt
// count, and stops everything.
func run(ctx context.Context, out io.Writer, calls, outage int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	health := &flakyHealth{attempts: make(map[string]int)}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Stop()
		<-served
	}()

	var down *spillwaygrpc.Downstream
	conn, err := grpc.NewClient(ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(spillwaygrpc.UnaryClientInterceptor(spillwaygrpc.Config{
			NewDownstream: func(key string, _ spillway.Observer) (*spillwaygrpc.Downstream, error) {
				d, err := policies(key)
				down = d
				return d, err
			},
		})))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	check := func(service string) error {
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		attempts := health.attemptsOf(service)
		switch {
		case err == nil:
			fmt.Fprintf(out, "%s: %s, server attempts %d\n", service, resp.GetStatus(), attempts)
		case spillway.IsRejection(err):
			fmt.Fprintf(out, "%s: %s (%s), server attempts %d\n", service, status.Code(err), spillway.ReasonOf(err), attempts)
		default:
			fmt.Fprintf(out, "%s: %s, server attempts %d\n", service, status.Code(err), attempts)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	}

	for i := 1; i <= calls; i++ {
		if err := check("svc-" + strconv.Itoa(i)); err != nil {
			return err
		}
	}
	if err := check("bad"); err != nil {
		return err
	}
	health.down.Store(true)
	for i := 1; i <= outage; i++ {
		if err := check("down-" + strconv.Itoa(i)); err != nil {
			return err
		}
	}
	if down == nil {
		return errors.New("no downstream was created")
	}
	fmt.Fprintf(out, "breaker: %s\n", down.Breaker.State())
	return nil
}
