package spillwaygrpc

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
)

// ShedPushback is the pushback a refused call's grpc-retry-pushback-ms
// trailer carries, unless the bulkhead's error carries a RetryAfter of its
// own: a full server is best left alone for a moment. A client caps it at
// its own maximum backoff (Spillway's: 5 s).
const ShedPushback = time.Second

// UnaryServerInterceptor returns an interceptor that sheds load: each call
// takes a slot of b and gives it back when the handler returns. A call that
// b refuses (bulkhead_full) is answered at once with RESOURCE_EXHAUSTED, the
// reason in the message and the spillway-reason trailer, and a
// grpc-retry-pushback-ms trailer (ShedPushback). A call whose context ends
// while it waits in b's queue ends with the context's status.
func UnaryServerInterceptor(b *bulkhead.Bulkhead) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		p, err := b.Acquire(ctx)
		if err != nil {
			md, serr := shed(err)
			if md != nil {
				_ = grpc.SetTrailer(ctx, md)
			}
			return nil, serr
		}
		defer p.Release(nil)
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams: the slot is
// held until the stream's handler returns.
func StreamServerInterceptor(b *bulkhead.Bulkhead) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		p, err := b.Acquire(ss.Context())
		if err != nil {
			md, serr := shed(err)
			if md != nil {
				ss.SetTrailer(md)
			}
			return serr
		}
		defer p.Release(nil)
		return handler(srv, ss)
	}
}

// shed returns the trailer to send with a refused call (nil when the
// caller's context ended while it waited) and the status it ends with.
func shed(err error) (metadata.MD, error) {
	r := spillway.ReasonOf(err)
	if !spillway.IsRejection(err) {
		return nil, status.FromContextError(err).Err()
	}
	pushback := ShedPushback
	if d, ok := spillway.RetryAfterOf(err); ok && d > 0 {
		pushback = d
	}
	md := metadata.Pairs(PushbackKey, strconv.FormatInt(pushback.Milliseconds(), 10), ReasonKey, string(r))
	return md, status.Error(codes.ResourceExhausted, string(r)+": "+err.Error())
}
