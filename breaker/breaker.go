package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// ErrOpen is the sentinel of every rejection a breaker makes: errors.Is(err,
// ErrOpen) matches the *spillway.Error it returns.
var ErrOpen = errors.New("circuit breaker is open")

// The state word: the state in its low byte, flags in the next, the
// generation above. Acquire reads nothing else in the closed state, and a
// permit carries the word it was issued under.
const (
	stateMask = 0xff
	// flagTimed: Acquire reads the clock (slow-call detection is on, or the
	// permit is a probe) and the permit's second word is the start time.
	flagTimed = 1 << 8
	// flagSkip marks a permit whose outcome is not recorded: a call a
	// metrics-only breaker would have rejected.
	flagSkip = 1 << 9
	// flagRamp: closed and in a slow start (Config.SlowStart), which
	// Breaker.rampStart began; Acquire admits a growing share of calls.
	flagRamp  = 1 << 10
	flagsMask = 0xff00
	genShift  = 16
)

// Breaker is a circuit breaker: it watches the outcomes of the calls it
// admits and, when too many fail or are slow, rejects calls for a while so
// that a failing downstream is not hammered and callers fail fast.
//
// Closed, it records each outcome in a window (the last WindowSize calls, or
// the last WindowDuration) and opens when the window holds MinCalls calls
// and its failure rate reaches FailureRate or its slow-call rate reaches
// SlowCallRate, or after ConsecutiveFailures failures in a row. Open, it
// rejects every call for OpenFor, then turns half-open by itself (State
// reports it without any goroutine). Half-open, it admits HalfOpenProbes
// concurrent probes: one failed, slow or timed-out probe opens it again for
// a longer time (OpenFor × OpenBackoff per reopening, up to MaxOpenFor,
// jittered), and HalfOpenProbes successful probes close it with an empty
// window. ForceOpen, Disable and MetricsOnly switch it to the manual states.
//
// Every method is safe for concurrent use. Execute (or Do) is what most
// callers want; Acquire and ReleasePermit make a Breaker a spillway.Guard
// for a Pipeline.
type Breaker struct {
	word  atomic.Uint64
	core  atomic.Pointer[core]
	clock spillway.Clock

	// openUntil and openErr describe the current opening; they are written
	// under mu before the word that announces it.
	openUntil atomic.Int64
	openErr   atomic.Pointer[spillway.Error]
	// wouldUntil is when a metrics-only breaker's virtual opening ends (0: none).
	wouldUntil atomic.Int64
	// rampStart is when the current slow start began; it is written under
	// mu before the word's flagRamp announces it.
	rampStart atomic.Int64

	// The counters written on every rejection stay off the cache line that
	// every Acquire reads.
	_           [64]byte
	rejected    atomic.Uint64
	wouldReject atomic.Uint64
	// obs is Config.Observer and the observers attached since
	// (AttachObserver), read once per event.
	obs spillway.ObserverSet

	// reconf serializes Reconfigure and Update, so that an Update's
	// read-modify-write loses no concurrent change.
	reconf sync.Mutex
	mu     sync.Mutex
	// probes holds the start times of the half-open probes in flight. A
	// released probe removes one entry with its start time: probes that
	// started at the same instant are interchangeable.
	probes  []int64
	probeOK int
	// openBase is the unjittered duration of the current opening; 0 once
	// the breaker has closed, so the next opening lasts OpenFor.
	openBase time.Duration
	// pending holds the transitions not yet reported; draining is set
	// while a goroutine reports them (see drain).
	pending  []spillway.Event
	draining bool
}

// New returns a closed Breaker configured by cfg, or an error naming the
// first field of cfg that is invalid.
func New(cfg Config) (*Breaker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Breaker{clock: cfg.Clock}
	c := newCore(cfg, nil, nil)
	b.core.Store(c)
	b.obs.SetOwn(cfg.Observer)
	b.openErr.Store(rejection(cfg.Name, cfg.OpenFor))
	// Generation 1: the zero Permit (generation 0) never matches.
	b.word.Store(1<<genShift | c.flags(Closed) | uint64(Closed))
	return b, nil
}

// MustNew is New that panics on an invalid configuration.
func MustNew(cfg Config) *Breaker {
	b, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return b
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.core.Load().cfg.Name }

