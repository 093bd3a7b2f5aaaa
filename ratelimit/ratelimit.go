package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// policyName is the Policy of this package's errors and events.
const policyName = "ratelimit"

// cacheLine is the size of a CPU cache line (64 bytes on amd64 and most arm64).
const cacheLine = 64

// ErrLimited is the sentinel of the error a limiter refuses a call with:
// errors.Is(err, ErrLimited) reports a call over the rate limit.
var ErrLimited = errors.New("rate limit exceeded")

// maxSpan bounds Burst intervals plus MaxWait, so that the limiter's
// arithmetic on monotonic nanoseconds cannot overflow (about 146 years).
const maxSpan = math.MaxInt64 / 2

// Config configures a Limiter (and, inside KeyedConfig, every bucket of a
// Keyed). Limit is required; every other field's zero value is documented.
type Config struct {
	// Name identifies the limiter in errors and events. Default "".
	Name string
	// Limit is how many calls are admitted per Per, on average. Required:
	// it must be > 0.
	Limit int
	// Per is the period of Limit. Default 0 means one second. The emission
	// interval, Per/Limit rounded up to a whole nanosecond, must be at
	// least 1ns.
	Per time.Duration
	// Burst is how many calls may run back to back after a quiet spell:
	// the bucket's size. Default 0 means 1, the smooth limiter (calls at
	// least one interval apart); negative values are invalid.
	Burst int
	// MaxWait is how long a call may wait for a token (Acquire, Execute).
	// Default 0: a call that finds no token is refused at once. With a
	// MaxWait, a call is refused only when its token would come later than
	// that; waiting callers are admitted one interval apart, in the order
	// they took their token. Keyed and the Allow methods never wait.
	MaxWait time.Duration
	// Clock is the time source. Default nil means spillway.SystemClock,
	// which follows testing/synctest's fake time. A waiting call sleeps on
	// the runtime's timers whatever the Clock.
	Clock spillway.Clock
	// Observer receives an EventRejection (Reason throttled) for every
	// refused call. Default nil (no events). A spillway.Pipeline's Observer
	// receives them too, without this field (Limiter.AttachObserver).
	Observer spillway.Observer
}

// params is a Config resolved into the numbers the hot path needs. It is
// immutable and replaced whole by Update, behind one atomic pointer.
type params struct {
	cfg Config // defaults filled in
	// interval is the emission interval in nanoseconds, span is
	// Burst·interval: the theoretical arrival time may run at most span
	// ahead of now before a call is refused.
	interval, span, maxWait int64
	// err is the preallocated refusal, RetryAfter one interval.
	err *spillway.Error
}

// resolve checks cfg and fills in its defaults.
func resolve(cfg Config) (*params, error) {
	switch {
	case cfg.Limit <= 0:
		return nil, fmt.Errorf("ratelimit: Limit must be > 0, got %d", cfg.Limit)
	case cfg.Per < 0:
		return nil, fmt.Errorf("ratelimit: Per must be >= 0 (0 means 1s), got %v", cfg.Per)
	case cfg.Burst < 0:
		return nil, fmt.Errorf("ratelimit: Burst must be >= 0 (0 means 1), got %d", cfg.Burst)
	case cfg.MaxWait < 0:
		return nil, fmt.Errorf("ratelimit: MaxWait must be >= 0, got %v", cfg.MaxWait)
	}
	if cfg.Per == 0 {
		cfg.Per = time.Second
	}
	if cfg.Burst == 0 {
		cfg.Burst = 1
	}
	cfg.Clock = spillway.ClockOrSystem(cfg.Clock)
	// Rounding the interval up keeps the rate at or below Limit per Per.
	interval := (int64(cfg.Per) + int64(cfg.Limit) - 1) / int64(cfg.Limit)
	if int64(cfg.Burst) > (maxSpan-int64(cfg.MaxWait))/interval {
		return nil, fmt.Errorf("ratelimit: Burst %d of %v each plus MaxWait %v is too long a span", cfg.Burst, time.Duration(interval), cfg.MaxWait)
	}
	return &params{
		cfg:      cfg,
		interval: interval,
		span:     int64(cfg.Burst) * interval,
		maxWait:  int64(cfg.MaxWait),
		err: &spillway.Error{Code: spillway.ReasonThrottled, Policy: policyName, Name: cfg.Name, Err: ErrLimited,
			RetryAfter: time.Duration(interval)},
	}, nil
}

