package gateway

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"google.golang.org/grpc/codes"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/gateway/internal/reply"
	"github.com/spillway-dev/spillway/spillwaygrpc"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// The gRPC headers (and trailers) the gateway reads and writes.
const (
	grpcStatusHeader   = "Grpc-Status"
	grpcMessageHeader  = "Grpc-Message"
	grpcTimeoutHeader  = "Grpc-Timeout"
	grpcPushbackHeader = "Grpc-Retry-Pushback-Ms"
)

// isGRPC reports whether r is a gRPC call: an HTTP/2 request whose
// content type is application/grpc or one of its subtypes
// (application/grpc+proto, ...). gRPC-Web, which browsers speak over
// HTTP/1, is not: its status travels in the body.
func isGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && grpcContentType(r.Header.Get("Content-Type"))
}

func grpcContentType(ct string) bool {
	rest, ok := strings.CutPrefix(ct, "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// serveGRPC proxies the gRPC call x to its route's upstream. The route's
// fallback chain is skipped (a static body, a stale HTTP answer or a
// replica's buffered replay do not fit a gRPC stream): a failure gets a
// gRPC error answer. The call's grpc-timeout bounds it like a
// Spillway-Timeout-Ms budget.
func (g *Gateway) serveGRPC(rec *recorder, x *exchange, r *http.Request) {
	rt := x.route
	if d, ok := parseGRPCTimeout(r.Header.Get(grpcTimeoutHeader)); ok && d < rt.total {
		if dl, has := x.ctx.Deadline(); !has || time.Until(dl) > d {
			ctx, cancel := context.WithTimeoutCause(x.ctx, d, errGRPCBudget)
			defer cancel()
			x.ctx = ctx
		}
	}
	req := x.request()
	if max := rt.up.cfg.MaxReplayBody; req.Body != nil && req.Body != http.NoBody {
		if max > 0 {
			b := &grpcBody{rc: req.Body, max: max}
			req.Body, req.GetBody = b, b.replay
		} else {
			req.GetBody = errNoReplay
		}
	}
	x.intercept = false
	err := g.phase(rec, x, rt.up, rt.totalKey, "")
	if err == nil {
		return
	}
	if dl, ok := x.ctx.Deadline(); ok && !time.Now().Before(dl) {
		// The upstream's grpc-timeout, which ends no earlier than the
		// call's deadline, ended it a moment before the gateway's timer
		// fired: the call's deadline is what failed.
		<-x.ctx.Done()
		err = context.Cause(x.ctx)
	}
	g.failed(rec, x, err)
}

// upstreamDeadline reports whether resp is the upstream's trailers-only
// DEADLINE_EXCEEDED to the call x whose own deadline has passed: the
// upstream's grpc-timeout, which ends no earlier than the call's deadline,
// answered a moment before the gateway's timer fired. The call's deadline
// is what failed, and the gateway answers it (serveGRPC), as when the
// upstream reset the stream instead.
func upstreamDeadline(x *exchange, resp *http.Response) bool {
	c, ok := grpcStatusOf(resp)
	if !ok || c != codes.DeadlineExceeded {
		return false
	}
	dl, has := x.ctx.Deadline()
	return has && !time.Now().Before(dl)
}

// errUpstreamDeadline stands for the upstream's answer that upstreamDeadline
// finds; serveGRPC answers the call's deadline instead.
var errUpstreamDeadline = errors.New("gateway: the upstream answered DEADLINE_EXCEEDED at the call's deadline")

// errGRPCBudget ends a call whose grpc-timeout ran out.
var errGRPCBudget = &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "gateway",
	Name: "grpc-timeout", Err: context.DeadlineExceeded}

// grpcTimeoutUnits are the units of a grpc-timeout value.
var grpcTimeoutUnits = map[byte]time.Duration{
	'H': time.Hour, 'M': time.Minute, 'S': time.Second,
	'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond,
}

// parseGRPCTimeout reads a grpc-timeout value: at most 8 digits and a unit
// (H, M, S, m, u, n), as the gRPC over HTTP/2 protocol writes it.
func parseGRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n <= 0 || v[0] == '+' {
		return 0, false
	}
	unit, ok := grpcTimeoutUnits[v[len(v)-1]]
	if !ok || n > math.MaxInt64/int64(unit) {
		// Past 292 years: no limit.
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// setGRPCTimeout rewrites an attempt's grpc-timeout to the budget the
// Transport announced in its Spillway-Timeout-Ms header (the attempt limit
// or what is left of the call's deadline, in whole milliseconds rounded
// down), plus a millisecond: the upstream gives up when the gateway does,
// just after, so that the gateway's own limit decides the answer
// (DEADLINE_EXCEEDED, or a retry after an attempt timeout) rather than the
// upstream's reset stream.
func setGRPCTimeout(h http.Header) {
	if v := h[spillwayhttp.TimeoutHeader]; len(v) == 1 {
		// gRPC allows 8 digits: a longer budget (27 hours) is left as
		// the client wrote it.
		if ms, err := strconv.ParseInt(v[0], 10, 64); err == nil && ms < 99999999 {
			h[grpcTimeoutHeader] = []string{strconv.FormatInt(ms+1, 10) + "m"}
		}
	}
}

// grpcStatusOf reads the grpc-status of a trailers-only answer (the status
// in the response head, no message): ok false when resp has none.
func grpcStatusOf(resp *http.Response) (codes.Code, bool) {
	return grpcStatusIn(resp.Header)
}

// grpcStatusIn reads the grpc-status in h: UNKNOWN when it is malformed, ok
// false when h has none.
func grpcStatusIn(h http.Header) (codes.Code, bool) {
	return grpcStatusValue(h[grpcStatusHeader])
}

// sentGRPCStatus reads the grpc-status the client of a gRPC call got, in
// h, its answer's header map once the proxy has returned: in the head (a
// trailers-only answer, or the gateway's own error answer), or among the
// trailers, which the forwarder copies into h after the body, before
// it returns (under http.TrailerPrefix, or under their own name when the
// upstream announced them). ok false when none was sent: the stream was
// cut short, or its end had no status.
func sentGRPCStatus(h http.Header) (codes.Code, bool) {
	if c, ok := grpcStatusIn(h); ok {
		return c, true
	}
	return grpcStatusValue(h[http.TrailerPrefix+grpcStatusHeader])
}

// grpcFailed reports whether the upstream's answer to a gRPC call, passed
// through with the HTTP status status and the grpc-status code (sent false:
// none), is a failure for spillwaygrpc.ClassifyCode: an answer of HTTP 200
// whose status, in its head or its trailers, is a failure or is missing
// (grpc-go reports that as INTERNAL or UNKNOWN), as its attempt counted
// (status_failure). It is the request's outcome upstream_5xx, the gRPC
// equivalent of a 5xx passed through; any other HTTP status counts as for
// any request.
func grpcFailed(status int, code codes.Code, sent bool) bool {
	return status == http.StatusOK && (!sent || spillwaygrpc.ClassifyCode(code) == spillway.Failure)
}

// grpcStatusValue reads a grpc-status header's values v: UNKNOWN when it
// is malformed, ok false when there is none (or more than one).
func grpcStatusValue(v []string) (codes.Code, bool) {
	if len(v) != 1 {
		return 0, false
	}
	c, err := strconv.ParseUint(v[0], 10, 32)
	if err != nil {
		return codes.Unknown, true
	}
	return codes.Code(c), true
}

// classify is the Transport's Classify: as spillwayhttp's, and for a gRPC
// answer (HTTP/2, status 200) as spillwaygrpc counts its status. A status
// in the head (a trailers-only answer) counts at once. The status of an
// answer that streams messages comes in its trailers: while the breaker is
// closed its head is Ignored and its body counts the status at its end
// (grpcHead, trailerBody); otherwise the head counts as a success, the
// rule spillwaygrpc applies to a stream, which is established.
func (up *upstream) classify(resp *http.Response, err error) spillway.Outcome {
	if err == nil && resp.ProtoMajor == 2 && resp.StatusCode == http.StatusOK {
		if c, ok := grpcStatusOf(resp); ok {
			return spillwaygrpc.ClassifyCode(c)
		}
		if b, ok := resp.Body.(*trailerBody); ok && b.track.Releaser() != nil {
			return spillway.Ignored
		}
	}
	return spillwayhttp.DefaultClassify(resp, err)
}

// grpcHead makes the gRPC answer resp, whose body is b, count its status
// as spillwaygrpc does. A status in the head counts for the instance at
// once. Without one the status comes in the trailers: resp's body becomes
// a trailerBody, which reads them when it ends, for the instance, for
// spillway_upstream_attempts_total, and for the breaker through track, the
// permit breaker.Track gave at the attempt's start while the breaker was
// closed (classify then ignores the head): so the breaker judges the call
// from its start to its trailers, its status and its duration, as
// spillwaygrpc judges a unary call. A breaker in any other state (track is
// the zero Permit) counts the head as a success instead, as spillwaygrpc
// counts an established stream, so that a long-lived stream never holds a
// half-open probe nor counts as a slow call.
func (up *upstream) grpcHead(b *instanceBody, resp *http.Response, track spillway.Permit) {
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		return
	}
	if c, ok := grpcStatusOf(resp); ok {
		b.failed = spillwaygrpc.ClassifyCode(c) == spillway.Failure
		b.status = b.failed
		return
	}
	resp.Body = &trailerBody{instanceBody: b, resp: resp, metrics: up.metrics, track: track}
	b.x.trailers = true
	if !up.metrics.trailers.Load() {
		up.metrics.trailers.Store(true)
	}
}

// trailerBody is the body of a gRPC answer whose status comes in its
// trailers (resp's, which the HTTP/2 client fills before the body's EOF).
// At its end it counts the attempt, as its status says, on metrics and,
// when track is set, on the breaker, and for the instance. It is
// allocated for such answers alone, so that the exchange, which holds the
// first attempt's instanceBody, stays small.
type trailerBody struct {
	*instanceBody
	resp    *http.Response
	metrics *upstreamMetrics
	track   spillway.Permit
	eof     bool
	// result is the attempt's result when reading the body failed (a
	// reset stream, timeouts.body_idle).
	result string
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.instanceBody.Read(p)
	switch {
	case err == io.EOF:
		b.eof, b.failed = true, trailerFailed(b.resp)
	case err != nil && b.failed && b.result == "":
		b.result = readResult(b.resp, err)
	}
	return n, err
}

// readResult is the result of an attempt whose answer resp failed while
// its body was read with err: when the attempt's own end
// (timeouts.body_idle, the attempt limit) cancelled the read, its cause.
func readResult(resp *http.Response, err error) string {
	if req := resp.Request; req != nil {
		if cause := context.Cause(req.Context()); cause != nil {
			err = cause
		}
	}
	return attemptResult(err)
}

// Close counts the answer, once: at its end as its status says (a
// failure is status_failure, as a trailers-only failure is), cut short by
// a read error as that error says. An answer closed before its end with no
// failure (its client went away) is a success, as its head was, and the
// breaker does not count it.
func (b *trailerBody) Close() error {
	err := b.ReadCloser.Close()
	if b.ended.CompareAndSwap(false, true) {
		result := resultSuccess
		switch {
		case b.eof && b.failed:
			result = resultStatus
		case b.failed:
			result = cmp.Or(b.result, resultReset)
		}
		if b.eof || b.failed {
			var out error
			if b.failed {
				out = errTrailerFailed
			}
			b.track.Release(out)
		}
		b.metrics.attempt(result)
		b.end(result)
	}
	return err
}

// trailerFailed reports whether the status in resp's trailers is a
// failure for spillwaygrpc; a missing status is one (grpc-go reports it as
// UNKNOWN or INTERNAL).
func trailerFailed(resp *http.Response) bool {
	c, ok := grpcStatusIn(resp.Trailer)
	return !ok || spillwaygrpc.ClassifyCode(c) == spillway.Failure
}

// errTrailerFailed is the outcome a breaker records for a gRPC answer
// whose trailers carry a failing status, or whose body failed before them.
var errTrailerFailed = errors.New("gateway: the upstream's gRPC answer ended with a failing grpc-status")

// grpcRetryable is the retry rule of a gRPC call, whatever its method:
// grpc-go's own rule, a call is retried only before anything of its answer
// went to the client. So a trailers-only answer with a code spillwaygrpc
// retries (UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, DEADLINE_EXCEEDED)
// unless its grpc-retry-pushback-ms forbids it, and a connect failure or
// an attempt timeout when retry.on lists them; never an answer that
// streams messages, nor a reset stream. The request's messages must all
// have been read and kept (grpcBody).
func (up *upstream) grpcRetryable(req *http.Request, resp *http.Response, err error) bool {
	// The body the proxy got, which it wraps in the request it sends.
	if in := exchangeOf(req.Context()).request().Body; in != nil && in != http.NoBody {
		if b, ok := in.(*grpcBody); !ok || !b.complete() {
			return false
		}
	}
	if resp == nil {
		switch attemptResult(err) {
		case resultConnect:
			return up.on.connect
		case resultTimeout:
			return up.on.timeout
		}
		// A stream reset after the call was sent: the upstream may have
		// acted on it, and grpc-go reports it as CANCELLED or INTERNAL.
		return false
	}
	c, ok := grpcStatusOf(resp)
	if !ok || !spillwaygrpc.RetryableCode(c) {
		return false
	}
	if v := resp.Header[grpcPushbackHeader]; len(v) > 0 {
		_, retry := spillwaygrpc.ParsePushback(v[0])
		return retry
	}
	return true
}

// retryAfter is the Transport's RetryAfter: the grpc-retry-pushback-ms of
// a gRPC trailers-only answer, the Retry-After of any other. A pushback is
// then the least wait before the next attempt, capped at
// retry.retry_after_max as a Retry-After is; when the wait would end past
// the call's deadline, the answer goes to the client at once.
func (up *upstream) retryAfter(resp *http.Response) (time.Duration, bool) {
	if v := resp.Header[grpcPushbackHeader]; len(v) > 0 && resp.ProtoMajor == 2 && resp.StatusCode == http.StatusOK {
		if _, ok := grpcStatusOf(resp); ok {
			return spillwaygrpc.ParsePushback(v[0])
		}
	}
	return spillwayhttp.DefaultRetryAfter(resp)
}

// errBodyNotKept is the GetBody of a gRPC call whose request messages were
// not all read and kept when a retry was considered.
var errBodyNotKept = errors.New("gateway: the gRPC request was not read whole")

// grpcBody keeps the messages of a gRPC request, up to max bytes, as the
// first attempt streams them, so that a retry can send them again. Unlike
// a buffered body, it never waits for the client: a streaming call goes on
// as its messages come, and is retried only if it had ended, within max,
// when its first answer came back (a unary call has).
type grpcBody struct {
	rc   io.ReadCloser
	max  int64
	mu   sync.Mutex
	buf  []byte
	over bool // more than max bytes were read: nothing is kept
	eof  bool
}

func (b *grpcBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	if !b.over {
		if int64(len(b.buf)+n) > b.max {
			b.over, b.buf = true, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if err == io.EOF {
		b.eof = true
	}
	b.mu.Unlock()
	return n, err
}

func (b *grpcBody) Close() error { return b.rc.Close() }

// complete reports whether the whole request was read and kept.
func (b *grpcBody) complete() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof && !b.over
}

// replay is the request's GetBody: the messages kept.
func (b *grpcBody) replay() (io.ReadCloser, error) {
	if !b.complete() {
		return nil, errBodyNotKept
	}
	return io.NopCloser(bytes.NewReader(b.buf)), nil
}

// grpcCodes are the gRPC codes of the gateway's own answers, by reason:
// rejections are UNAVAILABLE (grpc-go retries them), as spillwaygrpc
// reports them, a throttled call RESOURCE_EXHAUSTED.
var grpcCodes = map[string]codes.Code{
	string(spillway.ReasonBreakerOpen):       codes.Unavailable,
	string(spillway.ReasonBulkheadFull):      codes.Unavailable,
	string(spillway.ReasonBudgetExhausted):   codes.Unavailable,
	string(spillway.ReasonNoHealthyInstance): codes.Unavailable,
	string(spillway.ReasonUpstreamError):     codes.Unavailable,
	string(spillway.ReasonThrottled):         codes.ResourceExhausted,
	string(spillway.ReasonDeadlineExceeded):  codes.DeadlineExceeded,
	string(spillway.ReasonCanceled):          codes.Canceled,
	ReasonNoRoute:                            codes.Unimplemented,
	ReasonBadRequest:                         codes.InvalidArgument,
	ReasonBodyTooLarge:                       codes.ResourceExhausted,
}

// writeGRPCError writes the gateway's own answer to a gRPC call: HTTP 200,
// trailers-only, grpc-status the code of reason (UNAVAILABLE for any other),
// grpc-message "reason: msg", Spillway-Reason (which the gRPC client sees
// as the trailer spillway-reason) and, with a retry hint, the trailer
// grpc-retry-pushback-ms.
func writeGRPCError(w http.ResponseWriter, reason, msg string, retryAfter time.Duration) {
	code, ok := grpcCodes[reason]
	if !ok {
		code = codes.Unavailable
	}
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set(spillwayhttp.ReasonHeader, reason)
	h.Set(grpcStatusHeader, strconv.Itoa(int(code)))
	h.Set(grpcMessageHeader, percentEncode(reason+": "+msg))
	if retryAfter > 0 {
		h.Set(grpcPushbackHeader, strconv.FormatInt(int64(math.Ceil(float64(retryAfter)/float64(time.Millisecond))), 10))
	}
	w.WriteHeader(http.StatusOK)
}

// failedGRPC is failed for a gRPC call: the error answer of err.
func failedGRPC(w http.ResponseWriter, reason spillway.Reason, err error) {
	if reason == "" {
		reason = spillway.ReasonUpstreamError
	}
	ra, _ := spillway.RetryAfterOf(err)
	writeGRPCError(w, string(reason), err.Error(), ra)
}

// localError writes an answer the gateway makes before any policy runs:
// gRPC-shaped for a gRPC call, the brief's JSON error otherwise.
func localError(w http.ResponseWriter, x *exchange, status int, reason, msg string) {
	if x.grpc {
		writeGRPCError(w, reason, msg, 0)
		return
	}
	reply.Error(w, status, reason, msg)
}

// percentEncode encodes a grpc-message value: bytes outside printable
// ASCII, and '%', as %XX (gRPC over HTTP/2).
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// useHTTP2 makes base speak HTTP/2 only (upstream http2: true): cleartext
// h2c with prior knowledge to http:// instances, ALPN h2 to https:// ones.
func useHTTP2(base *http.Transport) {
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	base.Protocols = &p
}

// grpcStatusName is a grpc-status as rpc.response.status_code spells it
// for gRPC: the code's name in upper snake case (DEADLINE_EXCEEDED), its
// number for a code gRPC does not define. The names are made once.
func grpcStatusName(c codes.Code) string {
	if int(c) < len(grpcStatusNames) {
		return grpcStatusNames[c]
	}
	return strconv.FormatUint(uint64(c), 10)
}

// grpcStatusNames are the names of the codes gRPC defines, OK to
// UNAUTHENTICATED, from codes.Code's String ("DeadlineExceeded").
var grpcStatusNames = func() (names [codes.Unauthenticated + 1]string) {
	for c := range names {
		name := codes.Code(c).String()
		var b strings.Builder
		for i, r := range name {
			if i > 0 && unicode.IsUpper(r) && !unicode.IsUpper(rune(name[i-1])) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToUpper(r))
		}
		names[c] = b.String()
	}
	return names
}()
