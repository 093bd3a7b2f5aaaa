package spillwayprom

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/internal/gauges"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/throttle"
)

// OverflowName is the name label of the events whose name came after
// WithMaxNames distinct names had been seen.
const OverflowName = "_overflow"

// DefaultMaxNames is the number of distinct event names a Metrics keeps
// series for unless WithMaxNames changes it.
const DefaultMaxNames = 1000

// Attempt results and the label value of reasons and states outside the
// closed sets.
const (
	resultSuccess = "success"
	resultFailure = "failure"
	otherValue    = "other"
)

// hedgeOutcomes are the outcome label values of spillway_hedges_total,
// indexed as series.hedges: a hedge sent (EventHedge), a hedge that won
// (EventHedgeWon).
var hedgeOutcomes = [2]string{"sent", "won"}

// states are the breaker states' names, indexed by breaker.State; index
// numStates stands for any other name.
const numStates = int(breaker.MetricsOnly) + 1

var stateNames = func() (s [numStates + 1]string) {
	for i := range numStates {
		s[i] = breaker.State(i).String()
	}
	s[numStates] = otherValue
	return s
}()

// reasonNames is a private copy of spillway.Reasons (an exported, mutable
// slice); index len(spillway.Reasons) stands for any other reason.
var reasonNames = append(append([]spillway.Reason(nil), spillway.Reasons...), otherValue)

func stateIndex(name string) int {
	for i, s := range stateNames[:numStates] {
		if s == name {
			return i
		}
	}
	return numStates
}

func reasonIndex(r spillway.Reason) int {
	last := len(reasonNames) - 1
	for i, s := range reasonNames[:last] {
		if s == r {
			return i
		}
	}
	return last
}

// Option configures a Metrics.
type Option func(*options) error

type options struct {
	buckets  []float64
	maxNames int
}

// WithBuckets sets the buckets, in seconds, of
// spillway_upstream_attempt_duration_seconds. Default prometheus.DefBuckets
// (5 ms to 10 s). They must be strictly increasing.
func WithBuckets(buckets []float64) Option {
	return func(o *options) error {
		if len(buckets) == 0 {
			return errors.New("spillwayprom: WithBuckets: no buckets")
		}
		for i := 1; i < len(buckets); i++ {
			if buckets[i] <= buckets[i-1] {
				return fmt.Errorf("spillwayprom: WithBuckets: bucket %d (%g) is not above bucket %d (%g)", i, buckets[i], i-1, buckets[i-1])
			}
		}
		o.buckets = append([]float64(nil), buckets...)
		return nil
	}
}

// WithMaxNames bounds the distinct name label values that events create,
// OverflowName included: once n names have series, the events of any other
// name are counted under OverflowName. Default DefaultMaxNames; n must be at
// least 1. Registered gauges do not count: the program registers them one by
// one.
func WithMaxNames(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("spillwayprom: WithMaxNames: %d is less than 1", n)
		}
		o.maxNames = n
		return nil
	}
}

// Metrics is both a spillway.Observer that counts policy events and a
// prometheus.Collector that also reads gauges from registered policies at
// scrape time (see the package documentation for the metrics). Make one with
// New; it is safe for concurrent use.
type Metrics struct {
	attempts    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	transitions *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	timeouts    *prometheus.CounterVec
	hedges      *prometheus.CounterVec

	circuitState, failureRate, inFlight, limit, budgetRemaining             *prometheus.Desc
	tokens, rejectionProbability, windowRequests, windowAccepts, hedgeDelay *prometheus.Desc

	maxNames int
	// names maps an event name to its cached series; it is replaced, never
	// modified, under namesMu.
	names   atomic.Pointer[map[string]*series]
	namesMu sync.Mutex

	regMu     sync.RWMutex
	breakers  map[string]*breaker.Breaker
	bulkheads map[string]*bulkhead.Bulkhead
	budgets   map[string]*retry.Budget
	limiters  map[string]*ratelimit.Limiter
	throttles map[string]*throttle.Throttler
	hedgers   map[string]*hedge.Policy
}

