package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/pool"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/shed"
	"github.com/spillway-dev/spillway/spillwayhttp"
	"github.com/spillway-dev/spillway/throttle"
)

// upstream is the runtime state of one configured upstream: everything a
// reload keeps when the upstream's configuration did not change.
type upstream struct {
	name     string
	cfg      config.Upstream
	pool     *pool.Pool
	breaker  *breaker.Breaker
	budget   *retry.Budget
	bulkhead *bulkhead.Bulkhead
	// throttle is the client-side throttle (throttle:), nil when none. It
	// is acquired before the breaker by both transports: an async route's
	// deliveries and upgrades feed it and are held back by it too (a
	// throttled delivery pauses its job for a second, no attempt spent).
	throttle *throttle.Throttler
	// hedge hedges the proxy's GET, HEAD and OPTIONS attempts, drawing
	// from budget; nil without hedge:.
	hedge *hedge.Policy
	// shed sheds requests by their priority under the bulkhead's
	// pressure; nil when the upstream has no shed:.
	shed *shed.Shedder
	// retry is the proxy's retry policy, spending from budget; wire makes
	// it (it holds no state of its own).
	retry     *retry.Policy
	transport *spillwayhttp.Transport
	// delivery sends an async route's jobs: the same breaker, bulkhead,
	// time limits and instances, no retry policy (the queue retries).
	delivery *spillwayhttp.Transport
	// limits are up's policies under each total time limit its requests
	// run under, by the key its transports know them by: a string, as
	// spillwayhttp.Config.Key asks, made once per limit (Duration.String)
	// and never parsed back. limit adds one at table build time, before
	// any request runs under it; entries stay, since an upstream a reload
	// keeps unchanged serves the old table's requests and the new one's.
	limits sync.Map // string → *totalLimit
	// totalKey is the key of the upstream's own timeouts.total: a replica
	// phase's.
	totalKey string
	// base is closed with the upstream when the gateway made it.
	base    http.RoundTripper
	ownBase bool
	on      retryOn
	metrics *upstreamMetrics
}

// retryOn is config.Retry.On resolved: what a failed attempt must have been
// for a retry.
type retryOn struct {
	connect, timeout, reset bool
	status                  map[int]bool
}

func parseRetryOn(on []string) retryOn {
	r := retryOn{status: map[int]bool{}}
	for _, s := range on {
		switch s {
		case "connect_failure":
			r.connect = true
		case "timeout":
			r.timeout = true
		case "reset":
			r.reset = true
		default:
			if code, err := strconv.Atoi(s); err == nil {
				r.status[code] = true
			}
		}
	}
	return r
}

// setBreakerMode moves br to the configured mode; "closed" (or "") moves a
// breaker in a manual mode back to normal operation and leaves one in
// normal operation (closed, open or half-open) as it is.
func setBreakerMode(br *breaker.Breaker, mode string) {
	switch mode {
	case "disabled":
		br.Disable()
	case "forced_open":
		br.ForceOpen()
	case "metrics_only":
		br.MetricsOnly()
	default:
		switch br.State() {
		case breaker.Disabled, breaker.ForcedOpen, breaker.MetricsOnly:
			_ = br.TransitionTo(breaker.Closed)
		}
	}
}

// newBudget returns u's retry budget; nil when u allows no retry.
func newBudget(u *config.Upstream) (*retry.Budget, error) {
	bc, ok := u.BudgetConfig()
	if !ok {
		return nil, nil
	}
	return retry.NewBudget(bc)
}

// newHedge returns u's hedging policy, drawing from budget; nil without
// hedge:.
func newHedge(u *config.Upstream, budget *retry.Budget, obs *upstreamMetrics) (*hedge.Policy, error) {
	hc, ok := u.HedgeConfig(budget)
	if !ok {
		return nil, nil
	}
	hc.Observer = obs
	return hedge.New(hc)
}

// newRetry returns u's retry policy, spending from budget. A policy holds
// no state of its own: a reload replaces it.
func newRetry(u *config.Upstream, budget *retry.Budget, obs *upstreamMetrics) (*retry.Policy, error) {
	rc, err := u.RetryConfig(budget)
	if err != nil {
		return nil, err
	}
	rc.Observer = obs
	return retry.New(rc)
}

// newThrottle returns u's throttle; nil when u has none.
func newThrottle(u *config.Upstream, obs *upstreamMetrics) (*throttle.Throttler, error) {
	tc, ok := u.ThrottleConfig()
	if !ok {
		return nil, nil
	}
	tc.Observer = obs
	return throttle.New(tc)
}

func newBulkhead(u *config.Upstream, obs *upstreamMetrics) (*bulkhead.Bulkhead, error) {
	return bulkhead.New(bulkheadConfig(u, obs))
}

