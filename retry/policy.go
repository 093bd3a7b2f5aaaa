package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/spillway-dev/spillway"
)

// ErrExhausted is the sentinel of the error a Policy returns when it stops
// retrying a retryable failure: its attempts ran out, or the next attempt
// could not start before the context's deadline or MaxElapsed.
var ErrExhausted = errors.New("retries exhausted")

// The defaults that a zero Config field stands for.
const (
	DefaultMaxAttempts = 3
	DefaultInitial     = 100 * time.Millisecond
	DefaultMax         = 5 * time.Second
	DefaultMultiplier  = 2.0
)

// Config configures a Policy. The zero value of every field means its
// default, so Config{} is the brief's policy: 3 attempts, exponential backoff
// from 100ms doubling up to 5s, full jitter, no elapsed-time limit, and a
// retry budget of its own.
type Config struct {
	// Name identifies the policy in errors and events.
	Name string
	// MaxAttempts counts every attempt, the first one included (the
	// configuration's max_attempts): 1 never retries. Default 3.
	MaxAttempts int
	// Backoff selects how the delay grows. Default Exponential.
	Backoff BackoffKind
	// Initial is the first base delay, and the lower bound of the decorrelated
	// scheme. Default 100ms.
	Initial time.Duration
	// Max caps every backoff delay. Default 5s. It must not be less than
	// Initial.
	Max time.Duration
	// MaxRetryAfter caps a Retry-After hint carried by the error. Default Max
	// (the brief's library rule: a hint is honoured up to the backoff cap);
	// the gateway sets its retry_after_max (300s by default) here.
	MaxRetryAfter time.Duration
	// Multiplier is the exponential growth factor, at least 1. Default 2. The
	// other schemes ignore it.
	Multiplier float64
	// Jitter selects how randomness spreads each delay. Default FullJitter.
	// Backoff Decorrelated and Jitter DecorrelatedJitter imply each other;
	// combining one with another explicit kind is an error.
	Jitter JitterKind
	// MaxElapsed, when positive, bounds the execution: no attempt starts at
	// or after MaxElapsed from Begin. Default 0: no limit other than the
	// context's deadline.
	MaxElapsed time.Duration
	// Retryable classifies the errors that pass the safe defaults (see the
	// package documentation); it cannot make those retryable. Default: every
	// such error is retryable. It must be safe for concurrent use.
	Retryable func(error) bool
	// Budget bounds retries across every execution that shares it. Default
	// nil: a policy that retries gets a budget of its own with BudgetConfig's
	// defaults (20 % of requests over 10s plus 10 a second), so that it never
	// retries into a storm; Policy.Config().Budget returns it (for its
	// Remaining, or to share it). Share one Budget between the policies that
	// call the same downstream.
	//
	// The budget is on by default because a Policy is usually shared by
	// concurrent callers (a pipeline, an HTTP transport, a gRPC client),
	// where retries without one multiply the load on a failing downstream by
	// up to MaxAttempts, and the policy cannot tell that use from a single
	// caller's. A refusal is visible: budget_exhausted, with a message that
	// says what the budget allowed and how to raise it (a *BudgetError).
	Budget *Budget
	// NoBudget turns the default budget off: retries are then bounded by
	// MaxAttempts alone, and Warnings reports it. It is the setting for a
	// single caller that calls sequentially (a worker draining a queue):
	// such a caller sends one request at a time whatever it retries, so a
	// budget protects the downstream from nothing and only drops its work.
	// Default false.
	NoBudget bool
	// Clock measures MaxElapsed. Default spillway.SystemClock. Context
	// deadlines are always compared with the time package's clock.
	Clock spillway.Clock
	// Observer receives an EventRetry per scheduled retry and an
	// EventRejection per budget refusal. Default nil: no events. A
	// spillway.Pipeline's Observer receives them too, without this field
	// (Policy.AttachObserver).
	Observer spillway.Observer
	// Rand returns a number in [0, 1) for jitter; values outside are clamped.
	// It must be safe for concurrent use. Default math/rand/v2's Float64.
	Rand func() float64
}

