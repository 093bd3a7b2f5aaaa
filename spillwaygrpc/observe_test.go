package spillwaygrpc_test

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/internal/observetest"
	"github.com/spillway-dev/spillway/spillwaygrpc"
	"github.com/spillway-dev/spillway/spillwayprom"
)

// TestObserverInstrumentsACustomDownstream is the one line of issue 11
// item 1 for gRPC: Config.Observer reaches the policies of a custom
// NewDownstream built on DefaultDownstream, made once for the unary and the
// stream interceptor of DialOptions, and their gauges are exported without
// a Register call.
func TestObserverInstrumentsACustomDownstream(t *testing.T) {
	srv := &scripted{hold: make(chan struct{}), script: func(context.Context, int64) error {
		return status.Error(codes.Unavailable, "down")
	}}
	addr := serve(t, srv)
	reg := prometheus.NewPedanticRegistry()
	metrics, err := spillwayprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	var rec observetest.Recorder
	var mu sync.Mutex
	made := map[string]*spillwaygrpc.Downstream{}
	cfg := spillwaygrpc.Config{
		Observer: spillway.Observers{metrics, &rec},
		NewDownstream: func(key string, obs spillway.Observer) (*spillwaygrpc.Downstream, error) {
			mu.Lock()
			defer mu.Unlock()
			d, err := spillwaygrpc.DefaultDownstream(key, obs)
			if err != nil {
				return nil, err
			}
			if d.Breaker, err = breaker.New(breaker.Config{Name: key, WindowSize: 2, MinCalls: 2, Observer: obs}); err != nil {
				return nil, err
			}
			made[key] = d
			return d, d.Bulkhead.Resize(1, 0)
		},
	}
	cl := dial(t, addr, spillwaygrpc.DialOptions(cfg)...)

	// A stream keeps the one bulkhead slot while it lives: a call is refused.
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := cl.StreamingOutputCall(ctx, threeMessages)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); spillway.ReasonOf(err) != spillway.ReasonBulkheadFull {
		t.Fatalf("call beside the stream: %v, want bulkhead_full", err)
	}
	cancel()
	close(srv.hold)
	mu.Lock()
	if len(made) != 1 {
		t.Fatalf("%d downstreams made, want 1 shared by both interceptors", len(made))
	}
	var key string
	var d *spillwaygrpc.Downstream
	for key, d = range made {
	}
	mu.Unlock()
	waitFor(t, "the stream's slot", func() bool { return d.Bulkhead.InFlight() == 0 })
	// Two UNAVAILABLE attempts open the breaker, which refuses the third.
	if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); spillway.ReasonOf(err) != spillway.ReasonBreakerOpen {
		t.Fatalf("failing call: %v, want breaker_open", err)
	}

	rec.Expect(t, "grpc")
	observetest.ExpectGauges(t, reg, key)
}

// With the zero Config and a registering Observer, DialOptions's unary calls
// and streams share one set of policies: no registration conflict between
// the two interceptors.
func TestDialOptionsShareDownstreams(t *testing.T) {
	addr := serve(t, &scripted{})
	metrics, err := spillwayprom.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := dial(t, addr, spillwaygrpc.DialOptions(spillwaygrpc.Config{Observer: metrics})...)
	if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	stream, err := cl.StreamingOutputCall(t.Context(), threeMessages)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("stream beside a unary call: %v", err)
		}
	}
}

// A Key that returns "" names the downstream by the target, as the default
// Key does: a registering Observer gets a named breaker, not an error.
func TestEmptyKeyIsTheTarget(t *testing.T) {
	addr := serve(t, &scripted{})
	metrics, err := spillwayprom.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := dial(t, addr, spillwaygrpc.DialOptions(spillwaygrpc.Config{Observer: metrics,
		Key: func(*grpc.ClientConn, string) string { return "" }})...)
	if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("a call under an empty key: %v", err)
	}
}
