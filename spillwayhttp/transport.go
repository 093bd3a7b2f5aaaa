package spillwayhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/internal/gauges"
	"github.com/spillway-dev/spillway/internal/keyed"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

// Timeouts are the time limits of one downstream. A zero field means its
// default (DefaultTimeouts); a negative field means no limit.
//
// The Transport enforces Attempt, Total and BodyIdle per downstream. Connect,
// TLSHandshake and ResponseHeader configure the connections of a base
// transport (NewBaseTransport), which all downstreams of a Transport share;
// the Attempt limit bounds them per downstream in any case, since it covers
// the dial, the handshake and the wait for the response headers.
type Timeouts struct {
	// Connect bounds a TCP dial. Default 2s (the brief).
	Connect time.Duration
	// TLSHandshake bounds a TLS handshake. Default 5s: a handshake that
	// outlasts the attempt can never serve it (Go's DefaultTransport uses 10s).
	TLSHandshake time.Duration
	// ResponseHeader bounds the wait for the response headers once the
	// request is written (time to first byte). Default: Attempt.
	ResponseHeader time.Duration
	// BodyIdle fails a response body read that receives no byte for this
	// long, with a deadline_exceeded error. It counts only while the caller
	// is blocked in Read: a caller that pauses between reads is not timed.
	// Default 30s, below nginx's proxy_read_timeout (60s) and Envoy's stream
	// idle timeout (5 min), twice the total timeout.
	BodyIdle time.Duration
	// Attempt bounds one attempt, from its start (bulkhead wait excluded) to
	// its response headers. Default 5s (the brief).
	Attempt time.Duration
	// Total bounds every attempt and backoff of one request up to the
	// headers of the response returned. Default 15s (the brief, after
	// Envoy's 15s route timeout). It never cuts a response body short: once a
	// response is returned, its body runs under BodyIdle and the caller's
	// own context only.
	Total time.Duration
}

// DefaultTimeouts are the brief's time limits, which a zero Timeouts field
// stands for.
var DefaultTimeouts = Timeouts{
	Connect:        2 * time.Second,
	TLSHandshake:   5 * time.Second,
	ResponseHeader: 5 * time.Second,
	BodyIdle:       30 * time.Second,
	Attempt:        5 * time.Second,
	Total:          15 * time.Second,
}

// withDefaults fills in the zero fields.
func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.Connect, DefaultTimeouts.Connect)
	def(&t.TLSHandshake, DefaultTimeouts.TLSHandshake)
	def(&t.BodyIdle, DefaultTimeouts.BodyIdle)
	def(&t.Attempt, DefaultTimeouts.Attempt)
	def(&t.Total, DefaultTimeouts.Total)
	def(&t.ResponseHeader, t.Attempt)
	return t
}

// limit turns a resolved Timeouts field into a limit: 0 means none.
func limit(d time.Duration) time.Duration { return max(d, 0) }

// NewBaseTransport returns the tuned *http.Transport that a Transport wraps by
// default: dials bounded by t.Connect (keep-alive 30s), TLS handshakes by
// t.TLSHandshake, the wait for response headers by t.ResponseHeader; up to
// 100 idle connections per host (the default bulkhead's limit, so that every
// admitted call can keep its connection) and 1000 in all, closed after 90s
// idle; HTTP/2 attempted; proxies from the environment, as
// http.DefaultTransport. Zero fields of t mean DefaultTimeouts.
func NewBaseTransport(t Timeouts) *http.Transport {
	t = t.withDefaults()
	d := &net.Dialer{Timeout: limit(t.Connect), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1000,
		MaxIdleConnsPerHost:   bulkhead.DefaultMaxConcurrent,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   limit(t.TLSHandshake),
		ResponseHeaderTimeout: limit(t.ResponseHeader),
		ExpectContinueTimeout: time.Second,
	}
}

// Downstream holds the policies of one downstream (one key). Every policy is
// optional: a nil one is skipped. The policies may be shared with other
// Transports or pipelines; the Retry policy's budget is then shared too.
type Downstream struct {
	// Guards are further guards acquired before the breaker, in order (a
	// client-side throttle.Throttler): each sees the attempt's outcome as
	// the breaker does, and its refusal stops the attempt before the
	// breaker and the bulkhead are asked. At most 6 (the engine holds 8
	// guards): more fails the downstream's first request. Default none.
	Guards []spillway.Guard
	// Breaker sees the outcome of every attempt, as Config.Classify
	// classifies it.
	Breaker *breaker.Breaker
	// Retry re-sends failed attempts; its budget (retry.Config.Budget, or
	// the policy's own) is the downstream's one retry budget.
	Retry *retry.Policy
	// Bulkhead bounds the attempts waiting for their response headers,
	// and with Config.BulkheadSpansBody the responses whose body is open.
	Bulkhead *bulkhead.Bulkhead
	// Timeouts are the downstream's time limits; zero fields mean
	// DefaultTimeouts.
	Timeouts Timeouts
	// Hedge hedges the attempts of Hedgeable requests (GET, HEAD, OPTIONS)
	// whose body can be sent more than once: each attempt the retry policy
	// makes is raced against hedges sent after the policy's delay, each
	// through the breaker and the bulkhead, the first success returned and
	// the others cancelled, their responses closed (see spillway.Hedge).
	// Default nil: no hedging.
	Hedge *hedge.Policy
	// Chaos injects faults into the attempts (chaos.Policy): run in order
	// under the attempt's limit, after the breaker and the bulkhead
	// admitted it, in place of the base transport when one replaces the
	// call (its substitute *http.Response needs a Body of its own per
	// call). Default none.
	Chaos []spillway.Injector[*http.Response]
}

