package spillwaygrpc

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/spillway-dev/spillway"
)

// StreamClientInterceptor returns an interceptor that applies the
// downstream's breaker, bulkhead and retry policy to each stream's
// establishment. The breaker's permit is released as a success once the
// stream is established (its headers or its first message arrived), or with
// the stream's failure before that; the bulkhead's slot is held while the
// stream lives and released exactly once when it ends. A stream is retried
// until it is established while its sent messages can be replayed; see the
// package documentation for the rules.
func StreamClientInterceptor(cfg Config) grpc.StreamClientInterceptor {
	c := newClient(cfg)
	return c.stream
}

func (c *client) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	d, err := c.downstream(cc, method)
	if err != nil {
		return nil, &Error{Code: codes.Internal, Err: err}
	}
	s := &clientStream{c: c, d: d, ctx: ctx, desc: desc, cc: cc, method: method, streamer: streamer, opts: opts}
	if d.Retry != nil {
		s.rs = d.Retry.Begin()
	}
	s.mu.Lock()
	err = s.openLocked(nil)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if d.Retry == nil || c.maxReplay == 0 {
		s.fix()
	}
	s.stopAfter = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.finishLocked(s.outcome(context.Cause(ctx)))
	})
	return s, nil
}

// clientStream is a stream under the policies. While it may still be
// retried, mu guards the current stream and the replay buffer; once fixed is
// set, cs never changes again and is read without the lock. Once established
// is set, the breaker's permit has been released and p holds only the
// bulkhead's. The permits are the stream attempt's, kept by the engine
// (spillway.EngineConfig.Keep) past the attempt that opened the stream.
type clientStream struct {
	c        *client
	d        *downstream
	ctx      context.Context
	desc     *grpc.StreamDesc
	cc       *grpc.ClientConn
	method   string
	streamer grpc.Streamer
	opts     []grpc.CallOption

	fixed       atomic.Bool
	established atomic.Bool
	mu          sync.Mutex
	cs          grpc.ClientStream
	p           spillway.Permits
	rs          spillway.RetryState
	sent        []any
	closeSent   bool
	done        bool
	stopAfter   func() bool
}

// fix records that the stream can no longer be retried. mu must be held, or
// the stream not yet shared.
func (s *clientStream) fix() {
	s.sent = nil
	s.fixed.Store(true)
}

