package spillwaygrpc_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/spillwaygrpc"
)

// probeBreaker is a half-open breaker on a manual clock that admits one
// probe, closes on its success and counts it failed after a second.
func probeBreaker(t *testing.T) (*breaker.Breaker, *spillway.ManualClock) {
	t.Helper()
	clk := spillway.NewManualClock(time.Hour)
	b := breaker.MustNew(breaker.Config{Clock: clk, HalfOpenProbes: 1, ProbeTimeout: time.Second, OpenFor: time.Minute})
	if err := b.TransitionTo(breaker.HalfOpen); err != nil {
		t.Fatal(err)
	}
	return b, clk
}

// TestStreamLongLivedProbe: a healthy server stream opened as a half-open
// breaker's only probe, that stays open far past ProbeTimeout, closes the
// breaker once it is established (its first message, or its headers when the
// caller asks for them) instead of counting as a failed probe and reopening
// it (issue 10); its bulkhead slot stays held until the stream ends.
func TestStreamLongLivedProbe(t *testing.T) {
	for _, tc := range []struct {
		name         string
		headersFirst bool
	}{
		{"first message", false},
		{"headers", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &scripted{hold: make(chan struct{}), headersFirst: tc.headersFirst}
			b, clk := probeBreaker(t)
			bh := newBulkhead(10)
			cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b, Bulkhead: bh})
			st, err := cl.StreamingOutputCall(t.Context(), threeMessages)
			if err != nil {
				t.Fatal(err)
			}
			want := 3
			if tc.headersFirst {
				if md, err := st.Header(); md == nil || err != nil {
					t.Fatalf("Header() = %v, %v; want the server's headers", md, err)
				}
			} else {
				if _, err := st.Recv(); err != nil {
					t.Fatal(err)
				}
				want--
			}
			clk.Advance(time.Hour) // the stream is still open
			if s := b.Snapshot(); s.State != breaker.Closed || s.ProbesInFlight != 0 {
				t.Fatalf("established probe stream past ProbeTimeout: breaker %v with %d probes in flight, want closed with none", s.State, s.ProbesInFlight)
			}
			if n := bh.InFlight(); n != 1 {
				t.Fatalf("bulkhead in flight %d while the stream lives, want 1", n)
			}
			close(srv.hold)
			if n, err := recvAll(st); n != want || err != nil {
				t.Fatalf("received %d more messages, err %v; want %d and io.EOF", n, err, want)
			}
			if n := bh.InFlight(); n != 0 {
				t.Fatalf("bulkhead in flight %d after the stream ended, want 0", n)
			}
			if s := b.Snapshot(); s.State != breaker.Closed || s.Calls != 0 {
				t.Fatalf("breaker %+v after the stream ended, want closed with an empty window", s)
			}
		})
	}
}

// TestStreamLongLivedIsNotASlowCall: the breaker times a stream to its
// establishment, not to its end, so a healthy stream that lives an hour is
// not a slow call (with a slow-call rule it used to open the breaker).
func TestStreamLongLivedIsNotASlowCall(t *testing.T) {
	clk := spillway.NewManualClock(time.Hour)
	b := breaker.MustNew(breaker.Config{Clock: clk, SlowCallDuration: time.Second, MinCalls: 1})
	srv := &scripted{hold: make(chan struct{})}
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Breaker: b})
	st, err := cl.StreamingOutputCall(t.Context(), threeMessages)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	close(srv.hold)
	if n, err := recvAll(st); n != 2 || err != nil {
		t.Fatalf("received %d more messages, err %v; want 2 and io.EOF", n, err)
	}
	if s := b.Snapshot(); s.State != breaker.Closed || s.Calls != 1 || s.Slow != 0 {
		t.Fatalf("breaker %+v, want closed with 1 call, not slow", s)
	}
}

// TestStreamProbeFailingBeforeAnyMessage: a probe stream that fails before it
// is established still counts as a failed probe.
func TestStreamProbeFailingBeforeAnyMessage(t *testing.T) {
	srv := &scripted{streamScript: failStreams(1, codes.Unavailable)}
	b, _ := probeBreaker(t)
	bh := newBulkhead(10)
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Breaker: b, Bulkhead: bh})
	st, err := cl.StreamingOutputCall(t.Context(), threeMessages)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recvAll(st); status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want UNAVAILABLE", err)
	}
	if s := b.Snapshot(); s.State != breaker.Open {
		t.Fatalf("breaker %v after its probe stream failed, want open", s.State)
	}
	if n := bh.InFlight(); n != 0 {
		t.Fatalf("bulkhead in flight %d, want 0", n)
	}
}

// TestStreamIsNotRetriedAfterItsHeaders: headers the caller has read commit
// the stream, as in gRPC's own retry design: a failure that follows is
// returned, not retried on a stream whose headers the caller never saw. The
// breaker counted the stream a success when its headers came.
func TestStreamIsNotRetriedAfterItsHeaders(t *testing.T) {
	srv := &scripted{headersFirst: true, streamScript: failStreams(1, codes.Unavailable)}
	bh, b := newBulkhead(10), quietBreaker()
	cl, _ := clientWith(t, serve(t, srv), &spillwaygrpc.Downstream{Retry: fastRetry(3), Breaker: b, Bulkhead: bh})
	st, err := cl.StreamingOutputCall(t.Context(), threeMessages)
	if err != nil {
		t.Fatal(err)
	}
	if md, err := st.Header(); md == nil || err != nil {
		t.Fatalf("Header() = %v, %v; want the server's headers", md, err)
	}
	if n, err := recvAll(st); n != 0 || status.Code(err) != codes.Unavailable || srv.streams.Load() != 1 {
		t.Fatalf("%d messages, err %v, %d streams; want 0, UNAVAILABLE, 1", n, err, srv.streams.Load())
	}
	if s := b.Snapshot(); s.Calls != 1 || s.Failures != 0 || bh.InFlight() != 0 {
		t.Fatalf("breaker %+v, in flight %d; want 1 successful call and 0", s, bh.InFlight())
	}
}
