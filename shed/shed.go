// Package shed refuses the least important calls first when a downstream
// is under pressure (priority load shedding).
//
// A [Shedder] reads the pressure off a concurrency limiter — anything with
// InFlight and Limit, such as a *bulkhead.Bulkhead or an adaptive limiter
// whose limit moves — and compares its utilization, InFlight/Limit, with a
// threshold per class of spillway.Priority:
//
//	sheddable  admitted while utilization < SheddableBelow (default 50 %)
//	default    admitted while utilization < DefaultBelow   (default 90 %)
//	critical   always admitted by the shedder; the limiter itself refuses
//	           it once every slot is taken
//
// This is Netflix concurrency-limits' partitioned limit and Envoy's overload
// manager in one rule: the lower classes leave headroom that only the higher
// ones may use, so that as load rises the sheddable calls go first, then the
// default ones, and the critical ones keep the last slots. Because the rule
// reads the limiter's current Limit, shedding follows an adaptive limit as it
// moves.
//
// A call's class is spillway.PriorityOf(ctx) (spillway.WithPriority sets
// it); Admit takes one explicitly. A refused call gets a *spillway.Error with
// Reason [spillway.ReasonBulkheadFull] wrapping [ErrShed]: the refusal says
// the downstream is at capacity for this class, not that the caller sends
// too fast (that is ReasonThrottled, a rate limit's 429), and like a full
// bulkhead's it is a local rejection that breakers ignore and retries do not
// retry; the gateway answers it with 503.
//
// # Where it goes
//
// Ask the shedder before the limiter takes the call's slot, so that
// InFlight counts the others only (the gateway does so, and
// spillway.Compose can). In a spillway.Pipeline put it in Policies.Guards,
// which are acquired after Policies.Bulkhead: the call's own slot is then in
// the count and each shed class gets one slot less (with a limit of 10 and
// SheddableBelow 0.5, 4 sheddable calls run at once instead of 5).
//
// # Concurrency
//
// A Shedder is safe for concurrent use. Admitting a call is two atomic loads
// of the limiter's counters and one of the thresholds: no lock, no
// allocation; a refusal allocates nothing either. The thresholds can be
// changed at run time with SetThresholds.
package shed

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/spillway-dev/spillway"
)

// policyName is the Policy of this package's errors and events.
const policyName = "shed"

// The thresholds of a zero Config.
const (
	DefaultSheddableBelow = 0.5
	DefaultDefaultBelow   = 0.9
)

// ErrShed is the sentinel of the error a Shedder refuses a call with.
var ErrShed = errors.New("load shed")

// Limiter is the concurrency limiter whose utilization a Shedder reads:
// *bulkhead.Bulkhead, or an adaptive limiter (its Limit moves).
type Limiter interface {
	// InFlight returns the calls admitted and not yet released.
	InFlight() int
	// Limit returns how many calls may run at once now.
	Limit() int
}

// Config configures a Shedder. Only Limiter is required.
type Config struct {
	// Name identifies the shedder in errors and events. Default "".
	Name string
	// Limiter is the limiter whose utilization is the pressure. Required.
	Limiter Limiter
	// SheddableBelow is the utilization (InFlight/Limit) from which
	// sheddable calls are refused, in (0, 1]. Default 0 means 0.5; 1 never
	// sheds them (the limiter alone refuses them).
	SheddableBelow float64
	// DefaultBelow is the utilization from which default calls are
	// refused, in (0, 1] and not below SheddableBelow. Default 0 means 0.9.
	DefaultBelow float64
	// Observer receives an EventRejection (Reason bulkhead_full, Policy
	// "shed") for every refused call. Default nil (no events). A
	// spillway.Pipeline's Observer receives them too, without this field
	// (Shedder.AttachObserver).
	Observer spillway.Observer
}

// Shedder admits or refuses calls by their priority and the pressure on a
// Limiter. Create one with New. Acquire (the class from the context) and
// Admit (the class given) decide; it holds nothing, so its permits release
// nothing.
type Shedder struct {
	lim        Limiter
	thresholds atomic.Pointer[thresholds]
	shed       [2]atomic.Uint64 // by class: sheddable, default
	// obs is Config.Observer and the observers attached since
	// (AttachObserver).
	obs spillway.ObserverSet
	// errShed is preallocated: refusing a call allocates nothing.
	errShed *spillway.Error
}

// thresholds is one immutable pair, swapped whole by SetThresholds.
type thresholds struct{ sheddable, def float64 }

var (
	_ spillway.Guard    = (*Shedder)(nil)
	_ spillway.Releaser = (*Shedder)(nil)
)