// bulkheadConfig is u's bulkhead as the gateway runs it: an adaptive limit
// also counts the upstream's 503 and 429 answers as drops (it is shedding
// load), beside the attempts that timed out.
func bulkheadConfig(u *config.Upstream, obs *upstreamMetrics) bulkhead.Config {
	bc := u.BulkheadConfig()
	bc.Observer = obs
	if bc.Adaptive.Algorithm != bulkhead.Static {
		bc.Adaptive.Drop = upstreamDropped
	}
	return bc
}

// upstreamDropped is the gateway's Adaptive.Drop.
func upstreamDropped(err error) bool {
	if se, ok := errors.AsType[*spillwayhttp.StatusError](err); ok {
		return se.StatusCode == http.StatusServiceUnavailable || se.StatusCode == http.StatusTooManyRequests
	}
	switch spillway.ReasonOf(err) {
	case spillway.ReasonDeadlineExceeded, spillway.ReasonThrottled:
		return true
	}
	return false
}

// newPool returns u's pool, not started: its health checks connect to
// the https:// instances as the attempts do (u's tls:).
func newPool(u *config.Upstream, o *Options, m *upstreamMetrics) (*pool.Pool, error) {
	tc, err := clientTLS(u)
	if err != nil {
		return nil, err
	}
	return pool.New(u.Instances, pool.Options{
		Name: u.Name, Balance: u.Balance, Health: u.Health, Outlier: u.Outlier, Logger: o.Logger, OnTransition: m.instance,
		TLS: tc, SlowStart: u.SlowStart.Window,
	})
}

// clientTLS returns the TLS configuration of u's connections, read from
// its files again: a reload picks up renewed certificates.
func clientTLS(u *config.Upstream) (*tls.Config, error) {
	tc, err := u.TLS.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("tls.%w", err)
	}
	return tc, nil
}

// logTLSFailure logs the detail of an upstream_error that was the TLS
// handshake with an instance (an unknown CA, a name the certificate does
// not hold, a client certificate refused, no common version): the
// client's answer says only that the upstream failed, the operator needs
// to know why. (Its checks allocate: the caller spares them the other
// failures, a breaker's fast refusals first.)
func (g *Gateway) logTLSFailure(x *exchange, err error) {
	if isType[*tls.CertificateVerificationError](err) || isType[tls.AlertError](err) || isType[tls.RecordHeaderError](err) || isTLSAlert(err) {
		g.opts.Logger.Warn("gateway: the TLS handshake with an upstream instance failed (see its tls: settings)",
			"upstream", x.up.name, "route", x.route.cfg.Name, "error", err)
	}
}

// isTLSAlert reports whether err is an alert the instance sent (crypto/tls
// wraps it as a *net.OpError "remote error"): it refused the client
// certificate or the versions offered.
func isTLSAlert(err error) bool {
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "remote error"
}

// setBase sets the transport that sends up's attempts: Options.Base, or
// one of its own with u's connect and attempt limits and its tls:.
func (up *upstream) setBase(u *config.Upstream, o *Options) error {
	up.base, up.ownBase = o.Base, false
	if up.base != nil {
		return nil
	}
	tc, err := clientTLS(u)
	if err != nil {
		return err
	}
	base := spillwayhttp.NewBaseTransport(spillwayhttp.Timeouts{Connect: u.Timeouts.Connect, Attempt: u.Timeouts.Attempt})
	// Its wait for the response headers is bounded by the attempt limit,
	// whose timer starts earlier (before the dial) and fires first: a
	// second timer per request would never fire.
	base.ResponseHeaderTimeout = 0
	if tc != nil {
		base.TLSClientConfig = tc
	}
	if u.HTTP2 {
		useHTTP2(base)
	}
	if tc != nil && tc.InsecureSkipVerify && !o.check {
		o.Logger.Warn("gateway: upstream TLS certificates are not checked (tls.insecure_skip_verify): anyone on the network path can read and change the traffic",
			"upstream", u.Name)
	}
	up.base, up.ownBase = base, true
	return nil
}

