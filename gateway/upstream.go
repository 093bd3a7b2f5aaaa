package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/pool"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
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

func newBulkhead(u *config.Upstream, obs *upstreamMetrics) (*bulkhead.Bulkhead, error) {
	bc := u.BulkheadConfig()
	bc.Observer = obs
	return bulkhead.New(bc)
}

// newPool returns u's pool, not started.
func newPool(u *config.Upstream, o *Options, m *upstreamMetrics) (*pool.Pool, error) {
	return pool.New(u.Instances, pool.Options{
		Name: u.Name, Balance: u.Balance, Health: u.Health, Outlier: u.Outlier, Logger: o.Logger, OnTransition: m.instance,
	})
}

// setBase sets the transport that sends up's attempts: Options.Base, or
// one of its own with u's connect and attempt limits.
func (up *upstream) setBase(u *config.Upstream, o *Options) {
	up.base, up.ownBase = o.Base, false
	if up.base == nil {
		base := spillwayhttp.NewBaseTransport(spillwayhttp.Timeouts{Connect: u.Timeouts.Connect, Attempt: u.Timeouts.Attempt})
		// Its wait for the response headers is bounded by the attempt limit,
		// whose timer starts earlier (before the dial) and fires first: a
		// second timer per request would never fire.
		base.ResponseHeaderTimeout = 0
		if u.HTTP2 {
			useHTTP2(base)
		}
		up.base, up.ownBase = base, true
	}
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
	if up.pool, err = newPool(u, o, up.metrics); err != nil {
		return nil, err
	}
	up.setBase(u, o)
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
	to := spillwayhttp.Timeouts{Connect: u.Timeouts.Connect, Attempt: u.Timeouts.Attempt, Total: total}
	up.limits.LoadOrStore(key, &totalLimit{
		proxy:    spillwayhttp.Downstream{Breaker: up.breaker, Retry: up.retry, Bulkhead: up.bulkhead, Timeouts: to},
		delivery: spillwayhttp.Downstream{Breaker: up.breaker, Bulkhead: up.bulkhead, Timeouts: to},
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