// series caches one name's children of the vectors, each created on the
// first event that needs it. Two goroutines may create the same child at
// once: the vector returns the same metric to both, so either store wins.
type series struct {
	name        string
	attempts    [2]atomic.Pointer[prometheus.Counter] // success, failure
	duration    atomic.Pointer[prometheus.Observer]
	retries     atomic.Pointer[prometheus.Counter]
	timeouts    atomic.Pointer[prometheus.Counter]
	hedges      [2]atomic.Pointer[prometheus.Counter] // by hedgeOutcomes
	rejected    []atomic.Pointer[prometheus.Counter]  // by reasonIndex
	transitions [numStates + 1][numStates + 1]atomic.Pointer[prometheus.Counter]
	// fallbacks maps a step name to its counter; replaced under fallbacksMu.
	fallbacks   atomic.Pointer[map[string]prometheus.Counter]
	fallbacksMu sync.Mutex
}

// cached returns the value behind p, making it with mk on the first call.
// mk does not escape, so a call that finds the value allocates nothing.
func cached[T any](p *atomic.Pointer[T], mk func() T) T {
	if v := p.Load(); v != nil {
		return *v
	}
	v := mk()
	p.Store(&v)
	return v
}

// New returns a Metrics registered with reg. A nil reg registers nothing: the
// caller registers the Metrics (it is a prometheus.Collector) itself. The
// error is reg's, or an invalid option's.
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	o := options{buckets: prometheus.DefBuckets, maxNames: DefaultMaxNames}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_upstream_attempts_total",
			Help: "Attempts made to a downstream, by result (success or failure).",
		}, []string{"name", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spillway_upstream_attempt_duration_seconds",
			Help:    "Duration of the attempts made to a downstream, in seconds.",
			Buckets: o.buckets,
		}, []string{"name"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_retries_total",
			Help: "Retries scheduled by retry policies.",
		}, []string{"name"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_rejected_total",
			Help: "Calls refused by a policy before the downstream was called, by reason.",
		}, []string{"name", "reason"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_circuit_transitions_total",
			Help: "Circuit breaker state changes, by the states left and entered.",
		}, []string{"name", "from", "to"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_fallback_total",
			Help: "Degraded answers served by a fallback, by the step that served.",
		}, []string{"name", "kind"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_timeouts_total",
			Help: "Calls cut short by a timeout policy.",
		}, []string{"name"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_hedges_total",
			Help: "Hedges of slow attempts, by outcome: sent, won (answered first).",
		}, []string{"name", "outcome"}),
		circuitState: prometheus.NewDesc("spillway_circuit_state",
			"Circuit breaker state: 1 for the current state, 0 for the others.", []string{"name", "state"}, nil),
		failureRate: prometheus.NewDesc("spillway_circuit_failure_rate",
			"Share of failed calls in the circuit breaker's window, from 0 to 1.", []string{"name"}, nil),
		inFlight: prometheus.NewDesc("spillway_bulkhead_in_flight",
			"Calls running under the bulkhead.", []string{"name"}, nil),
		limit: prometheus.NewDesc("spillway_bulkhead_limit",
			"Concurrent calls the bulkhead admits.", []string{"name"}, nil),
		budgetRemaining: prometheus.NewDesc("spillway_retry_budget_remaining",
			"Retries the retry budget allows right now.", []string{"name"}, nil),
		tokens: prometheus.NewDesc("spillway_rate_limit_tokens",
			"Tokens the rate limiter's bucket holds now (negative while callers wait for tokens to come).", []string{"name"}, nil),
		rejectionProbability: prometheus.NewDesc("spillway_throttle_rejection_probability",
			"The probability with which the client-side throttle refuses a call now.", []string{"name"}, nil),
		windowRequests: prometheus.NewDesc("spillway_throttle_window_requests",
			"Requests (refused ones included) in the client-side throttle's window.", []string{"name"}, nil),
		windowAccepts: prometheus.NewDesc("spillway_throttle_window_accepts",
			"Requests the downstream accepted in the client-side throttle's window.", []string{"name"}, nil),
		hedgeDelay: prometheus.NewDesc("spillway_hedge_delay_seconds",
			"The delay after which the hedging policy hedges an unanswered attempt (absent until it has one).", []string{"name"}, nil),
		maxNames:  o.maxNames,
		breakers:  map[string]*breaker.Breaker{},
		bulkheads: map[string]*bulkhead.Bulkhead{},
		budgets:   map[string]*retry.Budget{},
		limiters:  map[string]*ratelimit.Limiter{},
		throttles: map[string]*throttle.Throttler{},
		hedgers:   map[string]*hedge.Policy{},
	}
	m.names.Store(&map[string]*series{})
	if reg != nil {
		if err := reg.Register(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observe counts e. It implements spillway.Observer; events of a kind this
// package does not count (and unknown kinds) are ignored.
func (m *Metrics) Observe(e spillway.Event) {
	switch e.Kind {
	case spillway.EventAttempt:
		s := m.series(e.Name)
		i, result := 0, resultSuccess
		if e.Err != nil {
			i, result = 1, resultFailure
		}
		cached(&s.attempts[i], func() prometheus.Counter { return m.attempts.WithLabelValues(s.name, result) }).Inc()
		cached(&s.duration, func() prometheus.Observer { return m.duration.WithLabelValues(s.name) }).Observe(e.Duration.Seconds())
	case spillway.EventRetry:
		s := m.series(e.Name)
		cached(&s.retries, func() prometheus.Counter { return m.retries.WithLabelValues(s.name) }).Inc()
	case spillway.EventRejection:
		s := m.series(e.Name)
		i := reasonIndex(e.Reason)
		cached(&s.rejected[i], func() prometheus.Counter { return m.rejected.WithLabelValues(s.name, string(reasonNames[i])) }).Inc()
	case spillway.EventTransition:
		s := m.series(e.Name)
		from, to := stateIndex(e.From), stateIndex(e.To)
		cached(&s.transitions[from][to], func() prometheus.Counter {
			return m.transitions.WithLabelValues(s.name, stateNames[from], stateNames[to])
		}).Inc()
	case spillway.EventFallback:
		m.series(e.Name).fallback(m.fallbacks, e.Fallback).Inc()
	case spillway.EventTimeout:
		s := m.series(e.Name)
		cached(&s.timeouts, func() prometheus.Counter { return m.timeouts.WithLabelValues(s.name) }).Inc()
	case spillway.EventHedge, spillway.EventHedgeWon:
		s := m.series(e.Name)
		i := 0
		if e.Kind == spillway.EventHedgeWon {
			i = 1
		}
		cached(&s.hedges[i], func() prometheus.Counter { return m.hedges.WithLabelValues(s.name, hedgeOutcomes[i]) }).Inc()
	}
}

// series returns the cached series of name, or of OverflowName when the
// names are at their limit.
func (m *Metrics) series(name string) *series {
	cur := *m.names.Load()
	if s, ok := cur[name]; ok {
		return s
	}
	if m.full(cur) {
		// A storm of new names past the limit takes no lock.
		if s, ok := cur[OverflowName]; ok {
			return s
		}
	}
	return m.addSeries(name)
}

// full reports whether names holds as many names as it may, the slot
// reserved for OverflowName aside.
func (m *Metrics) full(names map[string]*series) bool {
	n := len(names)
	if _, ok := names[OverflowName]; ok {
		n--
	}
	return n >= m.maxNames-1
}

// addSeries inserts name's series (or the overflow's, at the limit) into a
// copy of the names map.
func (m *Metrics) addSeries(name string) *series {
	m.namesMu.Lock()
	defer m.namesMu.Unlock()
	cur := *m.names.Load()
	if s, ok := cur[name]; ok {
		return s
	}
	if m.full(cur) {
		name = OverflowName
		if s, ok := cur[name]; ok {
			return s
		}
	}
	s := &series{name: name, rejected: make([]atomic.Pointer[prometheus.Counter], len(reasonNames))}
	s.fallbacks.Store(&map[string]prometheus.Counter{})
	next := make(map[string]*series, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[name] = s
	m.names.Store(&next)
	return s
}

// fallback returns the counter of the fallback step kind.
func (s *series) fallback(vec *prometheus.CounterVec, kind string) prometheus.Counter {
	if c, ok := (*s.fallbacks.Load())[kind]; ok {
		return c
	}
	s.fallbacksMu.Lock()
	defer s.fallbacksMu.Unlock()
	cur := *s.fallbacks.Load()
	if c, ok := cur[kind]; ok {
		return c
	}
	c := vec.WithLabelValues(s.name, kind)
	next := make(map[string]prometheus.Counter, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[kind] = c
	s.fallbacks.Store(&next)
	return c
}

// RegisterBreaker exports b's state and failure rate under b.Name(). It
// returns an error if b is nil, has no name, or another breaker is
// registered under that name; registering b again is not an error.
func (m *Metrics) RegisterBreaker(b *breaker.Breaker) error {
	if b == nil {
		return errors.New("spillwayprom: RegisterBreaker: nil breaker")
	}
	return register(m, "breaker", b.Name(), b, m.breakers)
}

// RegisterBulkhead exports b's in-flight calls and limit under b.Name(). It
// returns an error if b is nil, has no name, or another bulkhead is
// registered under that name; registering b again is not an error.
func (m *Metrics) RegisterBulkhead(b *bulkhead.Bulkhead) error {
	if b == nil {
		return errors.New("spillwayprom: RegisterBulkhead: nil bulkhead")
	}
	return register(m, "bulkhead", b.Name(), b, m.bulkheads)
}

// RegisterBudget exports b's remaining retries under name (a Budget has no
// name of its own: give the retry policy's). It returns an error if b is
// nil, name is empty, or another budget is registered under that name;
// registering b again under name is not an error.
func (m *Metrics) RegisterBudget(name string, b *retry.Budget) error {
	if b == nil {
		return errors.New("spillwayprom: RegisterBudget: nil budget")
	}
	return register(m, "budget", name, b, m.budgets)
}

// RegisterRateLimiter exports the tokens of l's bucket under l.Name(). It
// returns an error if l is nil, has no name, or another rate limiter is
// registered under that name; registering l again is not an error.
func (m *Metrics) RegisterRateLimiter(l *ratelimit.Limiter) error {
	if l == nil {
		return errors.New("spillwayprom: RegisterRateLimiter: nil rate limiter")
	}
	return register(m, "rate limiter", l.Name(), l, m.limiters)
}

// RegisterThrottle exports t's rejection probability and its window's
// requests and accepts under t.Name(). It returns an error if t is nil, has
// no name, or another throttle is registered under that name; registering t
// again is not an error.
func (m *Metrics) RegisterThrottle(t *throttle.Throttler) error {
	if t == nil {
		return errors.New("spillwayprom: RegisterThrottle: nil throttle")
	}
	return register(m, "throttle", t.Name(), t, m.throttles)
}

// RegisterHedge exports p's current delay under p.Name() (its hedges are
// counted from its events). It returns an error if p is nil, has no name,
// or another hedging policy is registered under that name; registering p
// again is not an error.
func (m *Metrics) RegisterHedge(p *hedge.Policy) error {
	if p == nil {
		return errors.New("spillwayprom: RegisterHedge: nil hedging policy")
	}
	return register(m, "hedging policy", p.Name(), p, m.hedgers)
}

// Register exports the gauges of each policy that has some: a
// *breaker.Breaker, a *bulkhead.Bulkhead, a *ratelimit.Limiter, a
// *throttle.Throttler, a *hedge.Policy, and the budget of a *retry.Policy
// under the policy's name. It skips nil policies and the others (timeouts,
// fallbacks). spillwayhttp and spillwaygrpc call it for every downstream
// they make when the Metrics is their Observer. The error joins those of
// the Register* methods.
func (m *Metrics) Register(policies ...any) error { return gauges.Register(m, policies...) }

// register adds p to regs under name, unless another policy has it.
func register[P comparable](m *Metrics, kind, name string, p P, regs map[string]P) error {
	if name == "" {
		return fmt.Errorf("spillwayprom: a %s needs a name to be registered", kind)
	}
	m.regMu.Lock()
	defer m.regMu.Unlock()
	if old, ok := regs[name]; ok && old != p {
		return fmt.Errorf("spillwayprom: another %s named %q is already registered", kind, name)
	}
	regs[name] = p
	return nil
}

// Forget removes every series of name: the registered breaker, bulkhead,
// budget, rate limiter, throttle and hedging policy, and the counters and histogram its events created, so that a name
// whose policies are gone (after a reload) stops being exported. An event
// of name observed concurrently may be lost or may create its series again.
func (m *Metrics) Forget(name string) {
	m.regMu.Lock()
	delete(m.breakers, name)
	delete(m.bulkheads, name)
	delete(m.budgets, name)
	delete(m.limiters, name)
	delete(m.throttles, name)
	delete(m.hedgers, name)
	m.regMu.Unlock()

	m.namesMu.Lock()
	cur := *m.names.Load()
	if _, ok := cur[name]; ok {
		next := make(map[string]*series, len(cur))
		for k, v := range cur {
			if k != name {
				next[k] = v
			}
		}
		m.names.Store(&next)
	}
	m.namesMu.Unlock()

	match := prometheus.Labels{"name": name}
	for _, v := range []*prometheus.MetricVec{
		m.attempts.MetricVec, m.duration.MetricVec, m.retries.MetricVec, m.rejected.MetricVec,
		m.transitions.MetricVec, m.fallbacks.MetricVec, m.timeouts.MetricVec, m.hedges.MetricVec,
	} {
		v.DeletePartialMatch(match)
	}
}

// Describe sends the descriptors of every metric. It implements
// prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.attempts.Describe(ch)
	m.duration.Describe(ch)
	m.retries.Describe(ch)
	m.rejected.Describe(ch)
	m.transitions.Describe(ch)
	m.fallbacks.Describe(ch)
	m.timeouts.Describe(ch)
	m.hedges.Describe(ch)
	for _, d := range []*prometheus.Desc{m.circuitState, m.failureRate, m.inFlight, m.limit, m.budgetRemaining,
		m.tokens, m.rejectionProbability, m.windowRequests, m.windowAccepts, m.hedgeDelay} {
		ch <- d
	}
}

// Collect sends the counters and histogram, and the gauges read now from
// the registered policies. It implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.attempts.Collect(ch)
	m.duration.Collect(ch)
	m.retries.Collect(ch)
	m.rejected.Collect(ch)
	m.transitions.Collect(ch)
	m.fallbacks.Collect(ch)
	m.timeouts.Collect(ch)
	m.hedges.Collect(ch)

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	m.regMu.RLock()
	defer m.regMu.RUnlock()
	for name, b := range m.breakers {
		snap := b.Snapshot()
		for i := range numStates {
			v := 0.0
			if snap.State == breaker.State(i) {
				v = 1
			}
			gauge(m.circuitState, v, name, stateNames[i])
		}
		gauge(m.failureRate, snap.FailureRate, name)
	}
	for name, b := range m.bulkheads {
		// Limit is read now: an adaptive bulkhead's limit moves.
		gauge(m.inFlight, float64(b.InFlight()), name)
		gauge(m.limit, float64(b.Limit()), name)
	}
	for name, b := range m.budgets {
		gauge(m.budgetRemaining, b.Remaining(), name)
	}
	for name, l := range m.limiters {
		gauge(m.tokens, l.Tokens(), name)
	}
	for name, t := range m.throttles {
		reqs, accs := t.Counts()
		gauge(m.rejectionProbability, t.RejectionProbability(), name)
		gauge(m.windowRequests, float64(reqs), name)
		gauge(m.windowAccepts, float64(accs), name)
	}
	for name, p := range m.hedgers {
		if d, ok := p.Delay(); ok {
			gauge(m.hedgeDelay, d.Seconds(), name)
		}
	}
}