func newUpstream(u *config.Upstream, o *Options, m *metrics) (*upstream, error) {
	up := &upstream{name: u.Name, cfg: *u, on: parseRetryOn(u.Retry.On), metrics: m.upstream(u.Name)}
	var err error
	bc := u.BreakerConfig()
	bc.Observer = up.metrics
	if up.breaker, err = breaker.New(bc); err != nil {
		return nil, err
	}
	setBreakerMode(up.breaker, u.Breaker.Mode)
	if up.budget, err = newBudget(u); err != nil {
		return nil, err
	}
	if up.bulkhead, err = newBulkhead(u, up.metrics); err != nil {
		return nil, err
	}
	if up.throttle, err = newThrottle(u, up.metrics); err != nil {
		return nil, err
	}
	if up.hedge, err = newHedge(u, up.budget, up.metrics); err != nil {
		return nil, err
	}
	if up.shed, err = newShedder(u, up); err != nil {
		return nil, err
	}
	if up.pool, err = newPool(u, o, up.metrics); err != nil {
		return nil, err
	}
	if err := up.setBase(u, o); err != nil {
		up.pool.Close() // not started
		return nil, err
	}
	if err := up.wire(); err != nil {
		return nil, err
	}
	if !o.check {
		up.pool.Start()
	}
	return up, nil
}

// totalLimit is an upstream's policies under one total time limit: those
// of the proxy's transport and those of the delivery transport.
type totalLimit struct {
	proxy, delivery spillwayhttp.Downstream
}

// limit returns the key of up's downstreams under the total time limit
// total, making them on first use (see upstream.limits).
func (up *upstream) limit(total time.Duration) string {
	key := total.String()
	if _, ok := up.limits.Load(key); ok {
		return key
	}
	u := &up.cfg
	to := spillwayhttp.Timeouts{Connect: u.Timeouts.Connect, Attempt: u.Timeouts.Attempt, Total: total, BodyIdle: u.Timeouts.BodyIdle}
	var guards []spillway.Guard
	if up.throttle != nil {
		guards = []spillway.Guard{up.throttle}
	}
	up.limits.LoadOrStore(key, &totalLimit{
		proxy:    spillwayhttp.Downstream{Guards: guards, Breaker: up.breaker, Retry: up.retry, Bulkhead: up.bulkhead, Hedge: up.hedge, Timeouts: to},
		delivery: spillwayhttp.Downstream{Guards: guards, Breaker: up.breaker, Bulkhead: up.bulkhead, Timeouts: to},
	})
	return key
}

// downstream is a NewDownstream of up's transports: the policies limit
// made for key.
func (up *upstream) downstream(key string, delivery bool) (*spillwayhttp.Downstream, error) {
	v, ok := up.limits.Load(key)
	if !ok {
		return nil, fmt.Errorf("gateway: upstream %q: no policies for the total limit %s", up.name, key)
	}
	l := v.(*totalLimit)
	if delivery {
		return &l.delivery, nil
	}
	return &l.proxy, nil
}

// downstreamKey is the Key of up's transports: the total limit of the
// request's route (or replica phase), set on its exchange.
func downstreamKey(r *http.Request) string { return exchangeOf(r.Context()).totalKey }

// wire builds up's transports over its policies, pool and base. They hold
// no state of their own beyond a cache of policy sets: a reload builds new
// ones around the policies it keeps. A downstream per total limit: the
// routes that override the upstream's total share its policies under
// another key.
func (up *upstream) wire() error {
	u := &up.cfg
	var err error
	if up.retry, err = newRetry(u, up.budget, up.metrics); err != nil {
		return err
	}
	up.totalKey = up.limit(u.Timeouts.Total)
	up.transport, err = spillwayhttp.New(spillwayhttp.Config{
		Base: &picker{up: up},
		Key:  downstreamKey,
		NewDownstream: func(key string, _ spillway.Observer) (*spillwayhttp.Downstream, error) {
			return up.downstream(key, false)
		},
		Retryable:     up.retryable,
		Classify:      up.classify,
		RetryAfter:    up.retryAfter,
		MaxReplayBody: replayBody(u),
		Observer:      up.metrics,
		// The proxy's outgoing request, whose header it copied: the
		// deadline header goes into it.
		ReuseHeader: true,
		// A response streams at the client's pace: it is in flight at the
		// upstream until its body is done.
		BulkheadSpansBody: true,
	})
	if err != nil {
		return err
	}
	up.delivery, err = spillwayhttp.New(spillwayhttp.Config{
		Base: &picker{up: up},
		Key:  downstreamKey,
		NewDownstream: func(key string, _ spillway.Observer) (*spillwayhttp.Downstream, error) {
			return up.downstream(key, true)
		},
		Retryable:         func(*http.Request, *http.Response, error) bool { return false },
		MaxReplayBody:     -1,
		Observer:          up.metrics,
		BulkheadSpansBody: true,
	})
	return err
}

// replayBody is spillwayhttp's MaxReplayBody for u: max_replay_body 0
// buffers nothing (a body is sent once, never retried), which spillwayhttp
// writes as a negative value (its 0 means its default, 1 MiB).
func replayBody(u *config.Upstream) int64 {
	if u.MaxReplayBody == 0 {
		return -1
	}
	return u.MaxReplayBody
}