// PolicyKind returns "breaker" (spillway.Kinded): a pipeline refuses a
// breaker given as its Bulkhead.
func (b *Breaker) PolicyKind() string { return "breaker" }

// AttachObserver makes the breaker report its transitions and rejections to
// o too, besides Config.Observer, for the rest of its life
// (spillway.ObserverAttacher: a pipeline attaches its Observer). o gets
// each event once even when it is also Config.Observer, and the
// transitions in order, as Config.Observer does.
func (b *Breaker) AttachObserver(o spillway.Observer) { b.obs.Attach(o) }

// Config returns the configuration in effect, every default filled in
// (Classify and Rand stay nil for their defaults).
func (b *Breaker) Config() Config { return b.core.Load().cfg }

// Acquire admits a call or rejects it with a *spillway.Error whose Code is
// spillway.ReasonBreakerOpen and whose Err is ErrOpen. The returned Permit
// must be released exactly once, with the call's error. Acquire never
// blocks, so ctx is not consulted. It implements spillway.Guard.
//
// In the closed state it reads one atomic word (and the clock only when
// slow-call detection is on); an open breaker's rejection costs one clock
// read and allocates nothing.
func (b *Breaker) Acquire(ctx context.Context) (spillway.Permit, error) {
	// Closed without slow-call detection nor slow start: one load, nothing else.
	if w := b.word.Load(); w&(stateMask|flagTimed|flagRamp) == uint64(Closed) {
		return spillway.NewPermit(b, w, 0), nil
	}
	return b.acquireSlow(ctx)
}

// acquireSlow is Acquire for every state but the plainest closed one.
func (b *Breaker) acquireSlow(ctx context.Context) (spillway.Permit, error) {
	w := b.word.Load()
	for {
		switch State(w & stateMask) {
		case Closed:
			if w&flagRamp != 0 {
				return b.acquireRamp(ctx, w)
			}
			var start int64
			if w&flagTimed != 0 {
				start = b.clock.Nanotime()
			}
			return spillway.NewPermit(b, w, uint64(start)), nil
		case Open:
			if b.clock.Nanotime() < b.openUntil.Load() {
				return spillway.Permit{}, b.reject(ctx, b.openErr.Load())
			}
		case ForcedOpen:
			return spillway.Permit{}, b.reject(ctx, b.core.Load().forcedErr)
		case Disabled:
			return spillway.NewPermit(b, w, 0), nil
		case MetricsOnly:
			return b.acquireDryRun(w), nil
		}
		// Open past its deadline, or half-open: the probe bookkeeping needs mu.
		p, rej, again := b.acquireLocked()
		if rej != nil {
			return spillway.Permit{}, b.reject(ctx, rej)
		}
		if !again {
			return p, nil
		}
		w = b.word.Load()
	}
}

// acquireRamp admits a call of a closed breaker in a slow start with the
// probability the ramp has reached, and ends the slow start once its window
// has passed (or Reconfigure turned it off). Its permit is an ordinary
// closed one.
func (b *Breaker) acquireRamp(ctx context.Context, w uint64) (spillway.Permit, error) {
	now := b.clock.Nanotime()
	c := b.core.Load()
	if elapsed := now - b.rampStart.Load(); c.slowStart == 0 || elapsed >= c.slowStart {
		// A lost race means another call ended it or the state changed:
		// either way this call is admitted as a closed one, whose permit
		// the generation check judges.
		b.word.CompareAndSwap(w, w&^flagRamp)
	} else if c.rand() >= c.rampShare(elapsed) {
		return spillway.Permit{}, b.reject(ctx, c.rampErr)
	}
	var start int64
	if w&flagTimed != 0 {
		start = now
	}
	return spillway.NewPermit(b, w&^flagRamp, uint64(start)), nil
}

// Track returns a permit of a closed breaker for a call it has already
// admitted, whose outcome is known only after that call's own permit went
// back: a response whose status comes at its end (a gRPC answer's
// trailers). Released with the call's outcome, it counts as a call that
// started at Track (slow-call detection judges it from then); dropped
// unreleased, it counts nothing, as a closed breaker keeps no account of
// its permits. Track admits no call: it never refuses, draws no slow
// start's share and reports nothing. ok is false in any state but closed,
// where a call's own permit is the one that counts (a half-open probe's).
func (b *Breaker) Track() (p spillway.Permit, ok bool) {
	w := b.word.Load()
	if State(w&stateMask) != Closed {
		return spillway.Permit{}, false
	}
	var start int64
	if w&flagTimed != 0 {
		start = b.clock.Nanotime()
	}
	return spillway.NewPermit(b, w&^flagRamp, uint64(start)), true
}

