package spillwaygrpc_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/spillwaygrpc"
)

// panicStream panics in RecvMsg.
type panicStream struct{ grpc.ClientStream }

func (panicStream) RecvMsg(any) error            { panic("stream bug") }
func (panicStream) Header() (metadata.MD, error) { return nil, nil }
func (panicStream) Context() context.Context     { return context.Background() }
func (panicStream) Trailer() metadata.MD         { return nil }
func (panicStream) SendMsg(any) error            { return nil }
func (panicStream) CloseSend() error             { return nil }
func (panicStream) Method() string               { return "/t/M" }

// mustPanic runs f and fails unless it panics with want.
func mustPanic(t *testing.T, want any, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != want {
			t.Fatalf("recovered %v, want %v", r, want)
		}
	}()
	f()
}

// TestPanicsReleaseThePermits: an invoker, a streamer or a stream's RecvMsg
// that panics releases the call's bulkhead slot and its half-open breaker's
// probe before the panic goes on (issue 10); with a bulkhead of 1 and one
// probe a leak would refuse every later call.
func TestPanicsReleaseThePermits(t *testing.T) {
	key := func(*grpc.ClientConn, string) string { return "d" }
	var ds *spillwaygrpc.Downstream
	newDS := func(string, spillway.Observer) (*spillwaygrpc.Downstream, error) { return ds, nil }
	for _, tc := range []struct {
		name string
		call func()
	}{
		{"unary invoker", func() {
			ic := spillwaygrpc.UnaryClientInterceptor(spillwaygrpc.Config{Key: key, NewDownstream: newDS})
			invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
				panic("invoker bug")
			}
			mustPanic(t, "invoker bug", func() { _ = ic(t.Context(), "/t/M", nil, nil, nil, invoker) })
		}},
		{"streamer", func() {
			ic := spillwaygrpc.StreamClientInterceptor(spillwaygrpc.Config{Key: key, NewDownstream: newDS})
			streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
				panic("streamer bug")
			}
			mustPanic(t, "streamer bug", func() { _, _ = ic(t.Context(), &grpc.StreamDesc{ServerStreams: true}, nil, "/t/M", streamer) })
		}},
		{"stream RecvMsg", func() {
			ic := spillwaygrpc.StreamClientInterceptor(spillwaygrpc.Config{Key: key, NewDownstream: newDS})
			streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
				return panicStream{}, nil
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cs, err := ic(ctx, &grpc.StreamDesc{ServerStreams: true}, nil, "/t/M", streamer)
			if err != nil {
				t.Fatal(err)
			}
			mustPanic(t, "stream bug", func() { _ = cs.RecvMsg(new(int)) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := probeBreaker(t)
			bh := bulkhead.MustNew(bulkhead.Config{Name: "d", MaxConcurrent: 1})
			ds = &spillwaygrpc.Downstream{Breaker: b, Bulkhead: bh}
			tc.call()
			if n := bh.InFlight(); n != 0 {
				t.Errorf("after the panic the bulkhead holds %d slots, want 0", n)
			}
			// The probe was released as a failure, as in the root Pipeline.
			if s := b.Snapshot(); s.State != breaker.Open || s.ProbesInFlight != 0 {
				t.Errorf("after the panic: breaker %v with %d probes in flight, want open with none", s.State, s.ProbesInFlight)
			}
		})
	}
}