// DefaultDownstream returns the brief's policies for the downstream key,
// each named key and reporting to obs (nil: no events): a breaker.Config{}
// breaker (50 % of the last 100 calls, from 20 calls, open 30s), a
// retry.Config{} policy (3 attempts, 100ms ×2 up to 5s, full jitter) with a
// budget of its own (20 % of the requests of the last 10s plus 10 a second),
// a bulkhead of 100 concurrent calls without a queue, and DefaultTimeouts.
// A Config.NewDownstream that adjusts the defaults calls it with the
// observer it was given, so that no event is lost.
func DefaultDownstream(key string, obs spillway.Observer) (*Downstream, error) {
	br, err := breaker.New(breaker.Config{Name: key, Observer: obs})
	if err != nil {
		return nil, err
	}
	rp, err := retry.New(retry.Config{Name: key, Observer: obs})
	if err != nil {
		return nil, err
	}
	bh, err := bulkhead.New(bulkhead.Config{Name: key, Observer: obs})
	if err != nil {
		return nil, err
	}
	return &Downstream{Breaker: br, Retry: rp, Bulkhead: bh, Timeouts: DefaultTimeouts}, nil
}

// DefaultMaxReplayBody is the MaxReplayBody of a zero Config: 1 MiB.
const DefaultMaxReplayBody = 1 << 20

// Config configures a Transport. Its zero value is the brief's client: a
// tuned base transport, one set of default policies per host, the default
// classification and retry rule.
type Config struct {
	// Base sends the attempts. Default NewBaseTransport(DefaultTimeouts), a
	// transport of the Transport's own. Each attempt hands it a request of
	// the attempt's own (a shallow copy with the attempt's context, body and
	// header), whose fields Base may set, to send it elsewhere for
	// instance, without copying it again; what they point to is shared.
	Base http.RoundTripper
	// Key names the downstream a request goes to; each key gets its own
	// policies. Default: the request URL's host (host:port as written),
	// which is also the key of a request for which Key returns "" (a map
	// lookup that missed), so that every downstream has a name its
	// policies and gauges can carry. It must return few distinct keys
	// (hosts, services), never ids or paths, and be safe for concurrent use.
	Key func(*http.Request) string
	// NewDownstream makes the policies of a key the first time a request
	// goes to it, reporting to obs (the Transport's Observer, which its
	// policies should get as their Config.Observer); it runs once per key,
	// under the Transport's lock. An error fails that request (and the next
	// one tries again). Default: DefaultDownstream.
	NewDownstream func(key string, obs spillway.Observer) (*Downstream, error)
	// Classify says how an attempt's outcome counts: err is a transport
	// error (resp nil) or nil (resp set). Default DefaultClassify: transport
	// errors, 5xx, 408 and 429 are failures; every other response is a
	// success. Ignored outcomes are released to the breaker as the caller's
	// own (spillway.CallerDone), which breakers never count. It is not
	// consulted for a local rejection or when the caller's context ended.
	Classify func(*http.Response, error) spillway.Outcome
	// Retryable says whether a failed attempt (Classify said Failure) may be
	// sent again. Default DefaultRetryable: idempotent requests only (see
	// Idempotent), after a transport error or a 5xx, 408 or 429. The retry
	// policy's own rules apply on top: it never retries rejections or after
	// the caller's context ended.
	Retryable func(*http.Request, *http.Response, error) bool
	// RetryAfter reads the retry hint of a failing response (Classify said
	// Failure): the least delay before the next attempt, which the retry
	// policy honours up to its MaxRetryAfter; ok false when it has none.
	// Default DefaultRetryAfter: the Retry-After header. The gateway reads
	// a gRPC answer's grpc-retry-pushback-ms with it.
	RetryAfter func(*http.Response) (d time.Duration, ok bool)
	// MaxReplayBody is how many bytes of a request body without GetBody
	// are buffered so that the request can be retried. A larger body is
	// streamed once and the request is never retried. Default 1 MiB
	// (DefaultMaxReplayBody); negative: never buffer. Only requests that
	// Retryable could retry are buffered: with the default rule, idempotent
	// ones.
	MaxReplayBody int64
	// Observer receives an EventAttempt (Policy "http", Name the key) per
	// attempt and an EventTimeout when an attempt, total or body idle limit
	// cuts a request short; NewDownstream gets it for the downstreams'
	// policies. When it has a method Register(policies ...any) error, as
	// *spillwayprom.Metrics and *spillwayotel.Observer have (in a
	// spillway.Observers too), each new downstream's breaker, bulkhead,
	// retry budget, hedging policy and guards (a throttle, a rate limiter)
	// are registered with it, so that their gauges are exported; a registration error (another policy under the same name)
	// fails the request as NewDownstream's would. Default nil.
	Observer spillway.Observer
	// ReuseHeader lets the first attempt of a request carry TimeoutHeader in
	// the request's own Header instead of a copy of it, which spares a copy
	// per request; retries always get a copy. Set it only when the requests
	// are the Transport's alone once handed over and their Header may be
	// changed, as with the outgoing requests of an httputil.ReverseProxy,
	// which copied the inbound headers for them. Default false: RoundTrip
	// does not modify the request, as http.RoundTripper asks.
	ReuseHeader bool
	// BulkheadSpansBody keeps an attempt's bulkhead slot until the body of
	// the response returned is read to its end or closed, instead of
	// releasing it when the headers arrive: the bulkhead then bounds the
	// exchanges in flight at the downstream, bodies being streamed
	// included, which is what a proxy streaming bodies at its clients' pace
	// needs. A response whose body is never closed keeps its slot forever.
	// Default false. The breaker permit goes back at the headers either
	// way: the outcome is known then.
	BulkheadSpansBody bool
}