// acquireLocked admits a probe. again is true when the state turned out to
// be neither open nor half-open under the lock, so that the caller looks again.
func (b *Breaker) acquireLocked() (p spillway.Permit, rej *spillway.Error, again bool) {
	var ev events
	b.mu.Lock()
	now := b.clock.Nanotime()
	w := b.settleLocked(now, &ev)
	switch State(w & stateMask) {
	case HalfOpen:
		c := b.core.Load()
		if len(b.probes) < c.cfg.HalfOpenProbes {
			b.probes = append(b.probes, now)
			p = spillway.NewPermit(b, w|flagTimed, uint64(now))
		} else {
			rej = c.halfOpenErr
		}
	case Open:
		rej = b.openErr.Load()
	default:
		again = true
	}
	b.mu.Unlock()
	ev.emit(b)
	return p, rej, again
}

// settleLocked performs the transitions that time alone causes before a
// call or a manual transition: an open breaker whose time is up turns
// half-open, and a probe that outlived ProbeTimeout counts as failed. It
// returns the state word after them. It requires that b.mu is held.
func (b *Breaker) settleLocked(now int64, ev *events) uint64 {
	if w := b.word.Load(); State(w&stateMask) == Open && now >= b.openUntil.Load() {
		b.setStateLocked(HalfOpen, ev)
		return b.word.Load()
	}
	return b.expireProbesLocked(now, ev)
}

// expireProbesLocked opens a half-open breaker again if one of its probes
// outlived ProbeTimeout, and returns the state word. It requires that b.mu
// is held.
func (b *Breaker) expireProbesLocked(now int64, ev *events) uint64 {
	w := b.word.Load()
	if State(w&stateMask) != HalfOpen {
		return w
	}
	c := b.core.Load()
	for _, start := range b.probes {
		if now-start >= c.probeTimeout {
			b.openLocked(now, true, ev)
			return b.word.Load()
		}
	}
	return w
}

// acquireDryRun admits a call of a metrics-only breaker, counting it as
// one it would have rejected while its virtual opening lasts.
func (b *Breaker) acquireDryRun(w uint64) spillway.Permit {
	var now int64
	clocked := false
	if until := b.wouldUntil.Load(); until != 0 {
		now, clocked = b.clock.Nanotime(), true
		if now < until {
			b.wouldReject.Add(1)
			return spillway.NewPermit(b, w|flagSkip, 0)
		}
		b.wouldUntil.CompareAndSwap(until, 0)
	}
	if w&flagTimed == 0 {
		return spillway.NewPermit(b, w, 0)
	}
	if !clocked {
		now = b.clock.Nanotime()
	}
	return spillway.NewPermit(b, w, uint64(now))
}

// reject counts and reports a rejection and returns its preallocated error.
func (b *Breaker) reject(ctx context.Context, e *spillway.Error) error {
	b.rejected.Add(1)
	if o := b.obs.Load(); o != nil {
		o.Observe(spillway.Event{Kind: spillway.EventRejection, Context: ctx, Policy: "breaker", Name: e.Name, Reason: e.Code, Err: e})
	}
	return e
}

// ReleasePermit records the outcome err of the call that held p, classified
// by Config.Classify. A permit issued before the breaker last changed state
// (an older generation) is dropped: its outcome says nothing about the
// current state. It takes the breaker's lock only for a transition or a
// half-open probe's bookkeeping, never while calling out. It implements
// spillway.Releaser.
func (b *Breaker) ReleasePermit(p spillway.Permit, err error) {
	a, start := p.Words()
	if (b.word.Load()^a)&^flagsMask != 0 {
		return
	}
	if err == nil && a&(stateMask|flagsMask) == uint64(Closed) {
		// A success in a count window full of successes changes nothing
		// (see countWindow.record): two loads and no write.
		if w := b.core.Load().count; w != nil && w.totals.Load() == 0 && w.pos.Load() >= w.size {
			return
		}
	}
	b.release(a, int64(start), err)
}

