package spillwaygrpc

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/spillway-dev/spillway"
)

// UnaryClientInterceptor returns an interceptor that runs each unary call
// through its downstream's policies: retry (with the downstream's budget),
// breaker, bulkhead and attempt timeout, in that order, classifying status
// codes with cfg.Classify and cfg.Retryable. See the package documentation
// for the defaults and the errors returned.
func UnaryClientInterceptor(cfg Config) grpc.UnaryClientInterceptor {
	c := newClient(cfg)
	return c.unary
}

// permits are the breaker's and the bulkhead's permits of one attempt or
// stream, released in reverse order of acquisition.
type permits [2]spillway.Permit

func (p *permits) release(err error) {
	p[1].Release(err)
	p[0].Release(err)
	*p = permits{}
}

// releaseBreaker releases the breaker's permit alone, with err, keeping the
// bulkhead's.
func (p *permits) releaseBreaker(err error) {
	p[0].Release(err)
	p[0] = spillway.Permit{}
}

// acquire takes d's breaker and bulkhead permits, or returns the rejection
// with nothing held.
func acquire(ctx context.Context, d *Downstream) (p permits, err error) {
	if d.Breaker != nil {
		if p[0], err = d.Breaker.Acquire(ctx); err != nil {
			return permits{}, err
		}
	}
	if d.Bulkhead != nil {
		if p[1], err = d.Bulkhead.Acquire(ctx); err != nil {
			// The breaker ignores a local rejection.
			p[0].Release(err)
			return permits{}, err
		}
	}
	return p, nil
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
	if d.Retry == nil {
		return toStatus(c.attempt(ctx, d, method, req, reply, cc, invoker, opts, md))
	}
	s := d.Retry.Begin()
	for {
		err := c.attempt(ctx, d, method, req, reply, cc, invoker, opts, md)
		s.Attempts++
		if err == nil {
			return nil
		}
		if !c.retryableErr(ctx, err) {
			return toStatus(err)
		}
		next, delay, stop := d.Retry.Next(ctx, s, err)
		if stop != nil {
			return toStatus(stop)
		}
		s = next
		if serr := spillway.Sleep(ctx, delay); serr != nil {
			return toStatus(serr)
		}
	}
}

// attempt makes one attempt under d's guards and attempt timeout and returns
// its error, with the server's pushback attached.
func (c *client) attempt(ctx context.Context, d *Downstream, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption, md *metadata.MD) (err error) {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	p, err := acquire(ctx, d)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			// The invoker panicked, or called runtime.Goexit.
			r := recover()
			p.release(&spillway.PanicError{Value: r})
			if r != nil {
				panic(r)
			}
		}
	}()
	*md = nil
	if d.Attempt != nil {
		actx, cancel := d.Attempt.Start(ctx)
		err = invoker(actx, method, req, reply, cc, opts...)
		settle(actx, err)
		err = d.Attempt.Finish(actx, err)
		cancel()
	} else {
		err = invoker(ctx, method, req, reply, cc, opts...)
	}
	done = true
	err = withPushback(err, *md)
	p.release(c.outcome(ctx, err))
	return err
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
