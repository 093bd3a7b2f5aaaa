package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/async"
	"github.com/spillway-dev/spillway/gateway/internal/reply"
	"github.com/spillway-dev/spillway/gateway/pool"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// FallbackHeader names the kind of a degraded answer.
const FallbackHeader = "Spillway-Fallback"

// The values of FallbackHeader, and of the label kind of
// spillway_fallback_total.
const (
	FallbackReplica    = "replica"
	FallbackStaleCache = "stale-cache"
	FallbackStatic     = "static"
	FallbackDefault    = "default"
)

// The reasons of the answers the gateway makes before any policy runs; the
// policies' reasons are spillway.Reason values.
const (
	ReasonNoRoute      = "no_route"         // 404: no route matches
	ReasonBadRequest   = reply.BadRequest   // 400: ambiguous framing, CONNECT, absolute-form target, unsafe path
	ReasonBodyTooLarge = reply.BodyTooLarge // 413: the body exceeds server.max_body
)

// exchange is the state of one request as it goes through the proxy, the
// Transport and the fallback chain. Only the goroutine serving the request
// touches it. It is the context of the request the proxy gets: ctx carrying
// the exchange itself as a value, which spares a context.WithValue. It holds
// what each request needs once (the recorder, the first attempt's URL and
// instance body), which spares their allocations.
type exchange struct {
	// in is the inbound request, whose method, host, path and headers key
	// the stale cache; out is its copy for the proxy, made by request.
	in, out *http.Request
	route   *route
	// ctx is the request's context with the time budget of its
	// Spillway-Timeout-Ms header: when it ends, the caller is done.
	ctx context.Context
	rec recorder
	// url and body are the first attempt's (see picker.RoundTrip).
	url  url.URL
	body instanceBody
	// up is the upstream of the current phase (the route's, then a
	// replica's) and totalKey its Transport downstream.
	up       *upstream
	totalKey string
	// preset is the instance picked for the first attempt; prev the one of
	// the previous attempt, or of the attempt in flight, which its hedges
	// read on their own goroutines (picker.hedge): hence atomic.
	preset *pool.Instance
	prev   atomic.Pointer[pool.Instance]
	// intercept: a 5xx is not passed through but handed to the fallback
	// chain.
	intercept bool
	// grpc: the request is a gRPC call (isGRPC), answered in gRPC's shape.
	grpc bool
	// fault is the kind of the last fault injected (faultNone, faultDelay,
	// faultAbort), for the access log; hdrAbort and hdrDelay are the fault
	// the request asked for (fault headers). Small fields beside intercept,
	// in its padding: the exchange stays in its allocation size class.
	fault faultKind
	// trailers: the attempt's answer is a gRPC answer whose status comes
	// in its trailers, counted in spillway_upstream_attempts_total when
	// its body ends (trailerBody), not at its head (upstreamMetrics).
	trailers bool
	hdrAbort int16
	// replica: the phase is a replica's (FallbackReplica), not the
	// route's upstream's.
	replica bool
	// informed is set once the Transport's RoundTrip returned: no 1xx
	// answer goes to the client after that (informational); mu guards it
	// against the goroutines of the attempts.
	informed bool
	err      error // what the phase failed with
	attempts int
	fallback string
	reason   string
	outcome  string
	hdrDelay time.Duration
	// span traces the request; nil when the gateway has no Tracer.
	span RequestSpan
	mu   sync.Mutex
}

type exchangeKey struct{}

func exchangeOf(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

func (x *exchange) Deadline() (time.Time, bool) { return x.ctx.Deadline() }
func (x *exchange) Done() <-chan struct{}       { return x.ctx.Done() }
func (x *exchange) Err() error                  { return x.ctx.Err() }

func (x *exchange) Value(key any) any {
	if key == (exchangeKey{}) {
		return x
	}
	return x.ctx.Value(key)
}

// request returns the inbound request's copy for the proxy, under the
// exchange's context, making it on first use: a request that fails fast
// needs none.
func (x *exchange) request() *http.Request {
	if x.out == nil {
		x.out = x.in.WithContext(x)
	}
	return x.out
}

// copyBufferSize is the size of the forwarder's copy buffers.
const copyBufferSize = 32 << 10

// bufferPool lends the forwarder 32 KiB copy buffers. It pools array
// pointers, which a returned slice converts back to without allocating (a
// pool of *[]byte would allocate a slice header on every Put).
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

// copyBuffers are the forwarder's.
var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}

