package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// fallBack answers x after its upstream failed with err: the steps of its
// route's fallback chain in order (a replica, the stale cache, a static
// answer), or the error answer when none answers. body is the request body
// buffered for a replica (nil when there is none to resend); replayable
// says whether the request can be sent again.
func (g *Gateway) fallBack(rec *recorder, x *exchange, r *http.Request, body []byte, replayable bool, err error) {
	for _, s := range x.route.chain {
		switch {
		case s.replica != nil:
			if !replayable || !(spillwayhttp.Idempotent(r) || spillway.IsRejection(err)) {
				continue
			}
			if body != nil {
				x.request().Body = io.NopCloser(bytes.NewReader(body))
			}
			if g.phase(rec, x, s.replica, s.replica.totalKey, FallbackReplica) == nil {
				g.metrics.fallback(x.route, FallbackReplica)
				x.outcome = outcomeFallback
				return
			}
			if g.callerDone(rec, x) { // during the replica's attempt
				return
			}
		case s.cache != nil:
			if e, ok := s.cache.lookup(r); ok {
				x.fallback, x.outcome, x.reason = FallbackStaleCache, outcomeFallback, string(spillway.ReasonOf(err))
				g.metrics.fallback(x.route, FallbackStaleCache)
				e.serve(rec, r, time.Now())
				return
			}
		case s.static != nil:
			x.reason = string(spillway.ReasonOf(err))
			g.static(rec, x, s.static, FallbackStatic)
			return
		}
	}
	g.failed(rec, x, err)
}

// callerDone answers x when the caller's own deadline ended: its
// Spillway-Timeout-Ms budget (504 deadline_exceeded) or its connection. It
// reports whether it did. Such a failure is the caller's, not the
// upstream's, and gets no fallback: any client could otherwise force one
// by announcing a tiny budget, and be served a stale entry, a replica's or
// a static answer instead of the upstream's. The end of the route's own
// total limit is the upstream's failure: the fallback chain answers it.
func (g *Gateway) callerDone(w http.ResponseWriter, x *exchange) bool {
	if x.ctx.Err() == nil {
		return false
	}
	g.failed(w, x, context.Cause(x.ctx))
	return true
}

// failed writes the error answer for err, after the fallback chain.
func (g *Gateway) failed(w http.ResponseWriter, x *exchange, err error) {
	// Only a request body can be too large; errors.AsType allocates, and
	// the answers of a failing upstream are a hot path.
	if x.in.Body != http.NoBody && isType[*http.MaxBytesError](err) {
		g.local(w, x, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "the request body is too large")
		return
	}
	reason := spillway.ReasonOf(err)
	x.reason, x.outcome = string(reason), outcomeError
	if reason == spillway.ReasonUpstreamError {
		g.logTLSFailure(x, err)
	}
	if reason == spillway.ReasonCanceled {
		x.outcome = outcomeCanceled
	}
	if x.grpc {
		failedGRPC(w, reason, err)
		return
	}
	spillwayhttp.WriteError(w, err, x.route.up.name)
}

// static writes a fixed answer of kind (static or default).
func (g *Gateway) static(w http.ResponseWriter, x *exchange, s *config.Static, kind string) {
	x.fallback, x.outcome = kind, outcomeFallback
	g.metrics.fallback(x.route, kind)
	h := w.Header()
	for k, v := range s.Headers {
		h.Set(k, v)
	}
	h.Set(FallbackHeader, kind)
	h.Set("Content-Length", strconv.Itoa(len(s.Body)))
	status := s.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, s.Body)
}

// bufferBody reads req's body up to max bytes so that it can be sent again
// (to a replica); a longer body is streamed once (replayable false).
func bufferBody(req *http.Request, max int64) (body []byte, replayable bool, err error) {
	buf, err := io.ReadAll(io.LimitReader(req.Body, max+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(buf)) > max {
		req.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
		return nil, false, nil
	}
	req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(buf))
	req.ContentLength = int64(len(buf))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return buf, true, nil
}