// Transport is an http.RoundTripper that sends each request through the
// policies of its downstream: retry with budget, then breaker and bulkhead
// around each attempt, under the attempt and total timeouts. See the package
// documentation for the model. Create one with New; it is safe for concurrent
// use.
type Transport struct {
	base      http.RoundTripper
	key       func(*http.Request) string
	newDS     func(string, spillway.Observer) (*Downstream, error)
	classify  func(*http.Response, error) spillway.Outcome
	retryable func(*http.Request, *http.Response, error) bool
	// anyRetryable is set for a custom Retryable, which may retry a request
	// that is not idempotent: its body must then be buffered too.
	anyRetryable bool
	maxReplay    int64
	obs          spillway.Observer
	reuseHeader  bool
	spanBody     bool
	// retryAfter is Config.RetryAfter.
	retryAfter func(*http.Response) (time.Duration, bool)

	// ds holds the downstreams made so far: the hot path loads one without
	// any lock or allocation.
	ds keyed.Map[*downstream]
}

// downstream is a Downstream with its timeouts resolved and the errors of
// its time limits preallocated (they are context causes, compared by
// identity).
type downstream struct {
	pub                           *Downstream
	key                           string
	attempt, total, idle          time.Duration
	attemptErr, totalErr, idleErr *spillway.Error
	// baseTimeoutErr wraps the base transport's own timeouts (dial, TLS,
	// response header).
	baseTimeoutErr *spillway.Error
	// attemptHeader is the Spillway-Timeout-Ms value of an attempt bounded by
	// the attempt limit alone, the common case: shared (and never modified)
	// so that setting the header allocates nothing.
	attemptHeader []string
	// eng runs each attempt under the breaker and the bulkhead, classified
	// by the Transport's classifyAttempt.
	eng spillway.Engine[*http.Response]
	// chaos runs Downstream.Chaos under each attempt's own context.
	chaos spillway.Injectors[*http.Response]
}

func (t *Transport) newDownstream(key string, pub *Downstream) *downstream {
	to := pub.Timeouts.withDefaults()
	mk := func(name string) *spillway.Error {
		return &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "timeout", Name: name, Err: timeout.ErrTimeout}
	}
	// A nil policy must stay out of the guards: a typed nil is not a nil Guard.
	var guards, keep []spillway.Guard
	for _, g := range pub.Guards {
		if g != nil {
			guards = append(guards, g)
		}
	}
	if pub.Breaker != nil {
		guards = append(guards, pub.Breaker)
	}
	if pub.Bulkhead != nil {
		guards = append(guards, pub.Bulkhead)
		if t.spanBody {
			keep = []spillway.Guard{pub.Bulkhead}
		}
	}
	return &downstream{
		pub: pub, key: key,
		attempt: limit(to.Attempt), total: limit(to.Total), idle: limit(to.BodyIdle),
		attemptErr: mk(key + "/attempt"), totalErr: mk(key + "/total"), idleErr: mk(key + "/body_idle"),
		baseTimeoutErr: mk(key),
		attemptHeader:  []string{formatMillis(limit(to.Attempt))},
		eng: spillway.NewEngine(spillway.EngineConfig[*http.Response]{Guards: guards, Keep: keep,
			Classify: t.classifyAttempt, Observer: t.obs, Policy: "http", Name: key}),
		chaos: spillway.NewInjectors(pub.Chaos...),
	}
}