// release is ReleasePermit past its fast path: p's generation is current.
func (b *Breaker) release(a uint64, start int64, err error) {
	if a&flagSkip != 0 {
		return
	}
	switch State(a & stateMask) {
	case Closed, MetricsOnly:
		b.record(a, start, err)
	case HalfOpen:
		b.releaseProbe(a, start, err)
	}
}

// record classifies and records a closed or metrics-only call's outcome.
func (b *Breaker) record(a uint64, start int64, err error) {
	c := b.core.Load()
	var o uint32
	if err != nil {
		switch c.classify(err) {
		case spillway.Success:
		case spillway.Ignored:
			return
		default:
			o = outFailure
		}
	}
	var now int64
	if a&flagTimed != 0 {
		now = b.clock.Nanotime()
		if c.slowDur > 0 && now-start >= c.slowDur {
			o |= outSlow
		}
	}
	var trip bool
	if c.count != nil {
		trip = c.count.record(c, o)
	} else {
		if a&flagTimed == 0 {
			now = b.clock.Nanotime()
		}
		trip = c.time.record(c, o, now)
	}
	if trip {
		b.trip(a)
	}
}

// trip opens the breaker (or starts a metrics-only breaker's virtual
// opening) if it is still in the generation of permit word a.
func (b *Breaker) trip(a uint64) {
	var ev events
	b.mu.Lock()
	if w := b.word.Load(); (w^a)&^flagsMask == 0 {
		now := b.clock.Nanotime()
		if State(w&stateMask) == Closed {
			b.openLocked(now, false, &ev)
		} else {
			c := b.core.Load()
			b.wouldUntil.Store(max(addSat(now, c.cfg.OpenFor), 1)) // 0 means none
			b.core.Store(c.withNewWindow())
			b.setStateLocked(MetricsOnly, &ev)
		}
	}
	b.mu.Unlock()
	ev.emit(b)
}

// releaseProbe settles a half-open probe: a probe that failed, was slow or
// outlived ProbeTimeout opens the breaker again, a successful one counts
// towards closing it, an ignored one only frees its place.
func (b *Breaker) releaseProbe(a uint64, start int64, err error) {
	c := b.core.Load()
	o := spillway.Success
	if err != nil {
		o = c.classify(err)
	}
	var ev events
	b.mu.Lock()
	if (b.word.Load()^a)&^flagsMask == 0 && b.removeProbeLocked(start) {
		now := b.clock.Nanotime()
		d := now - start
		c = b.core.Load()
		switch {
		case d >= c.probeTimeout:
			b.openLocked(now, true, &ev)
		case o == spillway.Ignored:
		case o != spillway.Success, c.slowDur > 0 && d >= c.slowDur:
			b.openLocked(now, true, &ev)
		default:
			b.probeOK++
			if b.probeOK >= c.cfg.HalfOpenProbes {
				b.closeLocked(false, &ev)
				b.startRampLocked(now)
			}
		}
		b.expireProbesLocked(now, &ev)
	}
	b.mu.Unlock()
	ev.emit(b)
}

// removeProbeLocked forgets one probe that started at start and reports
// whether there was one. It requires that b.mu is held.
func (b *Breaker) removeProbeLocked(start int64) bool {
	for i, s := range b.probes {
		if s == start {
			last := len(b.probes) - 1
			b.probes[i] = b.probes[last]
			b.probes = b.probes[:last]
			return true
		}
	}
	return false
}

// setStateLocked moves to state s in a new generation, so that every permit
// issued before is dropped when it comes back. It requires that b.mu is held.
func (b *Breaker) setStateLocked(s State, ev *events) {
	old := b.word.Load()
	c := b.core.Load()
	b.word.Store(((old>>genShift)+1)<<genShift | c.flags(s) | uint64(s))
	b.probes = b.probes[:0]
	b.probeOK = 0
	if s != MetricsOnly {
		b.wouldUntil.Store(0)
	}
	if from := State(old & stateMask); from != s {
		b.pending = append(b.pending, spillway.Event{Kind: spillway.EventTransition, Policy: "breaker", Name: c.cfg.Name, From: from.String(), To: s.String()})
		ev.queued = true
	}
}

