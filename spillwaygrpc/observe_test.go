package spillwaygrpc_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/spillwaygrpc"
	"github.com/spillway-dev/spillway/spillwayprom"
)

// recorder counts events by "policy kind reason".
type recorder struct {
	mu     sync.Mutex
	events map[string]int
}

func (r *recorder) Observe(e spillway.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		r.events = map[string]int{}
	}
	r.events[e.Policy+" "+e.Kind.String()+" "+string(e.Reason)]++
}

func (r *recorder) count(what string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[what]
}

// TestObserverInstrumentsACustomDownstream is the one line of issue 11
// item 1 for gRPC: Config.Observer reaches the policies of a custom
// NewDownstream built on DefaultDownstream, shared by the unary and the
// stream interceptor, and their gauges are exported without a Register call.
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
	var rec recorder
	var mu sync.Mutex
	made := map[string]*spillwaygrpc.Downstream{}
	cfg := spillwaygrpc.Config{
		Observer: spillway.Observers{metrics, &rec},
		NewDownstream: func(key string, obs spillway.Observer) (*spillwaygrpc.Downstream, error) {
			mu.Lock()
			defer mu.Unlock()
			if d, ok := made[key]; ok {
				return d, nil
			}
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
	cl := dial(t, addr, grpc.WithUnaryInterceptor(spillwaygrpc.UnaryClientInterceptor(cfg)), grpcStream(cfg))

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

	for _, want := range []string{"grpc attempt ", "bulkhead rejection bulkhead_full", "retry retry ",
		"breaker transition ", "breaker rejection breaker_open"} {
		if rec.count(want) == 0 {
			t.Errorf("no %q event", want)
		}
	}
	want := `
# HELP spillway_bulkhead_limit Concurrent calls the bulkhead admits.
# TYPE spillway_bulkhead_limit gauge
spillway_bulkhead_limit{name="` + key + `"} 1
# HELP spillway_circuit_state Circuit breaker state: 1 for the current state, 0 for the others.
# TYPE spillway_circuit_state gauge
spillway_circuit_state{name="` + key + `",state="closed"} 0
spillway_circuit_state{name="` + key + `",state="disabled"} 0
spillway_circuit_state{name="` + key + `",state="forced_open"} 0
spillway_circuit_state{name="` + key + `",state="half_open"} 0
spillway_circuit_state{name="` + key + `",state="metrics_only"} 0
spillway_circuit_state{name="` + key + `",state="open"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "spillway_bulkhead_limit", "spillway_circuit_state"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(metrics, "spillway_retry_budget_remaining"); n != 1 {
		t.Errorf("%d retry budget series, want 1", n)
	}
}
