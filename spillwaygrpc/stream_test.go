package spillwaygrpc_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/spillwaygrpc"
)

// threeMessages asks StreamingOutputCall for three responses.
var threeMessages = &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{}, {}, {}}}

// recvAll reads a stream to its end and returns how many messages came and
// the final error (nil for io.EOF).
func recvAll(s interface {
	Recv() (*testpb.StreamingOutputCallResponse, error)
}) (int, error) {
	n := 0
	for {
		_, err := s.Recv()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

func failStreams(n int64, c codes.Code) func(int64) error {
	return func(i int64) error {
		if i <= n {
			return status.Error(c, "scripted")
		}
		return nil
	}
}

func TestStreamEstablishmentFailureIsRetried(t *testing.T) {
	srv := &scripted{streamScript: failStreams(2, codes.Unavailable)}
	bh, b := newBulkhead(10), quietBreaker()
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b, Bulkhead: bh})
	st, err := cl.StreamingOutputCall(t.Context(), threeMessages)
	if err != nil {
		t.Fatal(err)
	}
	n, err := recvAll(st)
	if err != nil || n != 3 {
		t.Fatalf("received %d messages, err %v; want 3 and io.EOF", n, err)
	}
	if srv.streams.Load() != 3 {
		t.Fatalf("server saw %d streams, want 3", srv.streams.Load())
	}
	if bh.InFlight() != 0 {
		t.Fatalf("bulkhead in flight %d after the stream ended, want 0", bh.InFlight())
	}
	if s := b.Snapshot(); s.Failures != 2 || s.Calls != 3 {
		t.Fatalf("breaker %+v, want 2 failures in 3 calls", s)
	}
}

func TestStreamRetriesRunOut(t *testing.T) {
	srv := &scripted{streamScript: failStreams(100, codes.Unavailable)}
	bh := newBulkhead(10)
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Bulkhead: bh})
	st, err := cl.StreamingOutputCall(t.Context(), threeMessages)
	if err != nil {
		t.Fatal(err)
	}
	_, err = recvAll(st)
	if status.Code(err) != codes.Unavailable || srv.streams.Load() != 3 {
		t.Fatalf("err = %v after %d streams, want UNAVAILABLE after 3", err, srv.streams.Load())
	}
	if bh.InFlight() != 0 {
		t.Fatalf("bulkhead in flight %d, want 0", bh.InFlight())
	}
}

func TestStreamIsNotRetriedAfterAMessage(t *testing.T) {
	srv := &scripted{failAfterFirst: status.Error(codes.Unavailable, "mid-stream")}
	bh, b := newBulkhead(10), quietBreaker()
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b, Bulkhead: bh})
	st, err := cl.StreamingOutputCall(t.Context(), threeMessages)
	if err != nil {
		t.Fatal(err)
	}
	n, err := recvAll(st)
	if n != 1 || status.Code(err) != codes.Unavailable || srv.streams.Load() != 1 {
		t.Fatalf("%d messages, err %v, %d streams; want 1, UNAVAILABLE, 1", n, err, srv.streams.Load())
	}
	// The first message established the stream: the breaker counted it a
	// success then, and has no permit left to count the later failure with.
	if s := b.Snapshot(); bh.InFlight() != 0 || s.Calls != 1 || s.Failures != 0 {
		t.Fatalf("in flight %d, breaker %+v; want 0 and 1 successful call", bh.InFlight(), s)
	}
}

func TestStreamBidiReplaysSentMessages(t *testing.T) {
	srv := &scripted{streamScript: failStreams(1, codes.Aborted)}
	bh := newBulkhead(10)
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Bulkhead: bh})
	st, err := cl.FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"a", "b"} {
		// The server aborts the first stream once it has read "a": sending
		// "b" may find it broken and return io.EOF, as gRPC's SendMsg does
		// (the status comes from Recv). "b" is kept for replay all the same.
		err := st.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(body)}})
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var got string
	for {
		m, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got += string(m.GetPayload().GetBody())
	}
	if got != "ab" || srv.streams.Load() != 2 {
		t.Fatalf("echo %q over %d streams, want \"ab\" over 2 (the first aborted, the second replayed)", got, srv.streams.Load())
	}
	if bh.InFlight() != 0 {
		t.Fatalf("bulkhead in flight %d, want 0", bh.InFlight())
	}
}

func TestStreamPermitReleasedWhenTheContextEnds(t *testing.T) {
	srv := &scripted{}
	bh, b := newBulkhead(10), quietBreaker()
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b, Bulkhead: bh})
	ctx, cancel := context.WithCancel(t.Context())
	// The server waits for a message that never comes.
	st, err := cl.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bh.InFlight() != 1 {
		t.Fatalf("in flight %d while the stream lives, want 1", bh.InFlight())
	}
	cancel()
	waitFor(t, "the permit to come back", func() bool { return bh.InFlight() == 0 })
	if _, err := st.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("Recv after cancel: %v, want CANCELED", err)
	}
	if s := b.Snapshot(); s.Calls != 0 {
		t.Fatalf("breaker recorded %d calls, want the abandoned stream ignored", s.Calls)
	}
}

func TestStreamRejectedByAnOpenBreaker(t *testing.T) {
	srv := &scripted{}
	b := breaker.MustNew(breaker.Config{})
	b.ForceOpen()
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b})
	_, err := cl.StreamingOutputCall(t.Context(), threeMessages)
	checkRejection(t, err, spillway.ReasonBreakerOpen, breaker.ErrOpen)
	if srv.streams.Load() != 0 {
		t.Fatalf("server saw %d streams, want 0", srv.streams.Load())
	}
}

func TestStreamWithoutRetryOrReplay(t *testing.T) {
	srv := &scripted{streamScript: failStreams(1, codes.Unavailable)}
	bh := newBulkhead(10)
	p := &policies{d: &spillwaygrpc.Downstream{Retry: fastRetry(3), Bulkhead: bh}}
	cfg := p.config()
	cfg.MaxReplay = -1
	cl := dial(t, serve(t, srv), grpcStream(cfg))
	st, err := cl.StreamingOutputCall(t.Context(), threeMessages)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recvAll(st); status.Code(err) != codes.Unavailable || srv.streams.Load() != 1 {
		t.Fatalf("err = %v after %d streams, want UNAVAILABLE after 1", err, srv.streams.Load())
	}
	if bh.InFlight() != 0 {
		t.Fatalf("in flight %d, want 0", bh.InFlight())
	}
}

func TestStreamClientStreamingReleasesOnItsOneResponse(t *testing.T) {
	bh := newBulkhead(10)
	cl, _ := clientWith(t, serve(t, &scripted{}), &spillwaygrpc.Downstream{Bulkhead: bh})
	st, err := cl.StreamingInputCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.CloseAndRecv()
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("err = %v, want UNIMPLEMENTED", err)
	}
	if bh.InFlight() != 0 || errors.Is(err, io.EOF) {
		t.Fatalf("in flight %d, want 0", bh.InFlight())
	}
}
