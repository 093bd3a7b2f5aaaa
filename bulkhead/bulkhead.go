// Package bulkhead limits how many calls run at once, so that one slow
// dependency cannot take every goroutine, connection or thread with it.
//
// A [Bulkhead] admits up to MaxConcurrent calls (default 100). A call that
// finds it full waits in a FIFO queue of at most MaxWaiting callers (default
// 0: it is refused at once), for at most MaxWait (default 0: until its
// context ends). A refused call gets a *spillway.Error with Reason
// [spillway.ReasonBulkheadFull] that wraps [ErrFull]; a caller whose context
// ends while it waits gets the context's error (context.Cause) instead, since
// it was the caller, not the bulkhead, that gave up.
//
// Both limits can be changed at run time with Resize, and the whole
// configuration with Update, keeping the calls in flight and in the queue.
//
// # Adaptive limit
//
// With Config.Adaptive the limit is not fixed: it moves between
// Adaptive.MinConcurrent and MaxConcurrent with the downstream's latency
// (Gradient2, Vegas) or its drops (AIMD), learning from each released call's
// round-trip time on Adaptive.Clock. Limit reports the current limit; the
// queue (MaxWaiting, MaxWait) works against it as against a fixed one. See
// Adaptive and docs/overload.md.
//
// The algorithms are Netflix concurrency-limits', with Netflix's defaults
// but for Gradient2's: Tolerance 1.05 and Smoothing 0.3 instead of 1.5 and
// 0.2, and the queue added only within the tolerance. Measured in
// bench/overload, Netflix's values keep two thirds of a thrashing
// downstream's goodput at 2× overload, these 90 %, while the limit still
// grows to MaxConcurrent within about half a minute at flat latency.
//
// # Concurrency
//
// A Bulkhead is safe for concurrent use. While nobody waits, admitting and
// releasing a call is a compare-and-swap on an atomic counter: no lock, no
// allocation. The mutex and a channel per waiter are used only once the
// bulkhead is full and callers queue. The queue is strict FIFO: while anyone
// waits, a new arrival queues behind them instead of taking a slot that was
// just released, and a released slot goes to the oldest waiter.
//
// Bulkhead implements spillway.Guard and spillway.Releaser, so it can be one
// of a spillway.Pipeline's guards; Execute and Do run a single call.
package bulkhead

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// policyName is the Policy of this package's errors and events.
const policyName = "bulkhead"

// cacheLine is the size of a CPU cache line (64 bytes on amd64 and most arm64).
const cacheLine = 64

// DefaultMaxConcurrent is the MaxConcurrent of a zero Config.
const DefaultMaxConcurrent = 100

// ErrFull is the sentinel of the error a Bulkhead refuses a call with:
// errors.Is(err, ErrFull) reports a full bulkhead (or a wait that exceeded
// MaxWait).
var ErrFull = errors.New("bulkhead full")

// Config configures a Bulkhead. Its zero value is a bulkhead of 100
// concurrent calls and no queue.
type Config struct {
	// Name identifies the bulkhead in errors and events. Default "".
	Name string
	// MaxConcurrent is how many calls may run at once; with Adaptive, the
	// upper bound of the adaptive limit. Default 0 means 100; negative
	// values are invalid.
	MaxConcurrent int
	// MaxWaiting is how many callers may wait for a slot when all are taken.
	// Default 0: a call that finds the bulkhead full is refused at once.
	MaxWaiting int
	// MaxWait is the longest a caller waits in the queue before it is
	// refused with ErrFull. Default 0: it waits until its context ends.
	MaxWait time.Duration
	// Observer receives an EventRejection (Reason bulkhead_full) for every
	// refused call. Default nil (no events). A spillway.Pipeline's Observer
	// receives them too, without this field (Bulkhead.AttachObserver). An
	// adaptive limit's changes are not events (there may be ten a second):
	// read Limit.
	Observer spillway.Observer
	// Adaptive makes the limit adaptive. Default: a fixed MaxConcurrent.
	Adaptive Adaptive
}