// openLocked opens the breaker at now. A reopening (grow, after a failed
// probe) lasts longer than the opening before, jittered; any other opening
// lasts OpenFor exactly. It requires that b.mu is held.
func (b *Breaker) openLocked(now int64, grow bool, ev *events) {
	c := b.core.Load()
	var d time.Duration
	if grow && b.openBase > 0 {
		b.openBase = c.grow(b.openBase)
		d = c.jitter(b.openBase)
	} else {
		b.openBase = c.cfg.OpenFor
		d = b.openBase
	}
	b.openErr.Store(rejection(c.cfg.Name, d))
	b.openUntil.Store(addSat(now, d))
	b.setStateLocked(Open, ev)
}

// closeLocked closes the breaker, with an empty window unless keepWindow,
// and forgets the grown open duration. It requires that b.mu is held.
func (b *Breaker) closeLocked(keepWindow bool, ev *events) {
	if !keepWindow {
		b.core.Store(b.core.Load().withNewWindow())
	}
	b.openBase = 0
	b.setStateLocked(Closed, ev)
}

// startRampLocked begins a slow start at now in a closed breaker, if
// Config.SlowStart asks for one. It requires that b.mu is held.
func (b *Breaker) startRampLocked(now int64) {
	if b.core.Load().slowStart > 0 {
		b.rampStart.Store(now)
		b.word.Store(b.word.Load() | flagRamp)
	}
}

// addSat is now+d, saturated instead of wrapping for absurd durations.
func addSat(now int64, d time.Duration) int64 {
	if t := now + int64(d); t >= now {
		return t
	}
	return 1<<63 - 1
}

