package hedge

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// policyName is the Policy of this package's events.
const policyName = "hedge"

// The defaults that a zero Config field stands for.
const (
	DefaultQuantile   = 0.95
	DefaultMax        = 1
	DefaultWindow     = 30 * time.Second
	DefaultMinSamples = 20
)

// Budget is what a Policy draws its hedges from: a *retry.Budget, shared
// with the retry policy of the same downstream, so that retries and hedges
// together stay within one bound.
type Budget interface {
	// Request records one request (an execution's first attempt).
	Request()
	// TryRetry withdraws one retry, and reports false when none is left.
	TryRetry() bool
}

// Config configures a Policy. Its zero value hedges once, after the
// latency's learned 95th percentile, without a budget.
type Config struct {
	// Name identifies the policy in events. Default "".
	Name string
	// Delay is a fixed delay after which an unanswered attempt is hedged.
	// Default 0: the delay is learned, the Quantile of the latencies of the
	// calls that succeeded in the last Window.
	Delay time.Duration
	// Quantile is the quantile of the observed latency used as the delay
	// when Delay is 0, in (0, 1). Default 0.95: about 5% of the calls are
	// hedged (less with a budget).
	Quantile float64
	// InitialDelay is the delay used while the Window holds fewer than
	// MinSamples latencies. Default 0: no hedge until the delay is learned.
	InitialDelay time.Duration
	// MinSamples is how many latencies the Window must hold before the
	// learned delay is used. Default 20.
	MinSamples int
	// Window is the sliding window of the latencies the delay is learned
	// from. Default 30s.
	Window time.Duration
	// Max is how many hedges one call may send (the primary not counted),
	// each after the delay since the previous attempt, so at most Max are
	// in flight. Default 1.
	Max int
	// Budget, when set, is asked for a retry before each hedge (TryRetry); a
	// hedge it refuses is not sent. The requests that earn the retries are
	// recorded by the retry policy that shares the budget, or by this policy
	// when RecordRequests is set. Default nil: hedges are bounded by
	// Quantile and Max only.
	Budget Budget
	// RecordRequests makes the policy record one request in Budget per
	// hedged call: set it when no retry policy records them (hedging used
	// alone, or a pipeline without Retry). Default false.
	RecordRequests bool
	// Observer receives an EventHedge for every hedge sent and an
	// EventHedgeWon for every hedge whose answer won. Default nil. A
	// spillway.Pipeline's Observer receives them too, without this field
	// (Policy.AttachObserver).
	Observer spillway.Observer
	// Clock times the calls. Default spillway.SystemClock.
	Clock spillway.Clock
}

// Policy decides when a call is hedged; it implements spillway.Hedger. Do
// and DoDiscard make hedged calls with it; a spillway.Pipeline hedges its
// attempts with it (Policies.Hedge, Pipeline.ExecuteHedged). A Policy is safe for concurrent use
// and starts no goroutine of its own; make one with New.
type Policy struct {
	cfg   Config
	clock spillway.Clock
	// delay is the current delay in nanoseconds, -1 for none yet.
	delay   atomic.Int64
	hist    *histogram
	samples atomic.Uint64
	sent    atomic.Uint64
	won     atomic.Uint64
	refused atomic.Uint64
	// obs is cfg.Observer and the observers attached since
	// (AttachObserver).
	obs spillway.ObserverSet
}

// New validates cfg, fills in its defaults and returns the Policy. The
// error names the offending field.
func New(cfg Config) (*Policy, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	p := &Policy{cfg: cfg, clock: cfg.Clock}
	p.obs.SetOwn(cfg.Observer)
	switch {
	case cfg.Delay > 0:
		p.delay.Store(int64(cfg.Delay))
	case cfg.InitialDelay > 0:
		p.delay.Store(int64(cfg.InitialDelay))
	default:
		p.delay.Store(-1)
	}
	if cfg.Delay == 0 {
		p.hist = newHistogram(cfg.Window)
	}
	return p, nil
}

// MustNew is New that panics on an invalid Config, for configurations known
// at compile time.
func MustNew(cfg Config) *Policy {
	p, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return p
}