func (b *bufferPool) Put(s []byte) {
	if cap(s) >= copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(s[:copyBufferSize]))
	}
}

// rewrite sends an upgrade request to the current phase's upstream, as
// forward does the others; the instance is chosen by the picker.
func rewrite(pr *httputil.ProxyRequest) {
	x := exchangeOf(pr.In.Context())
	out := pr.Out
	out.URL.Scheme, out.URL.Host = "http", x.up.name
	applyStripPrefix(out.URL, x.route.cfg)
	// The instance's host, not the client's: X-Forwarded-Host carries that.
	out.Host = ""
	stripUntrusted(out.Header)
	pr.SetXForwarded()
	setRealIP(out.Header)
}

// applyStripPrefix removes the route's path prefix from u when the route
// says strip_prefix.
func applyStripPrefix(u *url.URL, rc *config.Route) {
	if !rc.StripPrefix || rc.Match.PathPrefix == "" {
		return
	}
	prefix := rc.Match.PathPrefix
	u.Path = stripPrefix(u.Path, prefix)
	if u.RawPath != "" {
		if hasPathPrefix(u.RawPath, prefix) {
			u.RawPath = stripPrefix(u.RawPath, prefix)
		} else {
			u.RawPath = ""
		}
	}
}

// statusFailure is the failure of an upstream that answered 5xx once
// retries were over.
type statusFailure struct{ status int }

func (e *statusFailure) Error() string { return "upstream answered " + strconv.Itoa(e.status) }

func modifyResponse(resp *http.Response) error {
	x := exchangeOf(resp.Request.Context())
	if resp.StatusCode >= 500 && x.intercept {
		return &statusFailure{status: resp.StatusCode}
	}
	if x.grpc && upstreamDeadline(x, resp) {
		return errUpstreamDeadline
	}
	if x.replica {
		resp.Header.Set(FallbackHeader, FallbackReplica)
		x.fallback = FallbackReplica
	} else if c := x.route.cache; c != nil && c.cacheable(x.in, resp) {
		c.capture(x.in, resp)
	}
	return nil
}

// ServeHTTP proxies r along its route (see the package documentation) and
// writes one access log line: route, upstream, method, path (no query),
// status, duration (seconds), attempts, outcome, reason, fallback, fault,
// and for a gRPC call grpc_status.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t := g.table.Load()
	x := &exchange{ctx: r.Context(), in: r, grpc: isGRPC(r)}
	if g.opts.Tracer != nil {
		x.span = g.opts.Tracer.Start(r)
	}
	rec := &x.rec
	rec.ResponseWriter = w
	defer func() {
		p := recover()
		if p != nil {
			x.outcome = outcomeCanceled // the body was cut short (http.ErrAbortHandler)
		}
		g.finish(x, rec, r, start)
		if rec.streamTimeout > 0 {
			rec.streamDeadline(true)
		}
		if p != nil {
			panic(p)
		}
	}()
	if g.screen(rec, x, r) {
		return
	}
	if g.jobs != nil && strings.HasPrefix(r.URL.Path, async.JobsPath) {
		answered(x, g.jobs.JobStatus(rec, r))
		return
	}
	if x.route = t.match(r); x.route == nil {
		g.local(rec, x, http.StatusNotFound, ReasonNoRoute, "no route matches the request")
		return
	}
	rt := x.route
	if g.checkPath(rec, x, r, rt.cfg) {
		return
	}
	if fs := rt.faults.Load(); fs != nil && fs.headers && !g.headerFault(rec, x, r) {
		return
	}
	x.up = rt.up
	if rt.up == nil {
		x.reason = string(spillway.ReasonUpstreamError)
		x.outcome = outcomeError
		spillwayhttp.WriteError(rec, &spillway.Error{Code: spillway.ReasonUpstreamError, Policy: "gateway", Name: rt.cfg.Name}, "")
		return
	}
	if rt.limit != nil && g.throttle(rec, x, r) {
		return
	}
	if rt.cfg.Async != nil {
		answered(x, g.jobs.Accept(rec, r, rt.cfg, rt.cfg.MaxBody))
		return
	}
	if g.limitBody(rec, x, r, rt.cfg) {
		return
	}
	ctx := r.Context()
	if ms, ok := parseMillis(r.Header.Get(spillwayhttp.TimeoutHeader)); ok && ms < rt.total {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, ms, errClientBudget)
		defer cancel()
	}
	x.ctx = ctx
	if x.grpc {
		g.serveGRPC(rec, x, r)
		return
	}
	if rt.cfg.Optional && (rt.off.Load() || isOpen(rt.up.breaker.State())) {
		g.static(rec, x, rt.cfg.Default, FallbackDefault)
		return
	}
	if _, ok := r.Header["Upgrade"]; ok && g.upgrade(rec, x, r) {
		return
	}
	var body []byte
	replayable := r.Body == nil || r.Body == http.NoBody
	if rt.hasReplica && !replayable {
		var err error
		if body, replayable, err = bufferBody(x.request(), rt.up.cfg.MaxReplayBody); err != nil {
			g.failed(rec, x, err)
			return
		}
	}
	if !replayable && !spillwayhttp.Idempotent(r) && r.GetBody == nil {
		// Never retried: spare the Transport the buffering of the body.
		x.request().GetBody = errNoReplay
	}
	x.intercept = len(rt.chain) > 0 || rt.cfg.Optional
	err := g.phase(rec, x, rt.up, rt.totalKey, "")
	if err == nil || g.callerDone(rec, x) {
		return
	}
	if rt.cfg.Optional {
		g.static(rec, x, rt.cfg.Default, FallbackDefault)
		return
	}
	g.fallBack(rec, x, r, body, replayable, err)
}

