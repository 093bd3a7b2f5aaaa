package spillwaygrpc

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/spillway-dev/spillway"
)

// DialOptions returns the dial options that install both client
// interceptors, unary and stream (chained after any others), over one set of
// downstreams: a key's policies — one breaker, one bulkhead, one retry
// budget — serve its unary calls and its streams alike, and are registered
// once with cfg.Observer. It is the way to protect both kinds of call;
// UnaryClientInterceptor and StreamClientInterceptor each make downstreams
// of their own.
func DialOptions(cfg Config) []grpc.DialOption {
	c := newClient(cfg)
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(c.unary), grpc.WithChainStreamInterceptor(c.stream)}
}

// UnaryClientInterceptor returns an interceptor that runs each unary call
// through its downstream's policies: retry (with the downstream's budget),
// breaker, bulkhead and attempt timeout, in that order, classifying status
// codes with cfg.Classify and cfg.Retryable. See the package documentation
// for the defaults and the errors returned.
func UnaryClientInterceptor(cfg Config) grpc.UnaryClientInterceptor {
	c := newClient(cfg)
	return c.unary
}

func (c *client) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	d, err := c.downstream(cc, method)
	if err != nil {
		return &Error{Code: codes.Internal, Err: err}
	}
	// The pushback arrives in the trailer: read the caller's own trailer
	// option if it has one, or add ours.
	var md *metadata.MD
	for _, o := range opts {
		if t, ok := o.(grpc.TrailerCallOption); ok {
			md = t.TrailerAddr
		}
	}
	if md == nil {
		md = new(metadata.MD)
		opts = append(opts[:len(opts):len(opts)], grpc.Trailer(md))
	}
	call := func(actx context.Context) (struct{}, error) {
		*md = nil
		err := invoker(actx, method, req, reply, cc, opts...)
		settle(actx, err)
		return struct{}{}, withPushback(err, *md)
	}
	attempt := func(n int) (bool, error) {
		_, _, _, err = d.unary.Attempt(ctx, ctx, n, call, nil)
		return err != nil && c.retryableErr(ctx, err), err
	}
	if d.Retry == nil {
		attempt(1)
		return toStatus(err)
	}
	s := d.Retry.Begin()
	if retry, failed := attempt(1); retry {
		_, err = spillway.Retry(ctx, d.Retry, &s, failed, attempt, nil)
	}
	return toStatus(err)
}

// settle waits, when err is a DEADLINE_EXCEEDED that arrived once ctx's
// deadline had passed but before ctx's own timer fired (the server's copy of
// the deadline, or gRPC's transport, can beat it), for ctx to end, so that
// the attempt timeout recognises its own deadline. It never waits for a
// deadline still to come.
func settle(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil || codeOf(err) != codes.DeadlineExceeded {
		return
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		<-ctx.Done()
	}
}
