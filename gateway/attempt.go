package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"syscall"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/gateway/pool"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// picker is the Transport's base: it sends each attempt to an instance of
// the pool (the one the gateway picked before the first attempt, then one
// other than the previous attempt's) and tells the instance how it went.
type picker struct{ up *upstream }

// RoundTrip sets the instance on req, the Transport's request of this
// attempt (see spillwayhttp.Config.Base). The first attempt's URL and
// instance body live in the exchange; a later attempt's are its own, as the
// previous attempt's request may still be read by the base transport.
func (p *picker) RoundTrip(req *http.Request) (*http.Response, error) {
	x := exchangeOf(req.Context())
	if spillwayhttp.HedgeOf(req.Context()) > 0 {
		return p.hedge(req, x)
	}
	if fs := x.route.faults.Load(); fs != nil && !x.replica {
		if resp, done, err := fs.inject(x, p.up.metrics.m, req); done {
			return resp, err
		}
	}
	inst := x.preset
	x.preset = nil
	if inst == nil {
		var err error
		if inst, err = p.up.pool.Pick(x.prev.Load()); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			p.up.metrics.reject(spillway.ReasonNoHealthyInstance)
			return nil, err
		}
	}
	x.prev.Store(inst)
	x.attempts++
	u, body := &x.url, &x.body
	if x.attempts > 1 {
		u, body = new(url.URL), new(instanceBody)
	}
	target(u, req, inst)
	var track spillway.Permit
	if x.grpc {
		setGRPCTimeout(req.Header)
		// The breaker's permit for a status that comes in the trailers,
		// timed from here (grpcHead): none unless the breaker is closed.
		track, _ = p.up.breaker.Track()
	}
	if x.span != nil {
		x.span.Attempt(req, p.up.name, x.attempts)
	}
	inst.Begin()
	resp, err := p.up.base.RoundTrip(req)
	if err != nil {
		inst.End(instanceFailed(x, req))
		if x.span != nil {
			x.span.AttemptFailed(attemptResult(err), err)
		}
		return nil, err
	}
	if x.span != nil {
		x.span.AttemptResponse(resp.StatusCode)
	}
	body.ReadCloser, body.inst, body.x, body.failed = resp.Body, inst, x, resp.StatusCode >= 500
	resp.Body = body
	if x.grpc {
		p.up.grpcHead(body, resp, track)
	}
	return resp, nil
}

// target points req at inst, through u, a URL of the attempt's own.
func target(u *url.URL, req *http.Request, inst *pool.Instance) {
	*u = *req.URL
	u.Scheme, u.Host = inst.URL.Scheme, inst.URL.Host
	if base := inst.URL.Path; base != "" && base != "/" {
		u.Path = joinPath(base, u.Path)
		if u.RawPath != "" {
			u.RawPath = joinPath(inst.URL.EscapedPath(), u.RawPath)
		}
	}
	req.URL = u
	req.Host = ""
}

// instanceFailed says whether an attempt's transport error counts against
// its instance: not when the client went away, nor when the attempt lost a
// hedged race (another attempt answered first and this one was cancelled).
func instanceFailed(x *exchange, req *http.Request) bool {
	return x.ctx.Err() == nil && context.Cause(req.Context()) != spillway.ErrHedgeLost
}

// hedge sends a hedge of the request's attempt (spillwayhttp.HedgeOf) to
// an instance other than the one the attempt it hedges went to, when the
// pool has one. It runs on the hedge's goroutine beside that attempt, so it
// reads the exchange's prev only (atomic) and writes nothing of the exchange:
// the access log and the trace show the attempts the retry policy made, the
// metrics count the hedges (spillway_hedges_total), and fault injection
// applies to those attempts, not to their hedges.
func (p *picker) hedge(req *http.Request, x *exchange) (*http.Response, error) {
	inst, err := p.up.pool.Pick(x.prev.Load())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	target(new(url.URL), req, inst)
	inst.Begin()
	resp, err := p.up.base.RoundTrip(req)
	if err != nil {
		inst.End(instanceFailed(x, req))
		return nil, err
	}
	resp.Body = &instanceBody{ReadCloser: resp.Body, inst: inst, x: x, failed: resp.StatusCode >= 500, hedge: true}
	return resp, nil
}