// Policy retries failed calls with backoff and jitter, within its attempts,
// its budget and the context's deadline. It implements spillway.Retrier for
// pipelines and runs calls on its own with Run and Do.
//
// A Policy is immutable but for the observers attached to it, and safe for
// concurrent use; one execution's state is a spillway.RetryState value, so
// executions share nothing but the Budget.
type Policy struct {
	cfg  Config
	rand func() float64
	// obs is cfg.Observer and the observers attached since (AttachObserver).
	obs spillway.ObserverSet
}

var _ spillway.Retrier = (*Policy)(nil)

// New validates cfg, fills in its defaults and returns the Policy. The error
// names the offending field.
func New(cfg Config) (*Policy, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	p := &Policy{cfg: cfg, rand: cfg.Rand}
	p.obs.SetOwn(cfg.Observer)
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

// normalize validates c and replaces its zero fields with their defaults.
func (c *Config) normalize() error {
	switch {
	case c.MaxAttempts < 0:
		return fmt.Errorf("retry: MaxAttempts must be at least 1 (0 means %d), got %d", DefaultMaxAttempts, c.MaxAttempts)
	case c.Backoff > Decorrelated:
		return fmt.Errorf("retry: Backoff must be constant, exponential or decorrelated, got %s", c.Backoff)
	case c.Jitter > DecorrelatedJitter:
		return fmt.Errorf("retry: Jitter must be none, full, equal or decorrelated, got %s", c.Jitter)
	case c.Initial < 0:
		return fmt.Errorf("retry: Initial must not be negative, got %s", c.Initial)
	case c.Max < 0:
		return fmt.Errorf("retry: Max must not be negative, got %s", c.Max)
	case c.MaxElapsed < 0:
		return fmt.Errorf("retry: MaxElapsed must not be negative, got %s", c.MaxElapsed)
	case c.Multiplier != 0 && !(c.Multiplier >= 1 && !math.IsInf(c.Multiplier, 1)):
		return fmt.Errorf("retry: Multiplier must be a finite number of at least 1, got %v", c.Multiplier)
	}
	// FullJitter and Exponential are the zero values, so only an explicit
	// other kind can contradict the decorrelated scheme.
	switch {
	case c.Backoff == Decorrelated && (c.Jitter == NoJitter || c.Jitter == EqualJitter):
		return fmt.Errorf("retry: Jitter %s contradicts Backoff decorrelated, which has its own jitter", c.Jitter)
	case c.Jitter == DecorrelatedJitter && c.Backoff == Constant:
		return fmt.Errorf("retry: Backoff constant contradicts Jitter decorrelated, which sets its own backoff")
	case c.Backoff == Decorrelated || c.Jitter == DecorrelatedJitter:
		c.Backoff, c.Jitter = Decorrelated, DecorrelatedJitter
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Initial == 0 {
		c.Initial = DefaultInitial
	}
	if c.Max == 0 {
		c.Max = DefaultMax
	}
	if c.Initial > c.Max {
		return fmt.Errorf("retry: Initial %s must not exceed Max %s", c.Initial, c.Max)
	}
	switch {
	case c.MaxRetryAfter < 0:
		return fmt.Errorf("retry: MaxRetryAfter must not be negative, got %s", c.MaxRetryAfter)
	case c.MaxRetryAfter == 0:
		c.MaxRetryAfter = c.Max
	}
	if c.Multiplier == 0 {
		c.Multiplier = DefaultMultiplier
	}
	c.Clock = spillway.ClockOrSystem(c.Clock)
	switch {
	case c.NoBudget && c.Budget != nil:
		return errors.New("retry: NoBudget contradicts Budget: set one or the other")
	case c.Budget == nil && !c.NoBudget && c.MaxAttempts > 1:
		c.Budget = MustNewBudget(BudgetConfig{Clock: c.Clock})
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return nil
}

// Config returns the policy's configuration with every default filled in.
// Its Budget is the budget the policy uses, the policy's own when Config
// gave none (nil with NoBudget, or when MaxAttempts is 1).
func (p *Policy) Config() Config { return p.cfg }

// AttachObserver makes the policy report its retries and its budget's
// refusals to o too, besides Config.Observer, for the rest of its life
// (spillway.ObserverAttacher: a pipeline attaches its Observer); o gets
// each event once even when it is also Config.Observer.
func (p *Policy) AttachObserver(o spillway.Observer) { p.obs.Attach(o) }

// With returns a new Policy with the settings fn sets and all the others of
// p: fn receives p's Config (every default filled in, Budget the budget p
// uses, its own included) and modifies it, so the new Policy shares p's
// budget and its counts.
//
//	rp, err = rp.With(func(c *retry.Config) { c.MaxAttempts = 5 })
//
// A Policy is immutable: a runtime change is a new Policy that replaces the
// old one where it is used. The observers attached to p (AttachObserver) are
// not p's Config: the new Policy reports to its Config.Observer only, until
// a pipeline it is put in attaches its own. New, by contrast, starts from zero: a partial
// Config resets every field it leaves out, and a budget of the policy's own
// starts with empty counts. A MaxRetryAfter left at its default (Max)
// follows a new Max; moving Backoff or Jitter off the decorrelated scheme
// moves the other too; NoBudget drops the budget. p is unchanged; so it is
// when the result is invalid, and With returns New's error.
func (p *Policy) With(fn func(*Config)) (*Policy, error) {
	cur := p.cfg
	next := cur
	fn(&next)
	if next.MaxRetryAfter == cur.MaxRetryAfter && cur.MaxRetryAfter == cur.Max {
		next.MaxRetryAfter = 0 // derived again from the new Max
	}
	if cur.Backoff == Decorrelated {
		switch {
		case next.Backoff != Decorrelated && next.Jitter == DecorrelatedJitter:
			next.Jitter = FullJitter
		case next.Jitter != DecorrelatedJitter && next.Backoff == Decorrelated:
			next.Backoff = Exponential
		}
	}
	if next.NoBudget && next.Budget == cur.Budget {
		next.Budget = nil
	}
	return New(next)
}

// Warnings returns the settings of c that are valid but probably not meant,
// in the words of `spillway validate`. It assumes c is valid.
func (c Config) Warnings() []string {
	var w []string
	attempts := c.MaxAttempts
	if attempts == 0 {
		attempts = DefaultMaxAttempts
	}
	if attempts > 1 && c.NoBudget {
		w = append(w, fmt.Sprintf("retries without a budget: while the downstream fails, the callers that share this policy send it up to %d times their normal load "+
			"(right for a single caller that calls sequentially; otherwise unset NoBudget)", attempts))
	}
	if c.Multiplier != 0 && (c.Backoff != Exponential || c.Jitter == DecorrelatedJitter) {
		w = append(w, "Multiplier is ignored: only exponential backoff uses it")
	}
	return w
}

// Begin starts one execution: it records a request in the budget and, when
// MaxElapsed is set, the start time. It is the only cost of an execution
// whose first attempt succeeds.
func (p *Policy) Begin() spillway.RetryState {
	var s spillway.RetryState
	if p.cfg.Budget != nil {
		p.cfg.Budget.Request()
	}
	if p.cfg.MaxElapsed > 0 {
		s.Start = p.cfg.Clock.Nanotime()
	}
	return s
}

// Next decides what follows the failure err of attempt s.Attempts (err must
// not be nil). It returns the state and delay of the next attempt, or the
// error to stop with:
//   - err itself when it is not retryable: ctx is done, err is a rejection,
//     permanent, a panic, a cancellation, or Retryable refused it;
//   - a *spillway.Error with ErrExhausted and Cause err when the attempts ran
//     out or the next attempt could not start before ctx's deadline or
//     MaxElapsed;
//   - a *spillway.Error with ErrBudgetExhausted and Cause err when the budget
//     refused the retry.
//
// The delay is the backoff (capped at Max), raised to err's Retry-After hint
// if larger, the hint capped at MaxRetryAfter.
func (p *Policy) Next(ctx context.Context, s spillway.RetryState, err error) (spillway.RetryState, time.Duration, error) {
	if !p.retryable(ctx, err) {
		return s, 0, err
	}
	if s.Attempts >= p.cfg.MaxAttempts {
		return s, 0, p.exhausted(err)
	}
	delay := p.Delay(s.Attempts, s.Prev)
	if hint, ok := spillway.RetryAfterOf(err); ok && hint > delay {
		delay = max(delay, min(hint, p.cfg.MaxRetryAfter))
	}
	if dl, ok := ctx.Deadline(); ok && delay >= time.Until(dl) {
		return s, 0, p.exhausted(err)
	}
	if p.cfg.MaxElapsed > 0 && time.Duration(p.cfg.Clock.Nanotime()-s.Start)+delay >= p.cfg.MaxElapsed {
		return s, 0, p.exhausted(err)
	}
	// The budget is asked last, so that it pays only for retries that happen.
	if b := p.cfg.Budget; b != nil && !b.TryRetry() {
		if o := p.obs.Load(); o != nil {
			o.Observe(spillway.Event{Kind: spillway.EventRejection, Context: ctx, Policy: "budget", Name: p.cfg.Name, Reason: spillway.ReasonBudgetExhausted})
		}
		return s, 0, &spillway.Error{Code: spillway.ReasonBudgetExhausted, Policy: "budget", Name: p.cfg.Name, Err: b.refusal(), Cause: err}
	}
	if o := p.obs.Load(); o != nil {
		o.Observe(spillway.Event{Kind: spillway.EventRetry, Context: ctx, Policy: "retry", Name: p.cfg.Name, Attempt: s.Attempts, Delay: delay, Err: err})
	}
	s.Prev = delay
	return s, delay, nil
}

// retryable applies the safe defaults, which no Retryable can override,
// then Retryable.
func (p *Policy) retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || spillway.IsRejection(err) || spillway.IsPermanent(err) {
		return false
	}
	if _, ok := errors.AsType[*spillway.PanicError](err); ok {
		return false
	}
	// A cancellation is deliberate even when ctx is alive (a sibling
	// context was canceled): retrying it would undo the decision.
	if errors.Is(err, context.Canceled) {
		return false
	}
	return p.cfg.Retryable == nil || p.cfg.Retryable(err)
}

func (p *Policy) exhausted(last error) error {
	return &spillway.Error{Code: spillway.ReasonOf(last), Policy: "retry", Name: p.cfg.Name, Err: ErrExhausted, Cause: last}
}

// Run calls fn until it succeeds or the policy stops, sleeping the backoff
// between attempts, and returns nil or the final error (see Next). It never
// calls fn on a done ctx: if ctx ends before the first attempt or during a
// backoff, Run returns ctx's cause, and a spillway *Error cause (a total
// timeout) gets the last attempt's error as its Cause, as in a
// spillway.Pipeline.
func (p *Policy) Run(ctx context.Context, fn func(context.Context) error) error {
	_, err := Do(ctx, p, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// Do is Run for a call that returns a value: it returns the last attempt's
// value with the final error (the zero T if no attempt ran). Its loop is
// spillway.Retry, the one every pipeline and integration runs.
func Do[T any](ctx context.Context, p *Policy, fn func(context.Context) (T, error)) (T, error) {
	var v T
	if ctx.Err() != nil {
		return v, context.Cause(ctx)
	}
	s := p.Begin()
	v, err := fn(ctx)
	if err == nil {
		return v, nil
	}
	return retryAfter(ctx, p, s, v, err, fn)
}

// retryAfter goes on with Do after its first attempt failed with err (its
// value v). It is a function of its own so that the first attempt's path,
// the common one, captures nothing for the retry loop's closure.
func retryAfter[T any](ctx context.Context, p *Policy, s spillway.RetryState, v T, err error, fn func(context.Context) (T, error)) (T, error) {
	_, err = spillway.Retry(ctx, p, &s, err, func(int) (bool, error) {
		var err error
		v, err = fn(ctx)
		return true, err
	}, nil)
	return v, err
}
