package gateway_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// pushbackOnce scripts u: its first unary call fails UNAVAILABLE with the
// trailer grpc-retry-pushback-ms ms, the next ones succeed. It returns
// the times the first and second calls came in.
func pushbackOnce(u *grpcUpstream, ms string) (first, second *atomic.Int64) {
	first, second = new(atomic.Int64), new(atomic.Int64)
	u.setScript(func(ctx context.Context, n int64) error {
		switch n {
		case 1:
			first.Store(time.Now().UnixNano())
			_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", ms))
			return status.Error(codes.Unavailable, "pushed back")
		case 2:
			second.Store(time.Now().UnixNano())
		}
		return nil
	})
	return first, second
}

// TestGRPCPushbackIsTheBackoff: the retry after an UNAVAILABLE with a
// positive grpc-retry-pushback-ms waits at least the pushback, not the
// configured backoff (1-2ms).
func TestGRPCPushbackIsTheBackoff(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	first, second := pushbackOnce(u, "300")
	c := h2cGateway(t, u, "")
	if _, err := c.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("call: %v, want OK after a retry", err)
	}
	if n := u.unary.Load(); n != 2 {
		t.Fatalf("upstream saw %d calls, want 2", n)
	}
	if gap := time.Duration(second.Load() - first.Load()); gap < 300*time.Millisecond {
		t.Errorf("the retry came %v after the first call, want at least the pushback, 300ms", gap)
	}
}

// TestGRPCPushbackCappedByRetryAfterMax: a pushback beyond
// retry.retry_after_max waits retry_after_max.
func TestGRPCPushbackCappedByRetryAfterMax(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	first, second := pushbackOnce(u, "60000")
	_, c := lateFailGateway(t, "    retry: {backoff: {initial: 1ms, max: 2ms}, retry_after_max: 200ms}", u.addr)
	if _, err := c.UnaryCall(grpcCtx(t), &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("call: %v, want OK after a retry", err)
	}
	if gap := time.Duration(second.Load() - first.Load()); gap < 200*time.Millisecond {
		t.Errorf("the retry came %v after the first call, want at least retry_after_max, 200ms", gap)
	}
}

// TestGRPCPushbackPastTheDeadlineIsNotRetried: a pushback that ends after
// the call's deadline is not waited for: the upstream's answer goes back.
func TestGRPCPushbackPastTheDeadlineIsNotRetried(t *testing.T) {
	u := newGRPCUpstream(t, nil)
	pushbackOnce(u, "5000")
	c := h2cGateway(t, u, "")
	ctx, cancel := context.WithTimeout(grpcCtx(t), 2*time.Second)
	defer cancel()
	_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
	if s := status.Convert(err); s.Code() != codes.Unavailable || s.Message() != "pushed back" {
		t.Errorf("call: %v %q, want the upstream's Unavailable pushed back", s.Code(), s.Message())
	}
	if n := u.unary.Load(); n != 1 {
		t.Errorf("upstream saw %d calls, want 1", n)
	}
}