// Bulkhead limits the number of concurrent calls. Create one with New.
// Execute and Do run a call under it; Acquire and ReleasePermit (through
// Permit.Release) are the two halves for callers that manage the call
// themselves, such as a spillway.Pipeline.
type Bulkhead struct {
	// inFlight counts the admitted calls. A slot handed to a waiter is
	// counted here by the hander, before the waiter wakes. It is written by
	// every call, so it has a cache line of its own: the read-mostly fields
	// below then stay shared between cores instead of bouncing with it.
	inFlight atomic.Int64
	_        [cacheLine - 8]byte
	// waiting mirrors the queue's length (it changes only under mu) so that
	// the lock-free path can see that someone waits and not barge.
	waiting    atomic.Int64
	limit      atomic.Int64
	maxWaiting atomic.Int64
	rejected   atomic.Uint64
	// adaptive is the adaptive limit's state, nil for a fixed limit.
	adaptive atomic.Pointer[limiter]
	// maxConcurrent is Config.MaxConcurrent (the limit's upper bound).
	maxConcurrent atomic.Int64

	// maxWait is read by the callers that queue only (the slow path).
	maxWait atomic.Int64
	// obs is Config.Observer and the observers attached since
	// (AttachObserver), read once per refusal.
	obs spillway.ObserverSet
	// errFull is preallocated: refusing a call allocates nothing.
	errFull *spillway.Error

	mu         sync.Mutex // guards the queue
	head, tail *waiter
}

// waiter is one caller in the queue.
type waiter struct {
	// ready is closed when the waiter is granted a slot.
	ready chan struct{}
	// granted is set, under mu, when a slot is handed to the waiter.
	granted    bool
	prev, next *waiter
}

var (
	_ spillway.Guard    = (*Bulkhead)(nil)
	_ spillway.Releaser = (*Bulkhead)(nil)
)

// New returns a Bulkhead configured by cfg, or an error naming the invalid field.
func New(cfg Config) (*Bulkhead, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	b := &Bulkhead{
		errFull: &spillway.Error{Code: spillway.ReasonBulkheadFull, Policy: policyName, Name: cfg.Name, Err: ErrFull},
	}
	b.obs.SetOwn(cfg.Observer)
	b.set(cfg, cfg.Adaptive.InitialLimit)
	return b, nil
}