// New returns a Transport configured by cfg. It fails only on an invalid
// field (a negative MaxReplayBody is valid).
func New(cfg Config) (*Transport, error) {
	t := &Transport{
		base: cfg.Base, key: cfg.Key, newDS: cfg.NewDownstream, classify: cfg.Classify,
		retryable: cfg.Retryable, anyRetryable: cfg.Retryable != nil, maxReplay: cfg.MaxReplayBody, obs: cfg.Observer,
		reuseHeader: cfg.ReuseHeader, spanBody: cfg.BulkheadSpansBody, retryAfter: cfg.RetryAfter,
	}
	if t.base == nil {
		t.base = NewBaseTransport(DefaultTimeouts)
	}
	if t.key == nil {
		t.key = hostKey
	}
	if t.newDS == nil {
		t.newDS = DefaultDownstream
	}
	if t.classify == nil {
		t.classify = DefaultClassify
	}
	if t.retryable == nil {
		t.retryable = DefaultRetryable
	}
	if t.retryAfter == nil {
		t.retryAfter = DefaultRetryAfter
	}
	if t.maxReplay == 0 {
		t.maxReplay = DefaultMaxReplayBody
	}
	return t, nil
}

// MustNew is New for a Config known to be valid: it panics where New
// returns an error, as breaker.MustNew and the other policies' MustNew do.
func MustNew(cfg Config) *Transport {
	t, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return t
}

func hostKey(req *http.Request) string {
	if req.URL.Host != "" {
		return req.URL.Host
	}
	return req.Host
}

// Downstream returns the policies of key, if a request has gone to it.
func (t *Transport) Downstream(key string) (*Downstream, bool) {
	d, ok := t.ds.Load(key)
	if !ok {
		return nil, false
	}
	return d.pub, true
}

// Downstreams returns the policies of every key requests have gone to, in a
// new map the caller owns.
func (t *Transport) Downstreams() map[string]*Downstream {
	m := t.ds.All()
	out := make(map[string]*Downstream, len(m))
	for k, d := range m {
		out[k] = d.pub
	}
	return out
}

// CloseIdleConnections closes the idle connections of the base transport, if
// it can (http.Client.CloseIdleConnections calls it).
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// downstream returns the policies of key, making them on first use.
func (t *Transport) downstream(key string) (*downstream, error) {
	if d, ok := t.ds.Load(key); ok {
		return d, nil
	}
	return t.ds.Make(key, t.makeDownstream)
}

// maxExtraGuards bounds Downstream.Guards: the engine holds 8 guards, the
// breaker and the bulkhead take two.
const maxExtraGuards = 6

// makeDownstream makes the policies of key, on its first request, and
// registers their gauges with the Observer.
func (t *Transport) makeDownstream(key string) (*downstream, error) {
	pub, err := t.newDS(key, t.obs)
	if err == nil && pub == nil {
		err = errors.New("NewDownstream returned no Downstream")
	}
	if err == nil && len(pub.Guards) > maxExtraGuards {
		err = fmt.Errorf("a Downstream takes at most %d Guards, got %d", maxExtraGuards, len(pub.Guards))
	}
	if err == nil {
		policies := []any{pub.Breaker, pub.Bulkhead, pub.Retry, pub.Hedge}
		for _, g := range pub.Guards {
			policies = append(policies, g)
		}
		err = gauges.RegisterWith(t.obs, policies...)
	}
	if err != nil {
		return nil, fmt.Errorf("spillwayhttp: downstream %q: %w", key, err)
	}
	return t.newDownstream(key, pub), nil
}

// RoundTrip sends req through its downstream's policies. It returns the
// response of the last attempt made — a failing one (a 503) included, intact,
// when no retry is left or allowed — or an error: a transport error, a
// rejection (breaker_open, bulkhead_full), a time limit (deadline_exceeded),
// a retry policy's error wrapping the last transport error (budget_exhausted,
// or retries exhausted), or the caller's context error. It never retries
// after req's context ended. See the package documentation.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	x := exchange{t: t, req: req, rep: replay{first: req.Body}}
	defer x.rep.closeUnused()
	key := t.key(req)
	if key == "" {
		key = hostKey(req)
	}
	ds, err := t.downstream(key)
	if err != nil {
		return nil, err
	}
	x.ds = ds
	// One clock read serves the total deadline and the first attempt.
	now := time.Now()
	if ds.total > 0 {
		x.totalDeadline = now.Add(ds.total)
	}
	rp := ds.pub.Retry
	hedgeable := ds.pub.Hedge != nil && Hedgeable(req)
	if err := x.rep.prepare(req, t.maxReplay, hedgeable || rp != nil && (t.anyRetryable || Idempotent(req))); err != nil {
		return nil, err
	}
	x.hedge = hedgeable && !x.rep.once
	var rs spillway.RetryState
	if rp != nil {
		rs = rp.Begin()
	}
	retry, failed := x.attempt(1, now)
	if !retry {
		return x.result(failed)
	}
	return x.retry(rs, failed)
}