func joinPath(base, p string) string {
	if len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return base + p
}

// instanceBody ends the instance's attempt when the response body is closed,
// so that least_request counts a response being streamed as in flight and a
// body cut short counts as a failure. (A gRPC answer whose status comes in
// its trailers is wrapped in a trailerBody, which sets failed at its end.)
type instanceBody struct {
	io.ReadCloser
	inst   *pool.Instance
	x      *exchange
	failed bool
	// status: failed by the gRPC status in its head (grpcHead), not cut
	// short; a trailerBody tells its span its own result.
	status bool
	// hedge marks a hedge's body, which has no span of its own.
	hedge bool
	ended atomic.Bool
}

func (b *instanceBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.x.ctx.Err() == nil {
		b.failed = true
	}
	return n, err
}

func (b *instanceBody) Close() error {
	err := b.ReadCloser.Close()
	if b.ended.CompareAndSwap(false, true) {
		b.end("")
	}
	return err
}

// end ends the instance's attempt and its span, once the body is closed:
// the span's result is result, or, when it is "", what failed and status
// say.
func (b *instanceBody) end(result string) {
	b.inst.End(b.failed)
	if b.x.span != nil && !b.hedge {
		if result == "" {
			result = b.result()
		}
		b.x.span.AttemptEnd(result)
	}
}

// result is how the body ended, for its span.
func (b *instanceBody) result() string {
	switch {
	case !b.failed:
		return resultSuccess
	case b.status:
		return resultStatus
	}
	return resultReset
}

// retryable is the Transport's retry rule: idempotent requests only (or an
// Idempotency-Key), and only for the failures retry.on lists.
func (u *upstream) retryable(req *http.Request, resp *http.Response, err error) bool {
	if isGRPC(req) {
		return u.grpcRetryable(req, resp, err)
	}
	if !spillwayhttp.Idempotent(req) {
		return false
	}
	if resp != nil {
		return u.on.status[resp.StatusCode]
	}
	switch attemptResult(err) {
	case resultConnect:
		return u.on.connect
	case resultTimeout:
		return u.on.timeout
	case resultReset:
		return u.on.reset
	}
	return false
}

// The results of an attempt, the values of the label result of
// spillway_upstream_attempts_total: a fixed set.
const (
	resultSuccess  = "success"
	resultStatus   = "status_failure"
	resultConnect  = "connect_failure"
	resultTimeout  = "timeout"
	resultReset    = "reset"
	resultCanceled = "canceled"
	resultError    = "error"
)

// attemptResult classifies an attempt's failure (nil: success).
func attemptResult(err error) string {
	if err == nil {
		// Before any errors.AsType: the success path allocates nothing.
		return resultSuccess
	}
	switch {
	case isType[*spillwayhttp.StatusError](err):
		return resultStatus
	case isDial(err), isType[*net.DNSError](err), errors.Is(err, syscall.ECONNREFUSED):
		return resultConnect
	case spillway.ReasonOf(err) == spillway.ReasonDeadlineExceeded, isNetTimeout(err):
		return resultTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return resultReset
	case errors.Is(err, context.Canceled):
		return resultCanceled
	}
	if _, policy := errors.AsType[*spillway.Error](err); !policy {
		// Any other transport error came after the connection was made and
		// before a complete response head: the exchange broke (a connection
		// closed inside the head, a malformed head). Nothing reached the
		// client yet, so an idempotent request may be retried like a reset.
		return resultReset
	}
	return resultError
}

func isType[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}

func isDial(err error) bool {
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "dial"
}

func isNetTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}
