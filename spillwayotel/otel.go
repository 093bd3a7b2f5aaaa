package spillwayotel

import (
	"context"
	"errors"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/metric"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/throttle"
)

// ScopeName is the instrumentation scope of the Observer's meter.
const ScopeName = "github.com/spillway-dev/spillway/spillwayotel"

// DefaultBuckets are the attempt duration histogram's bucket boundaries, in
// seconds: Prometheus's default buckets, from 5ms to 10s.
var DefaultBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Option changes how New builds an Observer.
type Option func(*config)

type config struct {
	buckets       []float64
	spanEvents    bool
	errorMessages bool
}

// WithBuckets sets the bucket boundaries of spillway.upstream.attempt.duration,
// in seconds, increasing. Default DefaultBuckets. A View configured in the SDK
// overrides them.
func WithBuckets(bounds ...float64) Option {
	return func(c *config) { c.buckets = slices.Clone(bounds) }
}

// WithoutSpanEvents turns span events off: the Observer records metrics only.
// Default: span events on.
func WithoutSpanEvents() Option {
	return func(c *config) { c.spanEvents = false }
}

// WithoutErrorMessages leaves the error.message attribute out of span events,
// for programs whose errors may carry data that must not leave the process.
// The reason code is still recorded. Default: error messages included.
func WithoutErrorMessages() Option {
	return func(c *config) { c.errorMessages = false }
}

// Observer records Spillway's events as OpenTelemetry metrics and span events.
// Create one with New and pass it as the Observer of the policies and
// pipelines to watch; register breakers, bulkheads, retry budgets, rate
// limiters, throttles and hedging policies for their state gauges. It is
// safe for concurrent use.
type Observer struct {
	cfg config

	attempts    metric.Int64Counter
	duration    metric.Float64Histogram
	retries     metric.Int64Counter
	rejected    metric.Int64Counter
	transitions metric.Int64Counter
	fallbacks   metric.Int64Counter
	timeouts    metric.Int64Counter
	hedges      metric.Int64Counter

	state          metric.Int64ObservableGauge
	failureRate    metric.Float64ObservableGauge
	inFlight       metric.Int64ObservableGauge
	limit          metric.Int64ObservableGauge
	remaining      metric.Float64ObservableGauge
	tokens         metric.Float64ObservableGauge
	rejectionProb  metric.Float64ObservableGauge
	windowRequests metric.Int64ObservableGauge
	windowAccepts  metric.Int64ObservableGauge
	hedgeDelay     metric.Float64ObservableGauge

	names cowMap[string, *nameSets]

	// mu guards the registered policies and reg.
	mu        sync.Mutex
	breakers  []breakerReg
	bulkheads []reg[*bulkhead.Bulkhead]
	budgets   []reg[*retry.Budget]
	limiters  []reg[*ratelimit.Limiter]
	throttles []reg[*throttle.Throttler]
	hedgers   []reg[*hedge.Policy]
	reg       metric.Registration
}

// New returns an Observer that records on a meter of mp named ScopeName. It
// creates the instruments and registers one callback for the gauges, which
// Close unregisters. It returns an error when mp is nil or refuses an
// instrument or the callback.
func New(mp metric.MeterProvider, opts ...Option) (*Observer, error) {
	if mp == nil {
		return nil, errors.New("spillwayotel: nil MeterProvider")
	}
	o := &Observer{cfg: config{buckets: DefaultBuckets, spanEvents: true, errorMessages: true}}
	for _, opt := range opts {
		opt(&o.cfg)
	}
	m := mp.Meter(ScopeName)
	if err := errors.Join(o.newCounters(m), o.newGauges(m)); err != nil {
		return nil, errors.Join(errors.New("spillwayotel: creating instruments"), err)
	}
	var err error
	o.reg, err = m.RegisterCallback(o.collect, o.state, o.failureRate, o.inFlight, o.limit, o.remaining,
		o.tokens, o.rejectionProb, o.windowRequests, o.windowAccepts, o.hedgeDelay)
	if err != nil {
		return nil, errors.Join(errors.New("spillwayotel: registering the gauges' callback"), err)
	}
	return o, nil
}

// newCounters creates the instruments that events feed.
func (o *Observer) newCounters(m metric.Meter) error {
	var err error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, e := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		err = errors.Join(err, e)
		return c
	}
	o.attempts = counter("spillway.upstream.attempts", "{attempt}", "Attempts made by pipelines, by result (success or failure).")
	var e error
	o.duration, e = m.Float64Histogram("spillway.upstream.attempt.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of each attempt made by pipelines."),
		metric.WithExplicitBucketBoundaries(o.cfg.buckets...))
	err = errors.Join(err, e)
	o.retries = counter("spillway.retries", "{retry}", "Retries scheduled by retry policies.")
	o.rejected = counter("spillway.rejected", "{call}", "Calls refused by a policy before the downstream was called, by reason.")
	o.transitions = counter("spillway.circuit.transitions", "{transition}", "Circuit breaker state changes, by previous and new state.")
	o.fallbacks = counter("spillway.fallback", "{call}", "Calls answered by a fallback, by the fallback step that served.")
	o.timeouts = counter("spillway.timeouts", "{call}", "Calls cut short by a timeout policy.")
	o.hedges = counter("spillway.hedges", "{hedge}", "Hedges of slow attempts, by outcome: sent, won (answered first).")
	return err
}