// result returns what the caller gets, x.resp or x.err, once no retry
// follows; why is the failure that ended the request (nil after a
// success). A failing response goes back with why attached (see ErrorOf):
// only then does a request pay for it.
func (x *exchange) result(why error) (*http.Response, error) {
	if x.resp != nil && why != nil {
		r := x.resp.Request
		if r == nil {
			r = x.req
		}
		f := &failing{resp: x.resp, err: why}
		x.resp.Request = r.WithContext(context.WithValue(r.Context(), failingKey{}, f))
	}
	return x.resp, x.err
}

// failingKey is the context key of the failing value that ErrorOf reads on
// the Request of a failing response.
type failingKey struct{}

// failing is why the Transport returned resp, a failing response.
type failing struct {
	resp *http.Response
	err  error
}

// ErrorOf returns why a Transport returned resp although its attempt failed
// (Config.Classify said Failure, a 503 say), instead of retrying it: the
// retry policy's stop error — errors.Is(err, retry.ErrExhausted) when the
// attempts ran out, a budget_exhausted *spillway.Error when the retry budget
// refused — wrapping the *StatusError of the last attempt, or that
// *StatusError alone when the request was not to be retried (Retryable said
// no, no retry policy, a body that cannot be sent twice, no time left).
// spillway.ReasonOf reads its reason code; ReasonOf does both.
//
// It returns nil for a response that did not fail, or that did not come
// from a Transport. It reads resp.Request, which RoundTrip replaces for a
// failing response (a copy under a context that carries the error; the
// attempt's context, and so its cancellation, stay in force): a response
// whose Request the caller replaced has lost it.
func ErrorOf(resp *http.Response) error {
	if resp == nil || resp.Request == nil {
		return nil
	}
	if f, ok := resp.Request.Context().Value(failingKey{}).(*failing); ok && f.resp == resp {
		return f.err
	}
	return nil
}

// ReasonOf is spillway.ReasonOf(ErrorOf(resp)): the reason code of a
// failing response's end (upstream_error after the attempts ran out or when
// it was not to be retried, budget_exhausted when the retry budget refused),
// and "" for a response that did not fail.
func ReasonOf(resp *http.Response) spillway.Reason {
	return spillway.ReasonOf(ErrorOf(resp))
}

// exchange is one RoundTrip: the request, its downstream and the outcome of
// its latest attempt.
type exchange struct {
	t             *Transport
	req           *http.Request
	ds            *downstream
	rep           replay
	totalDeadline time.Time
	// resp and err are what the caller gets if no retry follows; last is
	// the latest attempt's failure, the cause of a total timeout found
	// before the next one starts.
	resp *http.Response
	err  error
	last error
	// hedge says each attempt is a hedged race (Downstream.Hedge, a
	// Hedgeable request whose body can be sent more than once).
	hedge bool
}

// retry goes on, in spillway.Retry's loop, after the first attempt failed
// with failed and may be retried.
func (x *exchange) retry(rs spillway.RetryState, failed error) (*http.Response, error) {
	ctx := x.req.Context()
	// rctx bounds retry decisions and backoffs by the total deadline; the
	// attempts themselves get the caller's context and a timer (see attempt).
	rctx := ctx
	if !x.totalDeadline.IsZero() {
		var cancel context.CancelFunc
		rctx, cancel = context.WithDeadlineCause(ctx, x.totalDeadline, x.ds.totalErr)
		defer cancel()
	}
	end, err := spillway.Retry(rctx, x.ds.pub.Retry, &rs, failed,
		func(n int) (bool, error) { return x.attempt(n, time.Now()) },
		func() { discard(x.resp); x.resp = nil })
	switch {
	case end == spillway.RetryDone:
		return x.result(err)
	case end == spillway.RetryStopped && x.resp != nil:
		// The last failing response goes back intact, with the retry
		// policy's error for ErrorOf.
		return x.result(err)
	case end == spillway.RetryCut && isTotal(x.ds, err):
		x.t.reportTimeout(ctx, x.ds, x.ds.total)
	}
	return nil, err
}

