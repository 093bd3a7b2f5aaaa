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
	var err, e error
	o.attempts, e = m.Int64Counter("spillway.upstream.attempts", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts made by pipelines, by result (success or failure)."))
	err = errors.Join(err, e)
	o.duration, e = m.Float64Histogram("spillway.upstream.attempt.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of each attempt made by pipelines."),
		metric.WithExplicitBucketBoundaries(o.cfg.buckets...))
	err = errors.Join(err, e)
	o.retries, e = m.Int64Counter("spillway.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Retries scheduled by retry policies."))
	err = errors.Join(err, e)
	o.rejected, e = m.Int64Counter("spillway.rejected", metric.WithUnit("{call}"),
		metric.WithDescription("Calls refused by a policy before the downstream was called, by reason."))
	err = errors.Join(err, e)
	o.transitions, e = m.Int64Counter("spillway.circuit.transitions", metric.WithUnit("{transition}"),
		metric.WithDescription("Circuit breaker state changes, by previous and new state."))
	err = errors.Join(err, e)
	o.fallbacks, e = m.Int64Counter("spillway.fallback", metric.WithUnit("{call}"),
		metric.WithDescription("Calls answered by a fallback, by the fallback step that served."))
	err = errors.Join(err, e)
	o.timeouts, e = m.Int64Counter("spillway.timeouts", metric.WithUnit("{call}"),
		metric.WithDescription("Calls cut short by a timeout policy."))
	err = errors.Join(err, e)
	o.hedges, e = m.Int64Counter("spillway.hedges", metric.WithUnit("{hedge}"),
		metric.WithDescription("Hedges of slow attempts, by outcome: sent, won (answered first)."))
	return errors.Join(err, e)
}

// newGauges creates the gauges that collect reads from the registered
// policies.
func (o *Observer) newGauges(m metric.Meter) error {
	var err, e error
	o.state, e = m.Int64ObservableGauge("spillway.circuit.state",
		metric.WithDescription("Circuit breaker state: 1 for the current state, 0 for the others."))
	err = errors.Join(err, e)
	o.failureRate, e = m.Float64ObservableGauge("spillway.circuit.failure_rate",
		metric.WithDescription("Share of failed calls in the circuit breaker's window, in [0,1]."))
	err = errors.Join(err, e)
	o.inFlight, e = m.Int64ObservableGauge("spillway.bulkhead.in_flight", metric.WithUnit("{call}"),
		metric.WithDescription("Calls admitted by the bulkhead and not yet finished."))
	err = errors.Join(err, e)
	o.limit, e = m.Int64ObservableGauge("spillway.bulkhead.limit", metric.WithUnit("{call}"),
		metric.WithDescription("Calls the bulkhead admits at once."))
	err = errors.Join(err, e)
	o.remaining, e = m.Float64ObservableGauge("spillway.retry.budget.remaining", metric.WithUnit("{retry}"),
		metric.WithDescription("Retries the retry budget allows right now."))
	err = errors.Join(err, e)
	o.tokens, e = m.Float64ObservableGauge("spillway.rate_limit.tokens", metric.WithUnit("{token}"),
		metric.WithDescription("Tokens the rate limiter's bucket holds now (negative while callers wait for tokens to come)."))
	err = errors.Join(err, e)
	o.rejectionProb, e = m.Float64ObservableGauge("spillway.throttle.rejection_probability",
		metric.WithDescription("The probability with which the client-side throttle refuses a call now, in [0,1]."))
	err = errors.Join(err, e)
	o.windowRequests, e = m.Int64ObservableGauge("spillway.throttle.window.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests (refused ones included) in the client-side throttle's window."))
	err = errors.Join(err, e)
	o.windowAccepts, e = m.Int64ObservableGauge("spillway.throttle.window.accepts", metric.WithUnit("{request}"),
		metric.WithDescription("Requests the downstream accepted in the client-side throttle's window."))
	err = errors.Join(err, e)
	o.hedgeDelay, e = m.Float64ObservableGauge("spillway.hedge.delay", metric.WithUnit("s"),
		metric.WithDescription("The delay after which the hedging policy hedges an unanswered attempt (absent until it has one)."))
	return errors.Join(err, e)
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