// resolve checks cfg and fills its defaults.
func (cfg Config) resolve() (Config, error) {
	switch {
	case cfg.MaxConcurrent < 0:
		return cfg, fmt.Errorf("bulkhead: MaxConcurrent must be >= 0 (0 means %d), got %d", DefaultMaxConcurrent, cfg.MaxConcurrent)
	case cfg.MaxWaiting < 0:
		return cfg, fmt.Errorf("bulkhead: MaxWaiting must be >= 0, got %d", cfg.MaxWaiting)
	case cfg.MaxWait < 0:
		return cfg, fmt.Errorf("bulkhead: MaxWait must be >= 0, got %v", cfg.MaxWait)
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.Adaptive.Algorithm == Static {
		return cfg, nil
	}
	var err error
	cfg.Adaptive, err = cfg.Adaptive.resolve(cfg.MaxConcurrent)
	return cfg, err
}

// set installs a resolved cfg; an adaptive limit starts at limit (clamped).
// It requires b.mu, or b not yet shared.
func (b *Bulkhead) set(cfg Config, limit int) {
	b.maxWaiting.Store(int64(cfg.MaxWaiting))
	b.maxWait.Store(int64(cfg.MaxWait))
	b.maxConcurrent.Store(int64(cfg.MaxConcurrent))
	if cfg.Adaptive.Algorithm == Static {
		b.adaptive.Store(nil)
		b.limit.Store(int64(cfg.MaxConcurrent))
		return
	}
	if l := b.adaptive.Load(); l != nil && l.same(cfg) {
		return // only the queue changed: the limit keeps learning
	}
	limit = min(max(limit, cfg.Adaptive.MinConcurrent), cfg.MaxConcurrent)
	b.adaptive.Store(newLimiter(cfg.Adaptive, cfg.MaxConcurrent, limit))
	b.limit.Store(int64(limit))
}

// Update applies cfg at run time in place: the limits, the queue and the
// adaptive settings (Name and Observer stay those of New). Calls in flight
// and in the queue keep their place, as with Resize. When only the queue
// changes (MaxWaiting, MaxWait), an adaptive limit goes on as it was;
// otherwise it keeps its current value, clamped into the new bounds, and
// its algorithm starts learning afresh from there (Adaptive.Drop is
// replaced then only). One that becomes adaptive starts from the fixed
// limit it had, clamped. A fixed limit becomes MaxConcurrent.
func (b *Bulkhead) Update(cfg Config) error {
	cfg, err := cfg.resolve()
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.set(cfg, b.Limit())
	b.dispatchLocked()
	b.mu.Unlock()
	return nil
}

// MustNew is like New but panics if cfg is invalid.
func MustNew(cfg Config) *Bulkhead {
	b, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return b
}

// Name returns the bulkhead's name (Config.Name), the Name of its errors
// and events.
func (b *Bulkhead) Name() string { return b.errFull.Name }

// PolicyKind returns "bulkhead" (spillway.Kinded): a pipeline refuses a
// bulkhead given as its Breaker.
func (b *Bulkhead) PolicyKind() string { return "bulkhead" }

// AttachObserver makes the bulkhead report its refusals to o too, besides
// Config.Observer, for the rest of its life (spillway.ObserverAttacher: a
// pipeline attaches its Observer); o gets each event once even when it is
// also Config.Observer.
func (b *Bulkhead) AttachObserver(o spillway.Observer) { b.obs.Attach(o) }

// InFlight returns the number of admitted calls not yet released. Right
// after a Resize that shrank the bulkhead it may exceed Limit.
func (b *Bulkhead) InFlight() int { return int(b.inFlight.Load()) }

// Waiting returns the number of callers waiting for a slot.
func (b *Bulkhead) Waiting() int { return int(b.waiting.Load()) }

// Limit returns the current limit: MaxConcurrent, or the adaptive limit.
func (b *Bulkhead) Limit() int { return int(b.limit.Load()) }

// MaxWaiting returns the current MaxWaiting.
func (b *Bulkhead) MaxWaiting() int { return int(b.maxWaiting.Load()) }

// Rejected returns the number of calls refused with ErrFull since New:
// those that found the queue full and those that waited longer than
// MaxWait. Callers whose context ended while waiting are not counted.
func (b *Bulkhead) Rejected() uint64 { return b.rejected.Load() }

// Resize sets MaxConcurrent and MaxWaiting at run time; both must be given
// explicitly, with Config's meaning: maxConcurrent 0 means
// DefaultMaxConcurrent (as a zero Config.MaxConcurrent does), a negative
// one is an error, and maxWaiting must be >= 0. Growing admits waiting
// callers at once. Shrinking cuts nobody short: calls in flight finish, and
// no one is admitted until fewer than maxConcurrent are in flight; callers
// already queued keep their place even if there are now more of them than
// maxWaiting. An adaptive limit takes maxConcurrent as its upper bound and
// is clamped to it; maxConcurrent below its MinConcurrent is an error.
func (b *Bulkhead) Resize(maxConcurrent, maxWaiting int) error {
	switch {
	case maxConcurrent < 0:
		return fmt.Errorf("bulkhead: Resize maxConcurrent must be >= 0 (0 means %d), got %d", DefaultMaxConcurrent, maxConcurrent)
	case maxWaiting < 0:
		return fmt.Errorf("bulkhead: Resize maxWaiting must be >= 0, got %d", maxWaiting)
	case maxConcurrent == 0:
		maxConcurrent = DefaultMaxConcurrent
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.adaptive.Load(); l != nil {
		if maxConcurrent < int(l.lo) {
			return fmt.Errorf("bulkhead: Resize maxConcurrent %d is below the adaptive MinConcurrent %d", maxConcurrent, int(l.lo))
		}
		cfg := Config{MaxConcurrent: maxConcurrent, MaxWaiting: maxWaiting, MaxWait: b.MaxWait(), Adaptive: l.cfg}
		b.set(cfg, b.Limit())
	} else {
		b.limit.Store(int64(maxConcurrent))
		b.maxConcurrent.Store(int64(maxConcurrent))
		b.maxWaiting.Store(int64(maxWaiting))
	}
	b.dispatchLocked()
	return nil
}

// MaxWait returns how long a queued caller waits for a slot (0: until its
// context ends).
func (b *Bulkhead) MaxWait() time.Duration { return time.Duration(b.maxWait.Load()) }

// SetMaxWait sets MaxWait at run time (d >= 0). Callers already queued keep
// the limit they started waiting with.
func (b *Bulkhead) SetMaxWait(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("bulkhead: SetMaxWait d must be >= 0, got %v", d)
	}
	b.maxWait.Store(int64(d))
	return nil
}

// TryAcquire admits a call if a slot is free and nobody is waiting for one,
// without waiting. A refusal is not counted in Rejected nor reported: the
// caller decides what a refusal means.
func (b *Bulkhead) TryAcquire() (spillway.Permit, bool) {
	n, ok := b.tryAcquire()
	if !ok {
		return spillway.Permit{}, false
	}
	return b.permit(n), true
}

// Acquire admits a call, waiting in the queue if the bulkhead is full and
// the queue has room. It returns a Permit that must be released exactly once
// (Permit.Release), or the bulkhead's *spillway.Error (ErrFull) when the
// queue is full or the wait exceeded MaxWait, or context.Cause(ctx) when ctx
// ended while waiting. ctx is not consulted when a slot is free at once.
func (b *Bulkhead) Acquire(ctx context.Context) (spillway.Permit, error) {
	if n, ok := b.tryAcquire(); ok {
		return b.permit(n), nil
	}
	if err := b.acquireSlow(ctx); err != nil {
		return spillway.Permit{}, err
	}
	// A queued call's round trip starts now, not when it began to wait.
	return b.permit(max(1, b.inFlight.Load())), nil
}

// ReleasePermit gives back the slot of a permit Acquire or TryAcquire
// returned. The call's outcome err matters only to an adaptive limit, which
// samples the call's round-trip time (see Adaptive.Drop). A permit that b
// did not issue (the zero Permit included) is ignored. Releasing the same
// permit twice corrupts the count and panics if it goes negative.
func (b *Bulkhead) ReleasePermit(p spillway.Permit, err error) {
	if p.Releaser() != spillway.Releaser(b) {
		return
	}
	b.release()
	if start, n := p.Words(); n != 0 {
		if l := b.adaptive.Load(); l != nil {
			l.sample(b, int64(start), int64(n), err)
		}
	}
}

// Execute runs fn under the bulkhead: it acquires a slot (see Acquire), runs
// fn and releases the slot with fn's error, also when fn panics (the panic
// goes on).
func (b *Bulkhead) Execute(ctx context.Context, fn func(context.Context) error) error {
	p, err := b.Acquire(ctx)
	if err != nil {
		return err
	}
	done := false
	defer b.releaseUnlessDone(p, &done)
	err = fn(ctx)
	done = true
	b.ReleasePermit(p, err)
	return err
}

// Do is Execute for a function that returns a value.
func Do[T any](ctx context.Context, b *Bulkhead, fn func(context.Context) (T, error)) (T, error) {
	p, err := b.Acquire(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	done := false
	defer b.releaseUnlessDone(p, &done)
	v, err := fn(ctx)
	done = true
	b.ReleasePermit(p, err)
	return v, err
}

// tryAcquire is the lock-free path: it takes a slot if one is free and the
// queue is empty, and returns the calls in flight with it.
func (b *Bulkhead) tryAcquire() (int64, bool) {
	for {
		if b.waiting.Load() != 0 {
			return 0, false
		}
		n := b.inFlight.Load()
		if n >= b.limit.Load() {
			return 0, false
		}
		if b.inFlight.CompareAndSwap(n, n+1) {
			return n + 1, true
		}
	}
}

// tryIncrement takes a slot if one is free, regardless of the queue.
func (b *Bulkhead) tryIncrement() bool {
	for {
		n := b.inFlight.Load()
		if n >= b.limit.Load() {
			return false
		}
		if b.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// acquireSlow admits a caller that tryAcquire could not: through the queue,
// or not at all. It returns nil once a slot is counted for the caller.
func (b *Bulkhead) acquireSlow(ctx context.Context) error {
	// Without a queue there is nothing to lock for: the bulkhead was full.
	if b.maxWaiting.Load() == 0 && b.waiting.Load() == 0 {
		return b.reject(ctx)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	b.mu.Lock()
	if b.head == nil && b.tryIncrement() {
		b.mu.Unlock()
		return nil
	}
	if b.waiting.Load() >= b.maxWaiting.Load() {
		b.mu.Unlock()
		return b.reject(ctx)
	}
	w := &waiter{ready: make(chan struct{})}
	b.pushLocked(w)
	// A release that read waiting == 0 just before pushLocked published
	// this waiter did not dispatch; a slot it freed is picked up here.
	// (pushLocked's store and dispatchLocked's load of inFlight pair with
	// release's decrement and load of waiting: one side sees the other.)
	b.dispatchLocked()
	granted := w.granted
	b.mu.Unlock()
	if granted {
		return nil
	}
	return b.wait(ctx, w)
}

// wait blocks until w is granted a slot, ctx ends or MaxWait passes.
func (b *Bulkhead) wait(ctx context.Context, w *waiter) error {
	var expired <-chan time.Time
	if mw := time.Duration(b.maxWait.Load()); mw > 0 {
		t := time.NewTimer(mw)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		if b.leave(w) {
			// The slot arrived as the caller left: pass it on.
			b.release()
		}
		return context.Cause(ctx)
	case <-expired:
		if b.leave(w) {
			// The slot arrived just in time and the caller is still there.
			return nil
		}
		return b.reject(ctx)
	}
}

// leave takes w out of the queue, unless it was granted a slot meanwhile;
// it reports whether it was. Either way the slot is counted exactly once:
// by the hander for a granted waiter, by no one for one that left.
func (b *Bulkhead) leave(w *waiter) (granted bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.granted {
		return true
	}
	b.removeLocked(w)
	return false
}

// release gives back one slot and, if anyone waits, hands it on.
func (b *Bulkhead) release() {
	if b.inFlight.Add(-1) < 0 {
		panic("bulkhead: permit released more often than acquired")
	}
	if b.waiting.Load() != 0 {
		b.mu.Lock()
		b.dispatchLocked()
		b.mu.Unlock()
	}
}

// dispatchLocked hands free slots to the oldest waiters, counting each slot
// in inFlight before waking its waiter. It requires that b.mu is held.
func (b *Bulkhead) dispatchLocked() {
	for b.head != nil {
		n := b.inFlight.Load()
		if n >= b.limit.Load() {
			return
		}
		if !b.inFlight.CompareAndSwap(n, n+1) {
			continue
		}
		w := b.head
		b.removeLocked(w)
		w.granted = true
		close(w.ready)
	}
}

// pushLocked appends w to the queue. It requires that b.mu is held.
func (b *Bulkhead) pushLocked(w *waiter) {
	w.prev = b.tail
	if b.tail != nil {
		b.tail.next = w
	} else {
		b.head = w
	}
	b.tail = w
	b.waiting.Add(1)
}

// removeLocked unlinks w from the queue. It requires that b.mu is held.
func (b *Bulkhead) removeLocked(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		b.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		b.tail = w.prev
	}
	w.prev, w.next = nil, nil
	b.waiting.Add(-1)
}

// reject counts and reports a refusal and returns the preallocated error.
func (b *Bulkhead) reject(ctx context.Context) error {
	b.rejected.Add(1)
	if o := b.obs.Load(); o != nil {
		o.Observe(spillway.Event{Kind: spillway.EventRejection, Context: ctx, Policy: policyName, Name: b.errFull.Name,
			Reason: spillway.ReasonBulkheadFull})
	}
	return b.errFull
}