// attempt makes attempt n, starting at now, and leaves what the caller gets
// if no retry follows in x.resp and x.err. It returns the attempt's failure
// as the retry policy sees it (nil when the attempt did not fail by
// Classify) and whether a retry is to be considered.
func (x *exchange) attempt(n int, now time.Time) (retry bool, failed error) {
	ds, req := x.ds, x.req
	ctx := req.Context()
	lim, cause := ds.attempt, ds.attemptErr
	if !x.totalDeadline.IsZero() {
		rem := x.totalDeadline.Sub(now)
		if rem <= 0 {
			x.t.reportTimeout(ctx, ds, ds.total)
			x.resp, x.err = nil, withCause(ds.totalErr, x.last)
			return false, x.err
		}
		if lim == 0 || rem <= lim {
			lim, cause = rem, ds.totalErr
		}
	}
	budget := lim
	if dl, ok := ctx.Deadline(); ok {
		if r := dl.Sub(now); budget == 0 || r < budget {
			budget = r
		}
	}
	body, err := x.rep.body(req, n)
	if err != nil {
		// The request could not be rebuilt: no attempt, and the downstream
		// is not to blame.
		x.resp, x.err = nil, err
		return false, nil
	}
	var a *attempt
	var kept spillway.Permits
	var started bool
	if x.hedge {
		x.resp, failed, x.err = x.hedged(n, body, lim, budget, cause)
	} else {
		x.resp, started, failed, x.err = ds.eng.Attempt(ctx, ctx, n, func(ctx context.Context) (*http.Response, error) {
			a = x.t.newAttempt(ctx, ds, lim, cause)
			return x.t.send(req, a, body, n == 1, lim, budget)
		}, &kept)
		x.t.sent(ds, a, body, started, x.resp, x.err, &kept)
	}
	x.last = failed
	return failed != nil && x.t.retries(req, ds, &x.rep, x.resp, x.err), failed
}

// sent finishes an attempt made with a: a body it did not send is closed
// (a guard refused, or the context was done), a response's body becomes a,
// holding the bulkhead slot when BulkheadSpansBody.
func (t *Transport) sent(ds *downstream, a *attempt, body io.ReadCloser, started bool, resp *http.Response, err error, kept *spillway.Permits) {
	switch {
	case !started:
		if body != nil {
			body.Close()
		}
	case err == nil:
		a.wrap(resp, t, kept.Take(ds.pub.Bulkhead))
	}
}

// retries reports whether a failed attempt that returned resp or err may be
// retried: a retry policy, a replayable body, time left, and Retryable.
func (t *Transport) retries(req *http.Request, ds *downstream, rep *replay, resp *http.Response, err error) bool {
	return ds.pub.Retry != nil && !rep.once && !isTotal(ds, err) && t.retryable(req, resp, err)
}

// classifyAttempt is the engine's classifier: Classify's verdict, and for a
// failing response the *StatusError that stands for it, with its retry
// hint (Config.RetryAfter).
func (t *Transport) classifyAttempt(resp *http.Response, err error) (spillway.Outcome, error) {
	o := t.classify(resp, err)
	if o != spillway.Failure || err != nil {
		return o, err
	}
	var f error = &StatusError{StatusCode: resp.StatusCode}
	if d, ok := t.retryAfter(resp); ok {
		f = spillway.WithRetryAfter(f, d)
	}
	return o, f
}

// newAttempt starts an attempt's context under ctx, cancelled with cause
// after lim (no limit when 0).
func (t *Transport) newAttempt(ctx context.Context, ds *downstream, lim time.Duration, cause *spillway.Error) *attempt {
	a := &attempt{ds: ds, idle: ds.idle, cause: cause, lim: lim}
	a.ctx, a.cancel = context.WithCancelCause(ctx)
	if lim > 0 {
		a.armed.Store(true)
		a.timer = time.AfterFunc(lim, a.fire)
	}
	return a
}

// send sends an attempt of req with body through the base transport, under
// a's context, which a's timer ends at lim, with budget (0: none) in the
// Spillway-Timeout-Ms header and the class of req's context in
// Spillway-Priority (setPriority); first says it may reuse req's Header
// (Config.ReuseHeader: a request's first attempt, not hedged). An error ends
// a's context; a response leaves it to the body.
func (t *Transport) send(req *http.Request, a *attempt, body io.ReadCloser, first bool, lim, budget time.Duration) (*http.Response, error) {
	ds := a.ds
	out := req.WithContext(a.ctx)
	out.Body = body
	if !first || !t.reuseHeader || out.Header == nil {
		// A retry's copy: the previous attempt's request may still be read
		// by the base transport (its body being written).
		out.Header = req.Header.Clone()
		if out.Header == nil {
			out.Header = make(http.Header, 1)
		}
	}
	switch {
	case budget > 0 && budget == ds.attempt:
		out.Header[TimeoutHeader] = ds.attemptHeader
	case budget > 0:
		out.Header[TimeoutHeader] = []string{formatMillis(budget)}
	default:
		delete(out.Header, TimeoutHeader)
	}
	setPriority(req, out.Header)
	resp, err := t.roundTrip(out, a)
	ctx := req.Context()
	if a.timer != nil && !a.phase.CompareAndSwap(phaseHead, phaseBody) {
		// Our limit fired: whatever came back is cut off.
		if err == nil {
			resp.Body.Close()
			resp, err = nil, context.DeadlineExceeded
		}
		t.reportTimeout(ctx, ds, lim)
		err = withCause(a.cause, err)
	} else if err != nil && ctx.Err() == nil && isNetTimeout(err) {
		err = withCause(ds.baseTimeoutErr, err)
	}
	if err != nil {
		a.stopTimer()
		a.cancel(nil)
	}
	return resp, err
}