// phase proxies x's request to up; it returns nil when an answer was
// written, or the failure (nothing written) for the fallback chain.
func (g *Gateway) phase(w http.ResponseWriter, x *exchange, up *upstream, totalKey, phase string) error {
	x.up, x.totalKey, x.replica, x.err = up, totalKey, phase == FallbackReplica, nil
	x.prev.Store(nil)
	if phase != "" {
		x.intercept = true
	}
	// x, not x.ctx: the breaker's rejection event carries the exchange,
	// whose span records it.
	if err := failFast(x, up.breaker); err != nil {
		return err
	}
	if err := shedRequest(x, up); err != nil {
		return err
	}
	inst, err := up.pool.Pick(nil)
	if err != nil {
		up.metrics.reject(spillway.ReasonNoHealthyInstance)
		return err
	}
	x.preset = inst
	g.forward(w, x)
	x.preset = nil
	if x.err == nil {
		return nil
	}
	err = x.err
	switch {
	case isType[*statusFailure](err):
		err = &spillway.Error{Code: spillway.ReasonUpstreamError, Policy: "gateway", Name: up.name, Err: err}
	case x.ctx.Err() != nil:
		// The client's context or its announced budget ended.
		err = context.Cause(x.ctx)
	}
	return err
}

// local writes an answer the gateway makes before any policy runs, in the
// brief's error shape: {"error":{"reason":"no_route","message":"..."}}.
func (g *Gateway) local(w http.ResponseWriter, x *exchange, status int, reason, msg string) {
	x.reason, x.outcome = reason, outcomeError
	if reason == ReasonNoRoute {
		x.outcome = outcomeNoRoute
	}
	localError(w, x, status, reason, msg)
}

// finish records the request's metrics and access log line.
func (g *Gateway) finish(x *exchange, rec *recorder, r *http.Request, start time.Time) {
	end := time.Now()
	d := end.Sub(start)
	routeName, upName := "", ""
	if x.route != nil {
		routeName = x.route.cfg.Name
		if x.up != nil {
			upName = x.up.name
		}
	}
	// The grpc-status the client of a gRPC call got: the proxy has
	// returned, the trailers copied after the body (sentGRPCStatus).
	var grpcCode codes.Code
	grpcSent := false
	if x.grpc {
		grpcCode, grpcSent = sentGRPCStatus(rec.Header())
	}
	outcome := x.outcome
	if outcome == "" {
		// The upstream's answer, passed through.
		switch {
		case r.Context().Err() != nil:
			outcome = outcomeCanceled
		case rec.status >= 500, x.grpc && grpcFailed(rec.statusOr200(), grpcCode, grpcSent):
			outcome = outcomeUpstream5xx
		default:
			outcome = outcomeSuccess
		}
	}
	g.metrics.request(x.route, outcome, d.Seconds())
	if x.span != nil {
		info := RequestInfo{Route: routeName, Upstream: upName, Status: rec.statusOr200(), Attempts: x.attempts,
			Outcome: outcome, Reason: x.reason, Fallback: x.fallback, Fault: x.fault.String()}
		if grpcSent {
			info.GRPCStatus = grpcStatusName(grpcCode)
		}
		info.GRPCFailed = x.grpc && grpcFailed(info.Status, grpcCode, grpcSent)
		x.span.End(info)
	}
	if g.opts.AccessLogWriter != nil {
		writeAccessLine(g.opts.AccessLogWriter, accessLine{time: end, route: routeName, upstream: upName, method: r.Method,
			path: r.URL.Path, status: rec.statusOr200(), duration: d, attempts: x.attempts, outcome: outcome,
			reason: x.reason, fallback: x.fallback, fault: x.fault.String(), grpcSent: grpcSent, grpcStatus: grpcCode})
		return
	}
	if g.opts.AccessLog == nil {
		return
	}
	attrs := [...]slog.Attr{
		slog.String("route", routeName), slog.String("upstream", upName),
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", rec.statusOr200()), slog.Float64("duration", d.Seconds()),
		slog.Int("attempts", x.attempts), slog.String("outcome", outcome),
		slog.String("reason", x.reason), slog.String("fallback", x.fallback), slog.String("fault", x.fault.String()),
		{}, // grpc_status, for a gRPC call that got one
	}
	n := len(attrs) - 1
	if grpcSent {
		attrs[n] = slog.Int("grpc_status", int(grpcCode))
		n++
	}
	g.opts.AccessLog.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs[:n]...)
}

