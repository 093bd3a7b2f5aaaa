package gateway

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/gateway/async"
	"github.com/spillway-dev/spillway/gateway/sharedlimit"
)

// metrics are the gateway's collectors, under the brief's names. Counters and
// histograms are fed as requests go; the gauges are read from the live state
// at scrape time by stateCollector.
type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	attempts    *prometheus.CounterVec
	attemptDur  *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	transitions *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	deliveries  *prometheus.CounterVec
	deadDropped *prometheus.CounterVec
	faults      *prometheus.CounterVec
	hedges      *prometheus.CounterVec
	// log receives the breakers' transitions (Options.Logger).
	log *slog.Logger
	// tracing: the gateway has a Tracer, whose spans record the policies'
	// decisions (trace).
	tracing bool
	// events receives the transitions and sampled rejections (Gateway.Events).
	events *EventBus
	// rates turns the counters into the runtime API's rates (live.go).
	rates *rates
}

// The outcomes of a request, the values of the label outcome of
// spillway_requests_total: a fixed set.
const (
	outcomeSuccess     = "success"      // the upstream's answer, below 500
	outcomeUpstream5xx = "upstream_5xx" // the upstream's 5xx or failing gRPC status (grpcFailed), passed through
	outcomeFallback    = "fallback"     // a degraded answer: replica, stale cache, static, default
	outcomeError       = "error"        // an error answer made by the gateway
	outcomeNoRoute     = "no_route"     // no route matched (route label "")
	outcomeCanceled    = "canceled"     // the client went away first
	outcomeAccepted    = "accepted"     // an async route stored the request and answered 202
)