// errAbandoned ends the context of an attempt whose base transport
// panicked or called runtime.Goexit.
var errAbandoned = errors.New("spillwayhttp: the base transport panicked")

// roundTrip sends one attempt through the downstream's chaos injectors
// and the base transport. If the base
// panics (or calls runtime.Goexit), the attempt's timer is stopped and its
// context cancelled before the panic goes on; the engine releases the
// attempt's permits: a panicking base never leaks a bulkhead slot or a
// half-open probe.
func (t *Transport) roundTrip(out *http.Request, a *attempt) (resp *http.Response, err error) {
	done := false
	defer func() {
		if !done {
			if a.timer != nil {
				a.timer.Stop()
			}
			a.cancel(errAbandoned)
		}
	}()
	if a.ds.pub.Chaos == nil {
		resp, err = t.base.RoundTrip(out)
	} else {
		resp, err = t.chaosRoundTrip(out, a.ds)
	}
	done = true
	return resp, err
}

// chaosRoundTrip runs ds's chaos injectors under the attempt's context,
// then the base transport unless one of them replaced it.
func (t *Transport) chaosRoundTrip(out *http.Request, ds *downstream) (*http.Response, error) {
	replaced := true
	resp, err := ds.chaos.Run(out.Context(), func(context.Context) (*http.Response, error) {
		replaced = false
		return t.base.RoundTrip(out)
	})
	if replaced && out.Body != nil {
		// The base transport, which closes the body, was not called.
		out.Body.Close()
	}
	return resp, err
}

// isTotal reports whether err is the total timeout of ds, which ends the
// request at once.
func isTotal(ds *downstream, err error) bool {
	var e *spillway.Error
	return errors.As(err, &e) && e.Err == timeout.ErrTimeout && e.Name == ds.totalErr.Name
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// withCause returns a copy of the preallocated error proto with cause
// attached.
func withCause(proto *spillway.Error, cause error) error {
	c := *proto
	c.Cause = cause
	return &c
}

func (t *Transport) reportTimeout(ctx context.Context, ds *downstream, d time.Duration) {
	if t.obs != nil {
		t.obs.Observe(spillway.Event{Kind: spillway.EventTimeout, Context: ctx, Policy: "timeout", Name: ds.key, Duration: d})
	}
}

// maxDrain bounds how much of a retried response's body is read so that its
// connection can be reused; a longer body costs its connection instead.
const maxDrain = 64 << 10

// discard drains (up to maxDrain bytes) and closes the body of a response
// that is not returned.
func discard(resp *http.Response) {
	if resp == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
}

// formatMillis renders d for the Spillway-Timeout-Ms header: whole
// milliseconds, rounded down (the server never gets more time than the
// client waits), at least 1.
func formatMillis(d time.Duration) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

// replay hands each attempt its request body.
type replay struct {
	// first is the body of the first attempt: the request's own, or a reader
	// of the buffer.
	first io.ReadCloser
	// buf is the buffered body (bufOK), replayed by every later attempt.
	buf   []byte
	bufOK bool
	// once is set when the body cannot be sent twice: no retry.
	once bool
	// used is set once first went to the base transport, which closes it.
	used bool
}

// prepare decides how req's body is replayed; buffer says whether a body
// without GetBody should be buffered (up to max bytes).
func (r *replay) prepare(req *http.Request, maxBytes int64, buffer bool) error {
	switch {
	case req.Body == nil || req.Body == http.NoBody || req.GetBody != nil:
		return nil
	case !buffer || maxBytes < 0:
		r.once = true
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, maxBytes+1))
	if err != nil {
		return err
	}
	if int64(len(buf)) > maxBytes {
		// Too long to keep: stream it once, what was read first.
		r.once = true
		r.first = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
		return nil
	}
	req.Body.Close()
	r.buf, r.bufOK = buf, true
	r.first = io.NopCloser(bytes.NewReader(buf))
	return nil
}

// body returns the body of attempt n.
func (r *replay) body(req *http.Request, n int) (io.ReadCloser, error) {
	switch {
	case n == 1:
		r.used = true
		return r.first, nil
	case r.bufOK:
		return io.NopCloser(bytes.NewReader(r.buf)), nil
	case req.GetBody != nil:
		return req.GetBody()
	}
	return req.Body, nil
}

// closeUnused closes the request's body when no attempt took it: the
// RoundTripper contract has RoundTrip close it in every case.
func (r *replay) closeUnused() {
	if !r.used && r.first != nil {
		r.first.Close()
	}
}