// current returns the stream that calls go to.
func (s *clientStream) current() grpc.ClientStream {
	if s.fixed.Load() {
		return s.cs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cs
}

// openLocked opens the stream, after the failure last of the previous
// stream (nil for the first), retrying the failures to open it in
// spillway.Retry's loop. It returns the error the stream ends with when no
// stream could be opened. mu must be held.
func (s *clientStream) openLocked(last error) error {
	if last == nil {
		var retry bool
		if retry, last = s.open(s.rs.Attempts + 1); !retry {
			return toStatus(last)
		}
	} else if !s.c.retryableErr(s.ctx, last) {
		return toStatus(last)
	}
	if s.d.Retry == nil {
		return toStatus(last)
	}
	_, err := spillway.Retry(s.ctx, s.d.Retry, &s.rs, last, s.open, nil)
	return toStatus(err)
}

// open makes attempt n to open the stream on the stream engine, which keeps
// the attempt's permits in s.p once the stream is open. It returns the
// failure to open it and whether it may be retried. mu must be held.
func (s *clientStream) open(n int) (bool, error) {
	var cs grpc.ClientStream
	_, _, _, err := s.d.stream.Attempt(s.ctx, s.ctx, n, func(ctx context.Context) (struct{}, error) {
		var err error
		cs, err = s.streamer(ctx, s.desc, s.cc, s.method, s.opts...)
		return struct{}{}, err
	}, &s.p)
	if err != nil {
		return s.c.retryableErr(s.ctx, err), err
	}
	s.cs = cs
	return false, nil
}

// outcome returns what the stream's permits are released with when it ends
// with err, as the engine judges an attempt's outcome: a stream that its
// context ended, deadline included, was ended by its caller, who chose how
// long it lives.
func (s *clientStream) outcome(err error) error {
	release, _ := s.d.stream.Judge(s.ctx, struct{}{}, err)
	return release
}

// recv is cs.RecvMsg(m). If it panics (or calls runtime.Goexit), the
// stream ends: its permits are released with a *spillway.PanicError before
// the panic goes on.
func (s *clientStream) recv(cs grpc.ClientStream, m any) (err error) {
	done := false
	defer func() {
		if !done {
			spillway.Unwind(recover(), s.finish)
		}
	}()
	err = cs.RecvMsg(m)
	done = true
	return err
}

// establish records that cs, if it is still the current stream, proved that
// the downstream answers: its headers or its first message arrived. The
// stream is no longer retried (gRPC's retry design commits a call at its
// headers too) and the breaker's permit is released as a success, so that a
// long-lived stream neither counts as a failed half-open probe once it
// outlives ProbeTimeout nor as a slow call; the bulkhead's slot stays held
// until the stream ends. A failure after this point is not counted by the
// breaker: it has no permit left to count it with.
func (s *clientStream) establish(cs grpc.ClientStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cs != cs || s.established.Load() {
		return
	}
	if !s.fixed.Load() {
		s.fix()
	}
	if s.d.Breaker != nil {
		s.p.Take(s.d.Breaker).Release(nil)
	}
	s.established.Store(true)
}

// finishLocked ends the stream with outcome: its permits are released with
// it, once. mu must be held.
func (s *clientStream) finishLocked(outcome error) {
	if s.done {
		return
	}
	s.done = true
	s.p.Release(outcome)
	if !s.fixed.Load() {
		s.fix()
	}
	if s.stopAfter != nil {
		s.stopAfter()
	}
}

// finish is finishLocked for a caller that does not hold mu.
func (s *clientStream) finish(outcome error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finishLocked(outcome)
}

// failed handles the failure err of cs's RecvMsg: it returns true when a new
// stream replaced cs (the caller tries again), or false and the error to
// return after ending the stream.
func (s *clientStream) failed(cs grpc.ClientStream, err error) (bool, error) {
	if err == io.EOF {
		s.finish(nil)
		return false, err
	}
	err = withPushback(err, cs.Trailer())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cs != cs {
		// Another goroutine has already replaced the stream.
		return true, nil
	}
	if s.done || s.fixed.Load() || !s.c.retryableErr(s.ctx, err) {
		s.finishLocked(s.outcome(err))
		return false, toStatus(err)
	}
	s.p.Release(s.outcome(err))
	if ferr := s.openLocked(err); ferr != nil {
		s.finishLocked(nil)
		return false, ferr
	}
	// Replay what the failed stream was sent. A failure of the new stream
	// shows in its RecvMsg, where it is handled like this one.
	for _, m := range s.sent {
		if s.cs.SendMsg(m) != nil {
			break
		}
	}
	if s.closeSent {
		_ = s.cs.CloseSend()
	}
	return true, nil
}

// RecvMsg receives a message from the current stream. A failure before the
// stream is established is retried transparently when the rules allow it;
// the first message establishes it, and the end of the stream releases what
// it still holds.
func (s *clientStream) RecvMsg(m any) error {
	for {
		cs := s.current()
		err := s.recv(cs, m)
		if err == nil {
			if !s.established.Load() {
				s.establish(cs)
			}
			if !s.desc.ServerStreams {
				// The one response ends the stream: gRPC has finished it.
				s.finish(nil)
			}
			return nil
		}
		retried, ferr := s.failed(cs, err)
		if !retried {
			return ferr
		}
	}
}

// SendMsg sends m on the current stream and keeps it for replay while the
// stream may be retried.
func (s *clientStream) SendMsg(m any) error {
	if s.fixed.Load() {
		return s.cs.SendMsg(m)
	}
	s.mu.Lock()
	cs := s.cs
	kept := false
	if !s.fixed.Load() {
		if len(s.sent) < s.c.maxReplay {
			s.sent = append(s.sent, m)
			kept = true
		} else {
			s.fix()
		}
	}
	s.mu.Unlock()
	err := cs.SendMsg(m)
	if err == io.EOF && kept {
		// The stream broke, and m is kept: it is replayed if RecvMsg
		// retries the stream (m may already have been, on the stream that
		// replaced cs), and RecvMsg reports the failure otherwise — as
		// gRPC reports a stream's failure through RecvMsg, not SendMsg.
		return nil
	}
	return err
}

// CloseSend closes the sending side of the current stream, and of any stream
// that replaces it.
func (s *clientStream) CloseSend() error {
	if s.fixed.Load() {
		return s.cs.CloseSend()
	}
	s.mu.Lock()
	s.closeSent = true
	cs := s.cs
	s.mu.Unlock()
	return cs.CloseSend()
}

// Header returns the current stream's header metadata. Headers establish
// the stream; a failure ends it (gRPC's own streams report failures through
// RecvMsg instead, and return no headers: nil headers establish nothing).
func (s *clientStream) Header() (metadata.MD, error) {
	cs := s.current()
	md, err := cs.Header()
	switch {
	case err != nil:
		s.finish(s.outcome(err))
	case md != nil && !s.established.Load():
		s.establish(cs)
	}
	return md, err
}

// Trailer returns the current stream's trailer metadata.
func (s *clientStream) Trailer() metadata.MD { return s.current().Trailer() }

// Context returns the current stream's context.
func (s *clientStream) Context() context.Context { return s.current().Context() }