func newMetrics(reg *prometheus.Registry, g *Gateway) (*metrics, error) {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &metrics{
		log: g.opts.Logger, events: g.events, rates: newRates(), tracing: g.opts.Tracer != nil,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spillway_requests_total",
			Help: "Requests the gateway answered, by route and outcome."}, []string{"route", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spillway_request_duration_seconds",
			Help: "Time from a request's arrival to the end of its answer.", Buckets: buckets}, []string{"route"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spillway_upstream_attempts_total",
			Help: "Attempts sent to an upstream's instances, by result."}, []string{"upstream", "result"}),
		attemptDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spillway_upstream_attempt_duration_seconds",
			Help: "Time of one attempt up to its response headers.", Buckets: buckets}, []string{"upstream"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spillway_retries_total",
			Help: "Retries scheduled to an upstream."}, []string{"upstream"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spillway_rejected_total",
			Help: "Calls refused locally, by reason."}, []string{"upstream", "reason"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spillway_circuit_transitions_total",
			Help: "Circuit breaker state changes."}, []string{"upstream", "from", "to"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spillway_fallback_total",
			Help: "Degraded answers served, by kind."}, []string{"route", "kind"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spillway_queue_deliveries_total",
			Help: "Delivery attempts of an async route's jobs, by result: delivered, failed, rejected, dead (a failed attempt that exhausted max_attempts), paused."},
			[]string{"route", "result"}),
		deadDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spillway_queue_dead_letters_dropped_total",
			Help: "Dead letters of an async route dropped by this process to keep the dead-letter stream within queue.dead_letters (the oldest first), or not kept because one alone exceeds it."},
			[]string{"route"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spillway_faults_injected_total",
			Help: "Faults injected into a route's attempts, by kind: delay, abort."}, []string{"route", "kind"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spillway_hedges_total",
			Help: "Hedges of an upstream's slow attempts, by outcome: sent, won (answered first)."}, []string{"upstream", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.attempts, m.attemptDur, m.retries,
		m.rejected, m.transitions, m.fallbacks, m.deliveries, m.deadDropped, m.faults, m.hedges, &stateCollector{g: g}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// forget deletes the series of the upstreams and routes a reload removed,
// so that /metrics stops reporting what is no longer configured. (An
// answer still in flight on the previous configuration may feed a deleted
// series: that last count is not exported.)
func (m *metrics) forget(upstreams, routes []string) {
	type vec interface {
		DeletePartialMatch(prometheus.Labels) int
	}
	for _, u := range upstreams {
		l := prometheus.Labels{"upstream": u}
		for _, v := range []vec{m.attempts, m.attemptDur, m.retries, m.rejected, m.transitions, m.hedges} {
			v.DeletePartialMatch(l)
		}
	}
	for _, r := range routes {
		l := prometheus.Labels{"route": r}
		for _, v := range []vec{m.requests, m.duration, m.fallbacks, m.deliveries, m.deadDropped, m.faults} {
			v.DeletePartialMatch(l)
		}
	}
}

// child is a metric child (a counter or an observer of fixed label values)
// resolved by its first use and read without a lookup after:
// WithLabelValues hashes the label values and takes the vector's lock on
// every call, and the gateway feeds several series per request. A series
// appears on /metrics when first fed, as with WithLabelValues.
type child[M any] struct{ p atomic.Pointer[M] }

// get returns the child, resolving it on first use (concurrent first uses
// resolve the same child).
func (c *child[M]) get(resolve func() M) M {
	if m := c.p.Load(); m != nil {
		return *m
	}
	m := resolve()
	c.p.Store(&m)
	return m
}

// outcomes are the values of the label outcome of spillway_requests_total.
var outcomes = [...]string{outcomeSuccess, outcomeUpstream5xx, outcomeFallback, outcomeError, outcomeNoRoute,
	outcomeCanceled, outcomeAccepted}

// fallbackKinds are the values of the label kind of spillway_fallback_total.
var fallbackKinds = [...]string{FallbackReplica, FallbackStaleCache, FallbackStatic, FallbackDefault}

// attemptResults are the values of the label result of
// spillway_upstream_attempts_total.
var attemptResults = [...]string{resultSuccess, resultStatus, resultConnect, resultTimeout, resultReset,
	resultCanceled, resultError}

// rejections are the reasons of the local refusals, the values of the label
// reason of spillway_rejected_total.
var rejections = [...]spillway.Reason{spillway.ReasonBreakerOpen, spillway.ReasonBulkheadFull,
	spillway.ReasonBudgetExhausted, spillway.ReasonNoHealthyInstance, spillway.ReasonThrottled}

// routeMetrics are the metric children of one route.
type routeMetrics struct {
	requests  [len(outcomes)]child[prometheus.Counter]
	duration  child[prometheus.Observer]
	fallbacks [len(fallbackKinds)]child[prometheus.Counter]
	faults    [len(faultKinds)]child[prometheus.Counter]
}

// fault counts a fault of kind k injected on route rt.
func (m *metrics) fault(rt *route, k faultKind) {
	rt.metrics.faults[k-1].get(func() prometheus.Counter { return m.faults.WithLabelValues(rt.cfg.Name, k.String()) }).Inc()
}

// request counts a request of route rt (nil: none matched) that ended with
// outcome, and observes its duration d (in seconds) when a route matched.
func (m *metrics) request(rt *route, outcome string, d float64) {
	i := slices.Index(outcomes[:], outcome)
	if rt == nil || i < 0 {
		name := ""
		if rt != nil {
			name = rt.cfg.Name
			m.duration.WithLabelValues(name).Observe(d)
		}
		m.requests.WithLabelValues(name, outcome).Inc()
		return
	}
	rt.metrics.requests[i].get(func() prometheus.Counter { return m.requests.WithLabelValues(rt.cfg.Name, outcome) }).Inc()
	rt.metrics.duration.get(func() prometheus.Observer { return m.duration.WithLabelValues(rt.cfg.Name) }).Observe(d)
}

// fallback counts a degraded answer of kind on route rt.
func (m *metrics) fallback(rt *route, kind string) {
	i := slices.Index(fallbackKinds[:], kind)
	if i < 0 {
		m.fallbacks.WithLabelValues(rt.cfg.Name, kind).Inc()
		return
	}
	rt.metrics.fallbacks[i].get(func() prometheus.Counter { return m.fallbacks.WithLabelValues(rt.cfg.Name, kind) }).Inc()
}

// upstreamMetrics turns the policies' events of one upstream into metrics:
// it is the Observer of the upstream's policies.
type upstreamMetrics struct {
	m          *metrics
	name       string
	attempts   [len(attemptResults)]child[prometheus.Counter]
	attemptDur child[prometheus.Observer]
	retries    child[prometheus.Counter]
	rejected   [len(rejections)]child[prometheus.Counter]
	samples    [len(rejections)]rejectionSample
	// trailers: the upstream has answered a gRPC call with its status in
	// its trailers (grpcHead). Until then a successful attempt is counted
	// without looking for its exchange: an upstream that never speaks gRPC
	// pays one load per attempt for the rule below.
	trailers atomic.Bool
}

func (m *metrics) upstream(name string) *upstreamMetrics { return &upstreamMetrics{m: m, name: name} }

func (u *upstreamMetrics) Observe(e spillway.Event) {
	switch e.Kind {
	case spillway.EventAttempt:
		if e.Err != nil && spillway.ReasonOf(e.Err) == spillway.ReasonNoHealthyInstance {
			return // no attempt was sent; counted as a rejection
		}
		if e.Err != nil || !u.trailers.Load() || !trailersPending(e.Context) {
			u.attempt(attemptResult(e.Err))
		}
		u.attemptDur.get(func() prometheus.Observer { return u.m.attemptDur.WithLabelValues(u.name) }).Observe(e.Duration.Seconds())
	case spillway.EventRetry:
		u.retries.get(func() prometheus.Counter { return u.m.retries.WithLabelValues(u.name) }).Inc()
		u.m.trace(e)
	case spillway.EventRejection:
		u.reject(e.Reason)
		u.m.trace(e)
	case spillway.EventHedge:
		u.m.hedges.WithLabelValues(u.name, "sent").Inc()
	case spillway.EventHedgeWon:
		u.m.hedges.WithLabelValues(u.name, "won").Inc()
	case spillway.EventTransition:
		u.m.transitions.WithLabelValues(u.name, e.From, e.To).Inc()
		u.m.logTransition(u.name, e)
		u.transition(e)
	}
}

// attempt counts an attempt that ended with result.
func (u *upstreamMetrics) attempt(result string) {
	if i := slices.Index(attemptResults[:], result); i >= 0 {
		u.attempts[i].get(func() prometheus.Counter { return u.m.attempts.WithLabelValues(u.name, result) }).Inc()
	} else {
		u.m.attempts.WithLabelValues(u.name, result).Inc()
	}
}

// trailersPending reports whether the attempt of ctx, whose head counted
// as a success, is a gRPC answer whose status comes in its trailers: its
// body counts it when it ends (trailerBody.Close), as that status says.
// Its duration, to its head as any attempt's, is observed at the head.
func trailersPending(ctx context.Context) bool {
	x := exchangeOf(ctx)
	return x != nil && x.trailers
}

// trace records a policy's decision on the span of the request it was
// made for, when the gateway traces requests.
func (m *metrics) trace(e spillway.Event) {
	if !m.tracing || e.Context == nil {
		return
	}
	if x := exchangeOf(e.Context); x != nil && x.span != nil {
		x.span.Event(e)
	}
}

// logTransition logs a breaker's change of state: at Warn when it starts
// refusing calls (open, forced_open), at Info otherwise (half_open, closed:
// the upstream is being tried again, or is back). Transitions are rare, so
// this costs a request nothing.
func (m *metrics) logTransition(upstream string, e spillway.Event) {
	level := slog.LevelInfo
	if e.To == breaker.Open.String() || e.To == breaker.ForcedOpen.String() {
		level = slog.LevelWarn
	}
	m.log.Log(context.Background(), level, "gateway: breaker "+e.To, "upstream", upstream, "from", e.From, "to", e.To)
}

// reject counts a call refused locally for reason.
func (u *upstreamMetrics) reject(reason spillway.Reason) {
	i := slices.Index(rejections[:], reason)
	if i < 0 {
		u.m.rejected.WithLabelValues(u.name, string(reason)).Inc()
		return
	}
	u.rejected[i].get(func() prometheus.Counter { return u.m.rejected.WithLabelValues(u.name, string(reason)) }).Inc()
	u.sampleRejection(i, reason)
}

var (
	descState = prometheus.NewDesc("spillway_circuit_state",
		"1 for the breaker's current state, 0 for the others.", []string{"upstream", "state"}, nil)
	descFailureRate = prometheus.NewDesc("spillway_circuit_failure_rate",
		"Failure rate of the calls in the breaker's window.", []string{"upstream"}, nil)
	descInFlight = prometheus.NewDesc("spillway_bulkhead_in_flight",
		"Attempts holding a bulkhead slot.", []string{"upstream"}, nil)
	descLimit = prometheus.NewDesc("spillway_bulkhead_limit",
		"The bulkhead's concurrency limit.", []string{"upstream"}, nil)
	descBudget = prometheus.NewDesc("spillway_retry_budget_remaining",
		"Retries the budget would allow now.", []string{"upstream"}, nil)
	descThrottle = prometheus.NewDesc("spillway_throttle_rejection_probability",
		"The probability with which the upstream's client-side throttle refuses a request now (only for an upstream with throttle:).", []string{"upstream"}, nil)
	descHealthy = prometheus.NewDesc("spillway_instance_healthy",
		"1 when the instance passes its health checks and is not ejected.", []string{"upstream", "instance"}, nil)
	descEjected = prometheus.NewDesc("spillway_outlier_ejections_active",
		"Instances ejected by outlier detection now.", []string{"upstream"}, nil)
	descCacheEntries = prometheus.NewDesc("spillway_cache_entries",
		"Entries in a route's stale cache (a response with Vary is two: its Vary names and the answer).", []string{"route"}, nil)
	descCacheBytes = prometheus.NewDesc("spillway_cache_bytes",
		"Bytes held by a route's stale cache: keys, header names and values, bodies.", []string{"route"}, nil)
	descRateLimitKeys = prometheus.NewDesc("spillway_rate_limit_keys",
		"Client keys whose rate-limit bucket a route holds in this process (at most its rate_limit.max_keys).", []string{"route"}, nil)
	descShed = prometheus.NewDesc("spillway_shed_total",
		"Requests shed by the upstream's priority load shedder, by class: sheddable, default (only for an upstream with shed:; since the shedder was made; each also counts in spillway_rejected_total{reason=\"bulkhead_full\"}).",
		[]string{"upstream", "priority"}, nil)
	descSlowStartShare = prometheus.NewDesc("spillway_circuit_slow_start_share",
		"The share of calls a breaker that has just closed admits while it ramps up (slow_start:); 1 when it is not ramping.", []string{"upstream"}, nil)
	descWeight = prometheus.NewDesc("spillway_instance_weight",
		"The instance's share of the picks relative to a fully ramped one while it ramps up after coming back (slow_start:); 1 when it is not ramping.",
		[]string{"upstream", "instance"}, nil)
)

// shedClasses are the classes a shedder refuses, the values of the label
// priority of spillway_shed_total (critical requests are never shed).
var shedClasses = [...]spillway.Priority{spillway.PrioritySheddable, spillway.PriorityDefault}

var breakerStates = []breaker.State{breaker.Closed, breaker.Open, breaker.HalfOpen, breaker.ForcedOpen, breaker.Disabled, breaker.MetricsOnly}

// stateCollector reads the gauges from the current routing table.
type stateCollector struct{ g *Gateway }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descFailureRate, descInFlight, descLimit, descBudget, descThrottle, descHealthy, descEjected,
		descCacheEntries, descCacheBytes, descRateLimitKeys, descShed, descSlowStartShare, descWeight} {
		ch <- d
	}
	async.Describe(ch)
	sharedlimit.Describe(ch)
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.g.table.Load()
	if t == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for name, u := range t.upstreams {
		snap := u.breaker.Snapshot()
		for _, s := range breakerStates {
			v := 0.0
			if s == snap.State {
				v = 1
			}
			gauge(descState, v, name, s.String())
		}
		gauge(descFailureRate, snap.FailureRate, name)
		// A slow start's share and weight are 0 when it is not ramping: it
		// then limits nothing, which the gauges write as 1.
		gauge(descSlowStartShare, cmp.Or(snap.SlowStartShare, 1), name)
		gauge(descInFlight, float64(u.bulkhead.InFlight()), name)
		gauge(descLimit, float64(u.bulkhead.Limit()), name)
		budget := 0.0 // an upstream that allows no retry has no budget
		if u.budget != nil {
			budget = u.budget.Remaining()
		}
		gauge(descBudget, budget, name)
		if u.throttle != nil {
			gauge(descThrottle, u.throttle.RejectionProbability(), name)
		}
		for _, is := range u.pool.Status() {
			v := 0.0
			if is.Healthy && !is.Ejected {
				v = 1
			}
			gauge(descHealthy, v, name, is.URL)
			gauge(descWeight, cmp.Or(is.Weight, 1), name, is.URL)
		}
		gauge(descEjected, float64(u.pool.EjectedCount()), name)
		if u.shed != nil {
			// Read from the shedder's own counts, as live.shed is: the
			// request path counts nothing more for this family.
			for _, p := range shedClasses {
				ch <- prometheus.MustNewConstMetric(descShed, prometheus.CounterValue, float64(u.shed.Shed(p)), name, p.String())
			}
		}
	}
	for _, r := range t.routes {
		if r.cache != nil {
			n, size := r.cache.held()
			gauge(descCacheEntries, float64(n), r.cfg.Name)
			gauge(descCacheBytes, float64(size), r.cfg.Name)
		}
		if r.limit != nil {
			gauge(descRateLimitKeys, float64(r.limit.keys()), r.cfg.Name)
			if r.limit.shared != nil {
				r.limit.shared.Collect(ch)
			}
		}
	}
	if c.g.asyncRoutes != nil {
		c.g.asyncRoutes.Collect(ch, t.cfg)
	}
}