// attempt is the state of one attempt: the context it runs under and the
// timer of its limits. It becomes the body of the response returned, so the
// context lives until the caller closes the body or reads it to the end.
//
// One timer serves both limits, set once per attempt in the common case:
// in phaseHead it fires at the attempt (or total) limit and cancels the
// context with cause; once the head came back (phaseBody) it is left
// running, and when it fires it checks the Read in progress: one that began
// idle or longer ago is cut with the body idle error, an earlier one sets
// it again for the rest, and none lets it lapse until the next Read sets
// it. It never fires later than idle after the start of the Read in
// progress. A body read to its end or closed stops it. So a response costs
// a timer set and stopped once, not once per Read and once for its head.
type attempt struct {
	ds     *downstream
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	// phase is phaseHead until send takes the response head (phaseBody),
	// or until the timer fires first (phaseFired).
	phase atomic.Int32
	// cause is the error of the head's limit (attempt or total).
	cause *spillway.Error
	// armed says the timer is set (a function call to come); reading is
	// when the Read in progress began (monotonic nanoseconds), 0 between
	// reads. idle is the body idle limit, 0 for none.
	armed   atomic.Bool
	reading atomic.Int64
	idle    time.Duration
	// lim is the head's limit, when the timer was first set to fire.
	lim  time.Duration
	body io.ReadCloser
	obs  spillway.Observer
	// slot is the bulkhead slot the body holds (Config.BulkheadSpansBody),
	// released once, at the body's end or close; released says it was.
	slot     spillway.Permit
	released atomic.Bool
}

// The phases of an attempt's timer.
const (
	phaseHead int32 = iota
	phaseBody
	phaseFired
)

// epoch is the origin of an attempt's read times.
var epoch = time.Now()

func monoNow() int64 { return int64(time.Since(epoch)) }

func (a *attempt) fire() {
	if a.phase.CompareAndSwap(phaseHead, phaseFired) {
		a.cancel(a.cause)
		return
	}
	if a.idle <= 0 {
		return
	}
	began := a.reading.Load()
	if began == 0 {
		// No Read waits: let the timer lapse; the next Read sets it.
		// Read stores reading before it looks at armed, and this looks at
		// reading after it cleared armed: one of the two sets it again.
		a.armed.Store(false)
		if a.reading.Load() != 0 && a.armed.CompareAndSwap(false, true) {
			a.timer.Reset(a.idle)
		}
		return
	}
	if waited := time.Duration(monoNow() - began); waited < a.idle {
		a.timer.Reset(a.idle - waited)
		return
	}
	a.cancel(a.ds.idleErr)
}

// stopTimer stops the timer for good: the attempt ended.
func (a *attempt) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
	}
}

// wrap makes a the body of resp, holding slot (a zero Permit when the
// body holds none). The timer, if set, goes on as the body's (phaseBody).
func (a *attempt) wrap(resp *http.Response, t *Transport, slot spillway.Permit) {
	a.body, a.obs, a.slot = resp.Body, t.obs, slot
	switch {
	case a.idle <= 0:
		a.stopTimer()
	case a.timer != nil && a.lim > a.idle:
		// Set for later than a Read that begins now may wait.
		a.timer.Reset(a.idle)
	case a.timer == nil:
		// No head limit: the body's timer, set by the first Read.
		a.phase.Store(phaseBody)
		a.timer = time.AfterFunc(a.idle, a.fire)
		a.timer.Stop()
	}
	resp.Body = a
}

// Read reads the response body, failing with a deadline_exceeded error when
// no byte arrives for the idle limit.
func (a *attempt) Read(p []byte) (int, error) {
	if a.idle > 0 {
		a.reading.Store(monoNow())
		if a.armed.CompareAndSwap(false, true) {
			a.timer.Reset(a.idle)
		}
	}
	n, err := a.body.Read(p)
	if a.idle > 0 {
		a.reading.Store(0)
	}
	if err != nil {
		if err == io.EOF {
			// The connection is back in the pool by now; free the timer,
			// the context and the slot.
			a.stopTimer()
			a.cancel(nil)
			a.releaseSlot()
		} else if context.Cause(a.ctx) == error(a.ds.idleErr) {
			if a.obs != nil {
				a.obs.Observe(spillway.Event{Kind: spillway.EventTimeout, Context: a.ctx, Policy: "timeout",
					Name: a.ds.key, Duration: a.ds.idle})
			}
			err = withCause(a.ds.idleErr, err)
		}
	}
	return n, err
}

// Close closes the response body and ends the attempt's context.
func (a *attempt) Close() error {
	a.stopTimer()
	err := a.body.Close()
	a.cancel(nil)
	a.releaseSlot()
	return err
}

// releaseSlot gives the body's bulkhead slot back, once: a body may be
// read to its end and then closed, or closed by another goroutine.
func (a *attempt) releaseSlot() {
	if a.slot.Releaser() != nil && a.released.CompareAndSwap(false, true) {
		a.slot.Release(nil)
	}
}