// newGauges creates the gauges that collect reads from the registered
// policies.
func (o *Observer) newGauges(m metric.Meter) error {
	var err error
	ints := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, e := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		err = errors.Join(err, e)
		return g
	}
	floats := func(name, unit, desc string) metric.Float64ObservableGauge {
		g, e := m.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		err = errors.Join(err, e)
		return g
	}
	o.state = ints("spillway.circuit.state", "", "Circuit breaker state: 1 for the current state, 0 for the others.")
	o.failureRate = floats("spillway.circuit.failure_rate", "", "Share of failed calls in the circuit breaker's window, in [0,1].")
	o.inFlight = ints("spillway.bulkhead.in_flight", "{call}", "Calls admitted by the bulkhead and not yet finished.")
	o.limit = ints("spillway.bulkhead.limit", "{call}", "Calls the bulkhead admits at once.")
	o.remaining = floats("spillway.retry.budget.remaining", "{retry}", "Retries the retry budget allows right now.")
	o.tokens = floats("spillway.rate_limit.tokens", "{token}",
		"Tokens the rate limiter's bucket holds now (negative while callers wait for tokens to come).")
	o.rejectionProb = floats("spillway.throttle.rejection_probability", "",
		"The probability with which the client-side throttle refuses a call now, in [0,1].")
	o.windowRequests = ints("spillway.throttle.window.requests", "{request}",
		"Requests (refused ones included) in the client-side throttle's window.")
	o.windowAccepts = ints("spillway.throttle.window.accepts", "{request}",
		"Requests the downstream accepted in the client-side throttle's window.")
	o.hedgeDelay = floats("spillway.hedge.delay", "s",
		"The delay after which the hedging policy hedges an unanswered attempt (absent until it has one).")
	return err
}

// Close unregisters the gauges' callback: the registered policies are no
// longer read. Events are still recorded. Calling Close again does nothing.
func (o *Observer) Close() error {
	o.mu.Lock()
	reg := o.reg
	o.reg = nil
	o.mu.Unlock()
	if reg == nil {
		return nil
	}
	return reg.Unregister()
}

// Observe records e. It implements spillway.Observer:
//   - EventAttempt adds 1 to spillway.upstream.attempts and records
//     e.Duration in spillway.upstream.attempt.duration;
//   - EventRetry adds 1 to spillway.retries and a spillway.retry span event;
//   - EventRejection adds 1 to spillway.rejected and a spillway.rejection span
//     event;
//   - EventTransition adds 1 to spillway.circuit.transitions;
//   - EventFallback adds 1 to spillway.fallback and a spillway.fallback span
//     event;
//   - EventTimeout adds 1 to spillway.timeouts;
//   - EventHedge adds 1 to spillway.hedges{outcome="sent"} and a
//     spillway.hedge span event;
//   - EventHedgeWon adds 1 to spillway.hedges{outcome="won"} and a
//     spillway.hedge_won span event.
//
// Other events are ignored.
// Measurements are made with e.Context, so that an SDK's exemplars can link
// them to the call's trace.
func (o *Observer) Observe(e spillway.Event) {
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	switch e.Kind {
	case spillway.EventAttempt:
		ns := o.sets(e.Name)
		if e.Err == nil {
			o.attempts.Add(ctx, 1, ns.success...)
		} else {
			o.attempts.Add(ctx, 1, ns.failure...)
		}
		o.duration.Record(ctx, e.Duration.Seconds(), ns.record...)
	case spillway.EventRetry:
		o.retries.Add(ctx, 1, o.sets(e.Name).add...)
		o.retryEvent(ctx, e)
	case spillway.EventRejection:
		reason := rejectionReason(e)
		o.rejected.Add(ctx, 1, o.sets(e.Name).rejected(reason)...)
		o.rejectionEvent(ctx, e, reason)
	case spillway.EventTransition:
		o.transitions.Add(ctx, 1, o.sets(e.Name).transition(e.From, e.To)...)
	case spillway.EventFallback:
		o.fallbacks.Add(ctx, 1, o.sets(e.Name).fallback(e.Fallback)...)
		o.fallbackEvent(ctx, e)
	case spillway.EventTimeout:
		o.timeouts.Add(ctx, 1, o.sets(e.Name).add...)
	case spillway.EventHedge:
		o.hedges.Add(ctx, 1, o.sets(e.Name).hedgeSent...)
		o.hedgeEvent(ctx, EventNameHedge, e)
	case spillway.EventHedgeWon:
		o.hedges.Add(ctx, 1, o.sets(e.Name).hedgeWon...)
		o.hedgeEvent(ctx, EventNameHedgeWon, e)
	}
}

// rejectionReason is the reason of a rejection event: its Reason, or the
// reason of its error when a policy left Reason empty.
func rejectionReason(e spillway.Event) spillway.Reason {
	if e.Reason != "" {
		return e.Reason
	}
	return spillway.ReasonOf(e.Err)
}