// take spends a token of the bucket whose theoretical arrival time is tat,
// at now, if it comes within slack. It returns how long the caller must
// wait for it (0: at once) and true, or how much longer than slack the
// wait would be and false.
func (p *params) take(tat *atomic.Int64, now, slack int64) (time.Duration, bool) {
	for {
		t := tat.Load()
		next := max(t, now) + p.interval
		wait := next - p.span - now
		if wait > slack {
			return time.Duration(wait - slack), false
		}
		if tat.CompareAndSwap(t, next) {
			return time.Duration(max(wait, 0)), true
		}
	}
}

// Limiter is a token bucket shared by all its callers. Create one with New.
type Limiter struct {
	// tat is the theoretical arrival time of the next call, in the clock's
	// nanoseconds: the bucket is full when tat <= now. Every call writes
	// it, so it has a cache line of its own.
	tat atomic.Int64
	_   [cacheLine - 8]byte

	p        atomic.Pointer[params]
	clock    spillway.Clock
	rejected atomic.Uint64
	// obs is Config.Observer and the observers attached since
	// (AttachObserver).
	obs spillway.ObserverSet
	// update serializes Update.
	update sync.Mutex
}

var (
	_ spillway.Guard    = (*Limiter)(nil)
	_ spillway.Releaser = (*Limiter)(nil)
)

// New returns a Limiter configured by cfg, with a full bucket, or an error
// naming the invalid field.
func New(cfg Config) (*Limiter, error) {
	p, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	l := &Limiter{clock: p.cfg.Clock}
	l.p.Store(p)
	l.obs.SetOwn(p.cfg.Observer)
	l.tat.Store(l.clock.Nanotime())
	return l, nil
}

// MustNew is like New but panics if cfg is invalid.
func MustNew(cfg Config) *Limiter {
	l, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return l
}

// Name returns the limiter's name (Config.Name).
func (l *Limiter) Name() string { return l.p.Load().cfg.Name }

// PolicyKind returns "ratelimit" (spillway.Kinded).
func (l *Limiter) PolicyKind() string { return policyName }

// AttachObserver makes the limiter report its refusals to o too, besides
// Config.Observer, for the rest of its life (spillway.ObserverAttacher: a
// pipeline attaches its Observer); o gets each event once even when it is
// also Config.Observer.
func (l *Limiter) AttachObserver(o spillway.Observer) { l.obs.Attach(o) }

// Config returns the configuration in effect, defaults filled in.
func (l *Limiter) Config() Config { return l.p.Load().cfg }

// Rejected returns the number of calls refused since New (by Acquire,
// Execute and Allow).
func (l *Limiter) Rejected() uint64 { return l.rejected.Load() }

// Tokens returns how many tokens the bucket holds now, between 0 and Burst
// (fractional while one refills). It is negative while MaxWait callers hold
// tokens not yet come.
func (l *Limiter) Tokens() float64 {
	p := l.p.Load()
	debt := l.tat.Load() - l.clock.Nanotime()
	return float64(p.span-max(debt, 0)) / float64(p.interval)
}

// Allow takes a token if the bucket has one now, without waiting. It
// returns false and how long until the next token when it has none. A
// refusal is counted in Rejected and reported to the Observer (with a nil
// Context).
func (l *Limiter) Allow() (ok bool, retryAfter time.Duration) {
	p := l.p.Load()
	wait, ok := p.take(&l.tat, l.clock.Nanotime(), 0)
	if !ok {
		l.reject(nil, p)
		return false, wait
	}
	return true, 0
}

