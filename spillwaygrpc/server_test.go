package spillwaygrpc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwaygrpc"
)

// checkShed checks that err and trailer are a shed call's answer.
func checkShed(t *testing.T, err error, trailer metadata.MD) {
	t.Helper()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "bulkhead_full") {
		t.Fatalf("err = %v, want RESOURCE_EXHAUSTED naming bulkhead_full", err)
	}
	if got := trailer.Get(spillwaygrpc.PushbackKey); len(got) != 1 || got[0] != "1000" {
		t.Fatalf("pushback trailer %v, want [1000]", got)
	}
	if got := trailer.Get(spillwaygrpc.ReasonKey); len(got) != 1 || got[0] != "bulkhead_full" {
		t.Fatalf("reason trailer %v, want [bulkhead_full]", got)
	}
}

func TestUnaryServerShedsLoad(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	srv := &scripted{script: func(_ context.Context, n int64) error {
		if n == 1 {
			close(entered)
			<-release
		}
		return nil
	}}
	bh := newBulkhead(1)
	cl := dial(t, serve(t, srv, grpc.UnaryInterceptor(spillwaygrpc.UnaryServerInterceptor(bh))))
	done := make(chan error)
	go func() {
		_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{})
		done <- err
	}()
	<-entered
	var trailer metadata.MD
	_, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
	checkShed(t, err, trailer)
	if srv.unary.Load() != 1 || bh.Rejected() != 1 {
		t.Fatalf("handler ran %d times, %d rejected; want 1 and 1", srv.unary.Load(), bh.Rejected())
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if bh.InFlight() != 0 {
		t.Fatalf("in flight %d after the handler returned, want 0", bh.InFlight())
	}
	if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("after the load: %v", err)
	}
}

func TestStreamServerShedsLoad(t *testing.T) {
	bh := newBulkhead(1)
	cl := dial(t, serve(t, &scripted{}, grpc.StreamInterceptor(spillwaygrpc.StreamServerInterceptor(bh))))
	// The first stream holds the only slot: its handler waits for a message.
	first, err := cl.FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first stream to take the slot", func() bool { return bh.InFlight() == 1 })
	second, err := cl.StreamingOutputCall(t.Context(), threeMessages)
	if err != nil {
		t.Fatal(err)
	}
	_, err = recvAll(second)
	checkShed(t, err, second.Trailer())
	if err := first.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Recv(); err == nil {
		t.Fatal("first stream: want its end")
	}
	waitFor(t, "the slot to come back", func() bool { return bh.InFlight() == 0 })
}

func TestClientRetriesAShedCallAfterThePushback(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	srv := &scripted{script: func(_ context.Context, n int64) error {
		if n == 1 {
			close(entered)
			<-release
		}
		return nil
	}}
	bh := newBulkhead(1)
	addr := serve(t, srv, grpc.UnaryInterceptor(spillwaygrpc.UnaryServerInterceptor(bh)))
	plain := dial(t, addr)
	done := make(chan error)
	go func() {
		_, err := plain.UnaryCall(t.Context(), &testpb.SimpleRequest{})
		done <- err
	}()
	<-entered
	// The client's retry waits the server's 1 s pushback (under its 5 s
	// cap); the first call ends meanwhile, so the retry finds a free slot.
	cl, _ := clientWith(t, addr, &spillwaygrpc.Downstream{Retry: retry.MustNew(retry.Config{Initial: time.Millisecond, NoBudget: true})})
	go func() {
		for bh.Rejected() == 0 {
			time.Sleep(time.Millisecond)
		}
		close(release)
	}()
	start := time.Now()
	if _, err := cl.UnaryCall(t.Context(), &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("retried call: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("retried after %v, want the 1 s pushback", d)
	}
	if srv.unary.Load() != 2 || bh.Rejected() != 1 {
		t.Fatalf("handler ran %d times, %d shed; want 2 and 1", srv.unary.Load(), bh.Rejected())
	}
}
