package chaos

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// policyName is the Policy of this package's errors.
const policyName = "chaos"

// ErrInjected is the sentinel of every error a Policy injects:
// errors.Is(err, ErrInjected) tells an injected fault from a real one.
var ErrInjected = errors.New("injected fault")

// Kind says what a Policy injects.
type Kind uint8

const (
	// Fault injects an error in place of the call.
	Fault Kind = iota + 1
	// Latency delays the call.
	Latency
	// Outcome injects a substitute result (a value or an error) in place of
	// the call.
	Outcome
	// Behavior runs a function before the call.
	Behavior
)

var kindNames = [...]string{"", "fault", "latency", "outcome", "behavior"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Config configures a Policy. Every field is optional; a zero Config makes
// a disabled policy with rate 0.
type Config struct {
	// Name identifies the policy in its errors. Default "".
	Name string
	// Enabled is the switch's initial state; SetEnabled flips it. Default
	// false: chaos is opt-in.
	Enabled bool
	// Rate is the initial share of calls that get the fault, from 0 (none)
	// to 1 (all); SetRate changes it.
	Rate float64
	// EnabledFunc, when set, decides per call, from the call's context,
	// whether an enabled policy injects at all (Polly's EnabledGenerator):
	// to target one tenant, one test's requests. It is not called while the
	// switch is off. It must be safe for concurrent use.
	EnabledFunc func(ctx context.Context) bool
	// RateFunc, when set, returns the rate of this call in place of Rate
	// (Polly's InjectionRateGenerator). It must be safe for concurrent use.
	RateFunc func(ctx context.Context) float64
	// Rand returns a number in [0, 1) per call of an enabled policy whose
	// rate is strictly between 0 and 1. Default math/rand/v2's Float64. A
	// seeded source (rand.New(rand.NewPCG(1, 2)).Float64) makes a test
	// deterministic; it must then be called from one goroutine at a time,
	// or be safe for concurrent use.
	Rand func() float64
	// OnInject, when set, is called on the call's goroutine each time the
	// policy injects, before the fault takes effect (Polly's
	// OnFaultInjected and its kin). It must be fast and must not block.
	OnInject func(ctx context.Context, k Kind)
}

// Policy injects one kind of fault into a share of the calls it sees. It is
// a spillway.Injector[T]: it runs inside a pipeline's attempts. It is safe
// for concurrent use; its switch and its rate can change at run time. Build
// one with NewFault, NewLatency, NewOutcome or NewBehavior.
type Policy[T any] struct {
	enabled atomic.Bool
	rate    atomic.Uint64 // math.Float64bits of the rate
	name    string
	kind    Kind
	cfg     Config
	// err is the error a Fault policy injects, built once.
	err      *spillway.Error
	latency  time.Duration
	outcome  func(context.Context) (T, error)
	behavior func(context.Context) error
}

// NewFault returns a policy that fails the calls it picks with err instead
// of running them: a *spillway.Error wrapping ErrInjected and err (built
// once: the policy allocates nothing per injection), whose reason is err's.
// A nil err injects ErrInjected alone, with spillway.ReasonUpstreamError.
func NewFault[T any](cfg Config, err error) (*Policy[T], error) {
	return newPolicy(cfg, &Policy[T]{kind: Fault, err: wrap(cfg.Name, err)})
}

// NewLatency returns a policy that delays the calls it picks by d (> 0)
// before running them. A context that ends during the delay ends the
// attempt at once with the context's cause, as a slow call would.
func NewLatency[T any](cfg Config, d time.Duration) (*Policy[T], error) {
	if d <= 0 {
		return nil, fmt.Errorf("chaos: latency %s must be positive", d)
	}
	return newPolicy(cfg, &Policy[T]{kind: Latency, latency: d})
}

// NewOutcome returns a policy that answers the calls it picks with fn's
// result instead of running them: a substitute value (an HTTP 503
// response, a stale record), or an error, which is wrapped as NewFault's
// is.
func NewOutcome[T any](cfg Config, fn func(ctx context.Context) (T, error)) (*Policy[T], error) {
	if fn == nil {
		return nil, errors.New("chaos: NewOutcome needs a function")
	}
	return newPolicy(cfg, &Policy[T]{kind: Outcome, outcome: fn})
}

// NewBehavior returns a policy that runs fn before the calls it picks (to
// drop a cache, kill a connection, spend CPU). An error from fn fails the
// call instead of running it, wrapped as NewFault's is.
func NewBehavior[T any](cfg Config, fn func(ctx context.Context) error) (*Policy[T], error) {
	if fn == nil {
		return nil, errors.New("chaos: NewBehavior needs a function")
	}
	return newPolicy(cfg, &Policy[T]{kind: Behavior, behavior: fn})
}

// newPolicy completes p, which holds its kind and what it injects, with cfg.
func newPolicy[T any](cfg Config, p *Policy[T]) (*Policy[T], error) {
	if err := checkRate(cfg.Rate); err != nil {
		return nil, err
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	p.name, p.cfg = cfg.Name, cfg
	p.enabled.Store(cfg.Enabled)
	p.rate.Store(math.Float64bits(cfg.Rate))
	return p, nil
}

func checkRate(r float64) error {
	if !(r >= 0 && r <= 1) { // NaN fails both
		return fmt.Errorf("chaos: rate %v is not between 0 and 1", r)
	}
	return nil
}

// Inject implements spillway.Injector. A disabled policy returns at once
// after one atomic load.
func (p *Policy[T]) Inject(ctx context.Context) (v T, replaced bool, err error) {
	if !p.enabled.Load() {
		return v, false, nil
	}
	return p.inject(ctx)
}

// inject is Inject for an enabled policy: it rolls the dice and injects.
func (p *Policy[T]) inject(ctx context.Context) (v T, replaced bool, err error) {
	if !p.picks(ctx) {
		return v, false, nil
	}
	if p.cfg.OnInject != nil {
		p.cfg.OnInject(ctx, p.kind)
	}
	switch p.kind {
	case Fault:
		return v, true, p.err
	case Latency:
		if err := spillway.Sleep(ctx, p.latency); err != nil {
			return v, true, err
		}
		return v, false, nil
	case Outcome:
		v, err = p.outcome(ctx)
		if err != nil {
			return v, true, wrap(p.name, err)
		}
		return v, true, nil
	}
	if err := p.behavior(ctx); err != nil {
		return v, true, wrap(p.name, err)
	}
	return v, false, nil
}

// picks reports whether this call gets the fault.
func (p *Policy[T]) picks(ctx context.Context) bool {
	if p.cfg.EnabledFunc != nil && !p.cfg.EnabledFunc(ctx) {
		return false
	}
	rate := p.Rate()
	if p.cfg.RateFunc != nil {
		rate = p.cfg.RateFunc(ctx)
	}
	switch {
	case rate >= 1:
		return true
	case !(rate > 0): // NaN included
		return false
	}
	return p.cfg.Rand() < rate
}

// wrap returns the injected error of the policy named name standing for
// err (nil: ErrInjected).
func wrap(name string, err error) *spillway.Error {
	if err == nil {
		return &spillway.Error{Code: spillway.ReasonUpstreamError, Policy: policyName, Name: name, Err: ErrInjected}
	}
	return &spillway.Error{Code: spillway.ReasonOf(err), Policy: policyName, Name: name, Err: ErrInjected, Cause: err}
}

// SetEnabled switches the policy on or off; calls already injecting finish
// as they started.
func (p *Policy[T]) SetEnabled(on bool) { p.enabled.Store(on) }

// Switch returns the policy's on/off switch (spillway.Switched), which the
// Engine reads itself so that a disabled policy costs no call.
func (p *Policy[T]) Switch() *atomic.Bool { return &p.enabled }

// Enabled reports whether the switch is on.
func (p *Policy[T]) Enabled() bool { return p.enabled.Load() }

// SetRate changes the share of calls that get the fault, from 0 to 1; it
// refuses any other value (NaN included) and keeps the rate it had.
func (p *Policy[T]) SetRate(r float64) error {
	if err := checkRate(r); err != nil {
		return err
	}
	p.rate.Store(math.Float64bits(r))
	return nil
}

// Rate returns the share of calls that get the fault (Config.RateFunc, when
// set, decides in its place per call).
func (p *Policy[T]) Rate() float64 { return math.Float64frombits(p.rate.Load()) }

// Kind returns what the policy injects.
func (p *Policy[T]) Kind() Kind { return p.kind }

// Name returns the policy's name.
func (p *Policy[T]) Name() string { return p.name }

// PolicyKind returns "chaos" (spillway.Kinded).
func (p *Policy[T]) PolicyKind() string { return policyName }

// Must returns p, and panics if err is not nil: for policies written in
// code, chaos.Must(chaos.NewFault[string](cfg, nil)).
func Must[T any](p *Policy[T], err error) *Policy[T] {
	if err != nil {
		panic(err)
	}
	return p
}