// Acquire takes a token, waiting for it up to MaxWait. It returns a Permit
// (releasing it does nothing: the token is spent), or the limiter's
// preallocated *spillway.Error (ErrLimited, RetryAfter one interval) when
// the token would come later than MaxWait, or context.Cause(ctx) when ctx
// ends while it waits; the token it waited for is then given back. ctx is
// not consulted when a token is there at once.
func (l *Limiter) Acquire(ctx context.Context) (spillway.Permit, error) {
	p := l.p.Load()
	wait, ok := p.take(&l.tat, l.clock.Nanotime(), p.maxWait)
	if !ok {
		return spillway.Permit{}, l.reject(ctx, p)
	}
	if wait > 0 {
		if err := l.sleep(ctx, p, wait); err != nil {
			return spillway.Permit{}, err
		}
	}
	return spillway.NewPermit(l, 0, 0), nil
}

// ReleasePermit does nothing: a token is spent when it is taken, whatever
// the call's outcome.
func (l *Limiter) ReleasePermit(spillway.Permit, error) {}

// Execute runs fn once Acquire admits it.
func (l *Limiter) Execute(ctx context.Context, fn func(context.Context) error) error {
	if _, err := l.Acquire(ctx); err != nil {
		return err
	}
	return fn(ctx)
}

// Do is Execute for a function that returns a value.
func Do[T any](ctx context.Context, l *Limiter, fn func(context.Context) (T, error)) (T, error) {
	if _, err := l.Acquire(ctx); err != nil {
		var zero T
		return zero, err
	}
	return fn(ctx)
}

// sleep waits d for the token taken, or gives it back when ctx ends first.
func (l *Limiter) sleep(ctx context.Context, p *params, d time.Duration) error {
	if err := spillway.Sleep(ctx, d); err != nil {
		// Give the token back: the callers queued behind keep their turn,
		// and the next one to come finds it.
		l.tat.Add(-p.interval)
		return err
	}
	return nil
}

// Update changes the settings that fn sets and keeps every other one and
// the bucket's tokens: fn receives the configuration in effect (defaults
// filled in) and modifies it:
//
//	err := l.Update(func(c *ratelimit.Config) { c.Limit = 200 })
//
// The bucket keeps the tokens it holds (at most the new Burst) and refills
// at the new rate from then on. The Clock cannot change. Updates are
// serialized, so concurrent ones lose nothing; fn must not call Update. A
// call racing with an Update may be judged by the old settings or the new
// ones. On error (the result is invalid) nothing changes.
func (l *Limiter) Update(fn func(*Config)) error {
	l.update.Lock()
	defer l.update.Unlock()
	old := l.p.Load()
	p, err := update(old, fn)
	if err != nil {
		return err
	}
	l.p.Store(p)
	l.obs.SetOwn(p.cfg.Observer)
	rescale(&l.tat, l.clock.Nanotime(), old, p)
	return nil
}

// update applies fn to a copy of cur's configuration and resolves it.
func update(cur *params, fn func(*Config)) (*params, error) {
	next := cur.cfg
	fn(&next)
	next.Clock = cur.cfg.Clock
	return resolve(next)
}

// rescale moves the theoretical arrival time tat, at now, from old's
// settings to p's so that the bucket keeps the tokens it holds, at most
// p's Burst (fewer than none while MaxWait callers wait for theirs).
func rescale(tat *atomic.Int64, now int64, old, p *params) {
	if old.interval == p.interval && old.span == p.span {
		return
	}
	for {
		t := tat.Load()
		tokens := float64(old.span-max(t-now, 0)) / float64(old.interval)
		debt := float64(p.span) - min(tokens, float64(p.cfg.Burst))*float64(p.interval)
		if tat.CompareAndSwap(t, now+int64(min(debt, maxSpan))) {
			return
		}
	}
}

// reject counts and reports a refusal and returns the preallocated error.
func (l *Limiter) reject(ctx context.Context, p *params) error {
	l.rejected.Add(1)
	observe(ctx, &l.obs, p)
	return p.err
}

// observe reports a refusal of the limiter whose settings are p to obs.
func observe(ctx context.Context, obs *spillway.ObserverSet, p *params) {
	if o := obs.Load(); o != nil {
		o.Observe(spillway.Event{Kind: spillway.EventRejection, Context: ctx, Policy: policyName, Name: p.cfg.Name,
			Reason: spillway.ReasonThrottled})
	}
}