// New returns a Shedder configured by cfg, or an error naming the invalid field.
func New(cfg Config) (*Shedder, error) {
	if cfg.Limiter == nil {
		return nil, errors.New("shed: Limiter is required")
	}
	th, err := checkThresholds(cfg.SheddableBelow, cfg.DefaultBelow)
	if err != nil {
		return nil, err
	}
	s := &Shedder{lim: cfg.Limiter,
		errShed: &spillway.Error{Code: spillway.ReasonBulkheadFull, Policy: policyName, Name: cfg.Name, Err: ErrShed}}
	s.thresholds.Store(th)
	s.obs.SetOwn(cfg.Observer)
	return s, nil
}

// MustNew is like New but panics if cfg is invalid.
func MustNew(cfg Config) *Shedder {
	s, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return s
}

// checkThresholds applies the defaults and checks the pair.
func checkThresholds(sheddable, def float64) (*thresholds, error) {
	if sheddable == 0 {
		sheddable = DefaultSheddableBelow
	}
	if def == 0 {
		def = DefaultDefaultBelow
	}
	switch {
	case !(sheddable > 0 && sheddable <= 1):
		return nil, fmt.Errorf("shed: SheddableBelow must be in (0, 1] (0 means %v), got %v", DefaultSheddableBelow, sheddable)
	case !(def > 0 && def <= 1):
		return nil, fmt.Errorf("shed: DefaultBelow must be in (0, 1] (0 means %v), got %v", DefaultDefaultBelow, def)
	case sheddable > def:
		return nil, fmt.Errorf("shed: SheddableBelow (%v) must not be above DefaultBelow (%v): sheddable calls would outlast default ones", sheddable, def)
	}
	return &thresholds{sheddable: sheddable, def: def}, nil
}

// Name returns the shedder's name (Config.Name).
func (s *Shedder) Name() string { return s.errShed.Name }

// PolicyKind returns "shed" (spillway.Kinded).
func (s *Shedder) PolicyKind() string { return policyName }

// AttachObserver makes the shedder report its refusals to o too, besides
// Config.Observer, for the rest of its life (spillway.ObserverAttacher: a
// pipeline attaches its Observer); o gets each event once even when it is
// also Config.Observer.
func (s *Shedder) AttachObserver(o spillway.Observer) { s.obs.Attach(o) }

// Thresholds returns the current SheddableBelow and DefaultBelow.
func (s *Shedder) Thresholds() (sheddable, def float64) {
	th := s.thresholds.Load()
	return th.sheddable, th.def
}

// SetThresholds changes both thresholds at run time, with Config's meaning
// (0: the default). Calls in flight are not affected.
func (s *Shedder) SetThresholds(sheddable, def float64) error {
	th, err := checkThresholds(sheddable, def)
	if err != nil {
		return err
	}
	s.thresholds.Store(th)
	return nil
}

// Shed returns how many calls of class p were refused since New (always 0
// for PriorityCritical, which the shedder never refuses).
func (s *Shedder) Shed(p spillway.Priority) uint64 {
	switch p {
	case spillway.PrioritySheddable:
		return s.shed[0].Load()
	case spillway.PriorityDefault:
		return s.shed[1].Load()
	}
	return 0
}

// Acquire admits or refuses a call of class spillway.PriorityOf(ctx); see
// Admit.
func (s *Shedder) Acquire(ctx context.Context) (spillway.Permit, error) {
	return spillway.Permit{}, s.Admit(ctx, spillway.PriorityOf(ctx))
}

// Admit returns nil when a call of class p may go on under the current
// pressure, or the shedder's *spillway.Error (ErrShed) when it is shed.
// A class above critical counts as critical, one below sheddable as
// sheddable. ctx is only passed to the Observer.
func (s *Shedder) Admit(ctx context.Context, p spillway.Priority) error {
	if p >= spillway.PriorityCritical {
		return nil
	}
	th := s.thresholds.Load()
	below, class := th.def, 1
	if p < spillway.PriorityDefault {
		below, class = th.sheddable, 0
	}
	if below >= 1 || float64(s.lim.InFlight()) < below*float64(s.lim.Limit()) {
		return nil
	}
	s.shed[class].Add(1)
	if o := s.obs.Load(); o != nil {
		o.Observe(spillway.Event{Kind: spillway.EventRejection, Context: ctx, Policy: policyName, Name: s.errShed.Name,
			Reason: spillway.ReasonBulkheadFull})
	}
	return s.errShed
}

// ReleasePermit does nothing: the shedder holds no slot of its own.
func (s *Shedder) ReleasePermit(spillway.Permit, error) {}