// errClientBudget ends a request whose Spillway-Timeout-Ms budget ran out.
var errClientBudget = &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "gateway",
	Name: spillwayhttp.TimeoutHeader, Err: context.DeadlineExceeded}

// errNoReplay is the GetBody of a request that is never retried.
func errNoReplay() (io.ReadCloser, error) {
	return nil, errors.New("gateway: request body is not replayable")
}

// parseMillis reads a Spillway-Timeout-Ms value: a positive decimal integer.
func parseMillis(v string) (time.Duration, bool) {
	if v == "" || len(v) > 12 {
		return 0, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// isOpen reports whether a breaker in state s rejects every call.
func isOpen(s breaker.State) bool { return s == breaker.Open || s == breaker.ForcedOpen }

// errFastPathRace is the outcome of a permit that failFast took by chance
// and hands back unused: ignored by the breaker.
var errFastPathRace = spillway.CallerDone(errors.New("gateway: breaker checked before the proxy"))

// failFast returns the breaker's rejection at once while it is open, before
// any instance is picked or the request copied for the proxy: an answer made
// from memory should cost what a Go server's own answer costs. The breaker
// counts and reports the rejection as usual. When the breaker moved on
// between State and Acquire, the permit goes back unused and the request
// takes the normal path.
func failFast(ctx context.Context, b *breaker.Breaker) error {
	if !isOpen(b.State()) {
		return nil
	}
	p, err := b.Acquire(ctx)
	if err != nil {
		return err
	}
	p.Release(errFastPathRace)
	return nil
}

// recorder remembers the status written, for the log and the metrics.
type recorder struct {
	http.ResponseWriter
	status int
	// streamTimeout, set for an HTTP/2 stream of a NewListener connection,
	// bounds each write and flush of the response: the client's flow
	// control can stall a stream while the connection's writes go on. An
	// HTTP/1 response is bounded by its connection's writes.
	streamTimeout time.Duration
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.streamTimeout == 0 {
		return r.ResponseWriter.Write(p)
	}
	r.streamDeadline(true)
	n, err := r.ResponseWriter.Write(p)
	r.streamDeadline(false)
	return n, err
}

// FlushError flushes the response (http.ResponseController calls it).
func (r *recorder) FlushError() error {
	if r.streamTimeout == 0 {
		return http.NewResponseController(r.ResponseWriter).Flush()
	}
	r.streamDeadline(true)
	err := http.NewResponseController(r.ResponseWriter).Flush()
	r.streamDeadline(false)
	return err
}

// streamDeadline sets the write deadline of an HTTP/2 stream streamTimeout
// ahead (on) or lifts it: a stream may wait for its upstream as long as it
// takes, not for its client. A deadline left on bounds what the server
// writes once the handler returned (the end of the buffered body).
func (r *recorder) streamDeadline(on bool) {
	var dl time.Time
	if on {
		dl = time.Now().Add(r.streamTimeout)
	}
	_ = http.NewResponseController(r.ResponseWriter).SetWriteDeadline(dl)
}

func (r *recorder) statusOr200() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Unwrap lets http.ResponseController (used by the proxy to flush and hijack)
// reach the server's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