// Execute runs fn if the breaker admits it and records its outcome. It
// returns the breaker's rejection without calling fn, or fn's error. An
// error that is ctx's own end (spillway.IsCallerDone) is ignored, not
// counted against the downstream. If fn panics, the outcome is recorded as a
// *spillway.PanicError (a failure by default) and the panic goes on.
func (b *Breaker) Execute(ctx context.Context, fn func(context.Context) error) error {
	_, err := spillway.Guarded(ctx, b, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// Do is Execute for a function that returns a value.
func Do[T any](ctx context.Context, b *Breaker, fn func(context.Context) (T, error)) (T, error) {
	return spillway.Guarded(ctx, b, fn)
}

// State returns the breaker's current state. It is time-aware: an open
// breaker whose open time has passed reports HalfOpen (the next Acquire
// performs the transition), and a half-open breaker first counts the probes
// that outlived ProbeTimeout as failed.
func (b *Breaker) State() State {
	w := b.word.Load()
	switch s := State(w & stateMask); s {
	case Open:
		if b.clock.Nanotime() >= b.openUntil.Load() {
			return HalfOpen
		}
		return Open
	case HalfOpen:
		var ev events
		b.mu.Lock()
		w = b.expireProbesLocked(b.clock.Nanotime(), &ev)
		b.mu.Unlock()
		ev.emit(b)
		return State(w & stateMask)
	default:
		return s
	}
}

// Snapshot is a breaker's state and window at one moment.
type Snapshot struct {
	// State is what State would return.
	State State
	// Calls, Failures and Slow count the calls in the window and, among
	// them, the failed and the slow ones.
	Calls, Failures, Slow int
	// FailureRate and SlowCallRate are Failures/Calls and Slow/Calls (0 with
	// no calls).
	FailureRate, SlowCallRate float64
	// ConsecutiveFailures is the current run of failures; it is tracked only
	// when Config.ConsecutiveFailures is set.
	ConsecutiveFailures int
	// Generation counts the breaker's state changes; a permit from an older
	// generation is dropped when released.
	Generation uint64
	// RetryAfter is the open time that remains (0 unless Open).
	RetryAfter time.Duration
	// ProbesInFlight is the number of half-open probes not yet released.
	ProbesInFlight int
	// WouldReject counts the calls a metrics-only breaker admitted while it
	// would have been open.
	WouldReject uint64
	// Rejected counts every call the breaker has rejected.
	Rejected uint64
	// SlowStartLeft is the time until a closed breaker in a slow start
	// (Config.SlowStart) admits every call, and SlowStartShare the share of
	// calls it admits now, in [SlowStartFloor, 1); both are 0 when it is not
	// ramping.
	SlowStartShare float64
	SlowStartLeft  time.Duration
}

// Snapshot returns the breaker's state and window. Like State, it counts
// timed-out probes first. The window's counts are read while calls go on,
// so under load they are a moment's approximation.
func (b *Breaker) Snapshot() Snapshot {
	var ev events
	b.mu.Lock()
	now := b.clock.Nanotime()
	w := b.expireProbesLocked(now, &ev)
	s := Snapshot{
		State:          State(w & stateMask),
		Generation:     w >> genShift,
		ProbesInFlight: len(b.probes),
	}
	if c := b.core.Load(); w&flagRamp != 0 && now-b.rampStart.Load() < c.slowStart {
		elapsed := now - b.rampStart.Load()
		s.SlowStartShare = c.rampShare(elapsed)
		s.SlowStartLeft = time.Duration(c.slowStart - elapsed)
	}
	if s.State == Open {
		if until := b.openUntil.Load(); now < until {
			s.RetryAfter = time.Duration(until - now)
		} else {
			s.State = HalfOpen
		}
	}
	c := b.core.Load()
	b.mu.Unlock()
	ev.emit(b)

	var t counts
	var run int64
	if c.count != nil {
		t, run = c.count.counts(), c.count.consec.Load()
	} else {
		t, run = c.time.counts(now), c.time.consec.Load()
	}
	s.Calls, s.Failures, s.Slow = int(t.calls), int(t.failures), int(t.slow)
	if t.calls > 0 {
		s.FailureRate = float64(t.failures) / float64(t.calls)
		s.SlowCallRate = float64(t.slow) / float64(t.calls)
	}
	s.ConsecutiveFailures = int(max(run, 0))
	s.WouldReject = b.wouldReject.Load()
	s.Rejected = b.rejected.Load()
	return s
}

// Reconfigure replaces the whole configuration with cfg at runtime. As in
// New, a zero field means its default, not "unchanged": a partial cfg
// resets every field it leaves out (the Name, MinCalls, OpenFor, ...). To
// change some settings and keep the others, use Update. Reconfigure suits a
// caller that builds complete configurations, such as the gateway's reload.
//
// It keeps the state, the open deadline and the recorded outcomes that
// still fit: a count window that shrinks keeps its newest outcomes, one that
// grows keeps them all, a time window keeps the buckets still inside its new
// duration. Changing the window type starts an empty window. New thresholds
// judge the window from the next failed or slow call on. cfg.Clock is
// ignored: the clock is fixed by New. Outcomes recorded while a resized
// window is copied may be lost. On error nothing changes.
func (b *Breaker) Reconfigure(cfg Config) error {
	b.reconf.Lock()
	defer b.reconf.Unlock()
	return b.reconfigure(cfg)
}

// Update changes the settings that fn sets and keeps every other one, the
// state and the window as Reconfigure does. fn receives the configuration
// in effect (Config: every default filled in) and modifies it:
//
//	err := b.Update(func(c *breaker.Config) { c.FailureRate = 0.3 })
//
// A MaxOpenFor left at its default (5m, or OpenFor if longer) follows a new
// OpenFor. Updates are serialized, so concurrent ones lose nothing; fn must
// not call Update or Reconfigure. On error (the result is invalid) nothing
// changes.
func (b *Breaker) Update(fn func(*Config)) error {
	b.reconf.Lock()
	defer b.reconf.Unlock()
	cur := b.Config()
	next := cur
	fn(&next)
	if next.MaxOpenFor == cur.MaxOpenFor && cur.MaxOpenFor == max(defaultMaxOpenFor, cur.OpenFor) {
		next.MaxOpenFor = 0 // derived again from the new OpenFor
	}
	return b.reconfigure(next)
}

// reconfigure is Reconfigure under b.reconf.
func (b *Breaker) reconfigure(cfg Config) error {
	cfg.Clock = b.clock
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.core.Load()
	count, tw := old.count, old.time
	switch {
	case cfg.Window != old.cfg.Window:
		count, tw = nil, nil // newCore starts a new one
	case count != nil && cfg.WindowSize != old.cfg.WindowSize:
		count = count.resized(cfg.WindowSize)
	case tw != nil && (bucketWidth(cfg) != tw.width || int64(cfg.Buckets) != tw.n):
		tw = tw.rebucketed(b.clock.Nanotime(), bucketWidth(cfg), cfg.Buckets)
	}
	c := newCore(cfg, count, tw)
	b.core.Store(c)
	b.obs.SetOwn(cfg.Observer)
	if cfg.Name != old.cfg.Name {
		b.openErr.Store(rejection(cfg.Name, b.openErr.Load().RetryAfter))
	}
	// The flags follow SlowCallDuration; the generation stays, so that the
	// calls in flight still count, and so does a slow start (acquireRamp
	// ends it under the new SlowStart).
	w := b.word.Load()
	b.word.Store(w&^(flagsMask&^flagRamp) | c.flags(State(w&stateMask)))
	return nil
}

// ForceOpen moves the breaker to ForcedOpen: every call is rejected (with
// RetryAfter 0) until another manual transition.
func (b *Breaker) ForceOpen() { b.transition(ForcedOpen) }

// Disable moves the breaker to Disabled: every call is admitted and nothing
// is recorded until another manual transition.
func (b *Breaker) Disable() { b.transition(Disabled) }

// MetricsOnly moves the breaker to MetricsOnly: calls are recorded and
// judged as when closed, but never rejected. When the window would open the
// breaker, the calls of the following OpenFor are counted in
// Snapshot.WouldReject instead, and recording starts again in an empty
// window (the dry run assumes the probes would have succeeded). Switching
// between Closed and MetricsOnly keeps the window.
func (b *Breaker) MetricsOnly() { b.transition(MetricsOnly) }

// Reset closes the breaker with an empty window in a new generation and
// forgets the grown open duration, whatever the state was.
func (b *Breaker) Reset() {
	var ev events
	b.mu.Lock()
	b.closeLocked(false, &ev)
	b.mu.Unlock()
	ev.emit(b)
}

// TransitionTo moves the breaker to state s, as the admin API does; moving
// to the current state does nothing. Closed starts an empty window (unless
// coming from MetricsOnly), Open opens for OpenFor, HalfOpen starts probing.
// It returns an error only for a state that does not exist.
func (b *Breaker) TransitionTo(s State) error {
	if s >= numStates {
		return fmt.Errorf("breaker: unknown state %d", uint8(s))
	}
	b.transition(s)
	return nil
}

// transition performs a manual transition, after the ones time caused.
func (b *Breaker) transition(to State) {
	var ev events
	b.mu.Lock()
	now := b.clock.Nanotime()
	from := State(b.settleLocked(now, &ev) & stateMask)
	if from != to {
		switch to {
		case Closed:
			b.closeLocked(from == MetricsOnly, &ev)
		case Open:
			b.openLocked(now, false, &ev)
		case MetricsOnly:
			if from != Closed {
				b.core.Store(b.core.Load().withNewWindow())
			}
			b.setStateLocked(to, &ev)
		default:
			b.setStateLocked(to, &ev)
		}
	}
	b.mu.Unlock()
	ev.emit(b)
}

// events tells whether a locked section queued transitions, to be reported
// once mu is released: an Observer may call back into the breaker.
type events struct{ queued bool }

// emit reports the queued transitions, unless another goroutine is already
// reporting them: that one reports these too, in order.
func (ev *events) emit(b *Breaker) {
	if ev.queued {
		b.drain()
	}
}

// drain reports the queued transitions, in the order they happened, one at
// a time and without holding mu. Only one goroutine drains at a time, so an
// Observer sees the transitions in order even when they happen
// concurrently, and one that makes a transition itself only queues it.
func (b *Breaker) drain() {
	b.mu.Lock()
	if b.draining {
		b.mu.Unlock()
		return
	}
	b.draining = true
	locked, delivered := true, 0
	defer func() {
		// Also when the Observer panics: the events not yet delivered stay
		// queued for the next transition's report.
		if !locked {
			b.mu.Lock()
		}
		n := copy(b.pending, b.pending[delivered:])
		clear(b.pending[n:]) // drop the delivered events' references
		b.pending = b.pending[:n]
		b.draining = false
		b.mu.Unlock()
	}()
	for delivered < len(b.pending) {
		e := b.pending[delivered]
		delivered++
		b.mu.Unlock()
		locked = false
		if o := b.obs.Load(); o != nil {
			o.Observe(e)
		}
		b.mu.Lock()
		locked = true
	}
}