func (c *Config) normalize() error {
	switch {
	case c.Delay < 0:
		return fmt.Errorf("hedge: Delay must not be negative, got %s", c.Delay)
	case c.InitialDelay < 0:
		return fmt.Errorf("hedge: InitialDelay must not be negative, got %s", c.InitialDelay)
	case math.IsNaN(c.Quantile) || c.Quantile < 0 || c.Quantile >= 1:
		return fmt.Errorf("hedge: Quantile must be in (0,1) (0 means %v), got %v", DefaultQuantile, c.Quantile)
	case c.Max < 0:
		return fmt.Errorf("hedge: Max must be at least 1 (0 means %d), got %d", DefaultMax, c.Max)
	case c.MinSamples < 0:
		return fmt.Errorf("hedge: MinSamples must not be negative, got %d", c.MinSamples)
	case c.Window < 0:
		return fmt.Errorf("hedge: Window must not be negative, got %s", c.Window)
	case c.RecordRequests && c.Budget == nil:
		return errors.New("hedge: RecordRequests is set without a Budget")
	}
	if c.Quantile == 0 {
		c.Quantile = DefaultQuantile
	}
	if c.Max == 0 {
		c.Max = DefaultMax
	}
	if c.MinSamples == 0 {
		c.MinSamples = DefaultMinSamples
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	c.Clock = spillway.ClockOrSystem(c.Clock)
	return nil
}

// Config returns the policy's configuration with every default filled in.
func (p *Policy) Config() Config { return p.cfg }

// Name returns the policy's name.
func (p *Policy) Name() string { return p.cfg.Name }

// PolicyKind returns "hedge".
func (p *Policy) PolicyKind() string { return policyName }

// AttachObserver makes the policy report its hedges to o too, besides
// Config.Observer, for the rest of its life (spillway.ObserverAttacher: a
// pipeline attaches its Observer); o gets each event once even when it is
// also Config.Observer. A call under way when o is attached may report its
// hedge's win with a wrong Duration (its start was not timed).
func (p *Policy) AttachObserver(o spillway.Observer) { p.obs.Attach(o) }

// Delay returns the current delay after which an attempt is hedged, and
// false while there is none (a learned delay with too few samples and no
// InitialDelay).
func (p *Policy) Delay() (time.Duration, bool) {
	d := p.delay.Load()
	return time.Duration(d), d >= 0
}

// Sent returns how many hedges the policy has sent.
func (p *Policy) Sent() uint64 { return p.sent.Load() }

// Won returns how many hedges answered first.
func (p *Policy) Won() uint64 { return p.won.Load() }

// Refused returns how many hedges the budget refused.
func (p *Policy) Refused() uint64 { return p.refused.Load() }

// HedgeDelay returns the current delay, for the hedges 1 to Max.
func (p *Policy) HedgeDelay(k int) (time.Duration, bool) {
	if k > p.cfg.Max {
		return 0, false
	}
	return p.Delay()
}

// TryHedge draws hedge k from the budget and reports it.
func (p *Policy) TryHedge(ctx context.Context, k int) bool {
	if p.cfg.Budget != nil && !p.cfg.Budget.TryRetry() {
		p.refused.Add(1)
		return false
	}
	p.sent.Add(1)
	if o := p.obs.Load(); o != nil {
		d, _ := p.Delay()
		o.Observe(spillway.Event{Kind: spillway.EventHedge, Context: ctx, Policy: policyName,
			Name: p.cfg.Name, Attempt: k, Delay: d})
	}
	return true
}

// Begin records a request in the budget when RecordRequests is set, and
// reads the clock when the policy needs the call's latency (a learned delay,
// an Observer).
func (p *Policy) Begin() int64 {
	if p.cfg.RecordRequests {
		p.cfg.Budget.Request()
	}
	if p.hist == nil && p.obs.Load() == nil {
		return 0
	}
	return p.clock.Nanotime()
}

// Record learns the latency of a call that succeeded, from its start to its
// answer (the winning attempt's, whichever it was), and counts a hedge
// that won. The latencies below the delay are those of calls that were not
// hedged, so hedging does not move the quantile it hedges at.
func (p *Policy) Record(ctx context.Context, start int64, winner int) {
	if winner > 0 {
		p.won.Add(1)
	}
	o := p.obs.Load()
	if p.hist == nil && o == nil {
		return
	}
	now := p.clock.Nanotime()
	if winner > 0 {
		if o != nil {
			o.Observe(spillway.Event{Kind: spillway.EventHedgeWon, Context: ctx, Policy: policyName,
				Name: p.cfg.Name, Attempt: winner, Duration: time.Duration(now - start)})
		}
	}
	if p.hist == nil {
		return
	}
	p.hist.record(now, time.Duration(now-start))
	if p.samples.Add(1)&(refreshEvery-1) == 0 {
		p.refresh(now)
	}
}

// refresh computes the learned delay from the window.
func (p *Policy) refresh(now int64) {
	q, n := p.hist.quantile(now, p.cfg.Quantile)
	switch {
	case n >= int64(p.cfg.MinSamples):
		p.delay.Store(int64(q))
	case p.cfg.InitialDelay > 0:
		p.delay.Store(int64(p.cfg.InitialDelay))
	default:
		p.delay.Store(-1)
	}
}

// Do makes a hedged call of fn under p (see spillway.Hedge): the primary on
// the caller's goroutine, each hedge on a goroutine of its own, the first
// success returned, the other attempts cancelled. Use it for idempotent
// calls only. fn's context is cancelled when Do returns, the winner's too:
// read what depends on it (a response body) inside fn, or hedge HTTP calls
// with spillwayhttp's Downstream.Hedge, which keeps the winner's body
// readable.
func Do[T any](ctx context.Context, p *Policy, fn func(context.Context) (T, error)) (T, error) {
	return DoDiscard(ctx, p, fn, nil)
}

// DoDiscard is Do for results that must be released when they lose (a
// response body to close): discard is called with every result that is not
// returned, on the goroutine of the attempt that produced it.
func DoDiscard[T any](ctx context.Context, p *Policy, fn func(context.Context) (T, error), discard func(T)) (T, error) {
	v, _, err := spillway.Hedge(ctx, p, fn, discard)
	return v, err
}
