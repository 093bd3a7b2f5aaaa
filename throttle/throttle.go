package throttle

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// policyName is the Policy of this package's errors and events.
const policyName = "throttle"

// ErrThrottled is the sentinel of the error a Throttler refuses a call
// with: errors.Is(err, ErrThrottled) reports a local refusal.
var ErrThrottled = errors.New("throttled: the downstream accepts too few requests")

// Throttler refuses calls locally, at random, with the probability of the
// Google SRE book's client-side throttling, max(0, (requests − K·accepts) /
// (requests + 1)) over a sliding window, capped at MaxRejectionRate. Create
// one with New.
//
// Acquire and ReleasePermit make it a spillway.Guard and
// spillway.Releaser; Execute and Do run a single call. Every method is safe
// for concurrent use.
type Throttler struct {
	state atomic.Pointer[state]
	clock spillway.Clock
	// obs is Config.Observer and the observers attached since
	// (AttachObserver).
	obs spillway.ObserverSet

	// rejected is written by every refusal; keep it off the line of the
	// fields every call reads.
	_        [64]byte
	rejected atomic.Uint64

	// reconf serializes Update, so that its read-modify-write loses no
	// concurrent change; mu serializes the window's rolls, the releases
	// that land in a previous bucket and the change of window.
	reconf sync.Mutex
	mu     sync.Mutex
	gen    uint64 // the last window's gen, under mu
}

// state is a configuration in effect and its window: Update swaps a new
// one in whole, keeping the window unless the buckets change.
type state struct {
	cfg      Config
	classify func(error) spillway.Outcome
	rand     func() float64
	// err is preallocated: refusing a call allocates nothing.
	err *spillway.Error
	w   *window
}

var (
	_ spillway.Guard    = (*Throttler)(nil)
	_ spillway.Releaser = (*Throttler)(nil)
)

// New returns a Throttler configured by cfg, or an error naming the first
// invalid field.
func New(cfg Config) (*Throttler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Throttler{clock: cfg.Clock, gen: 1}
	t.state.Store(newState(cfg, newWindow(t.gen, bucketWidth(cfg), cfg.Buckets)))
	t.obs.SetOwn(cfg.Observer)
	return t, nil
}

// MustNew is New that panics on an invalid configuration.
func MustNew(cfg Config) *Throttler {
	t, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return t
}

func newState(cfg Config, w *window) *state {
	s := &state{cfg: cfg, classify: cfg.Classify, rand: cfg.Rand, w: w,
		err: &spillway.Error{Code: spillway.ReasonThrottled, Policy: policyName, Name: cfg.Name,
			RetryAfter: time.Duration(w.width), Err: ErrThrottled}}
	if s.rand == nil {
		s.rand = rand.Float64
	}
	return s
}

func bucketWidth(cfg Config) int64 { return int64(cfg.Window) / int64(cfg.Buckets) }

// Name returns the throttler's name (Config.Name), the Name of its errors
// and events.
func (t *Throttler) Name() string { return t.state.Load().cfg.Name }

// PolicyKind returns "throttle" (spillway.Kinded).
func (t *Throttler) PolicyKind() string { return policyName }

// AttachObserver makes the throttler report its refusals to o too, besides
// Config.Observer, for the rest of its life (spillway.ObserverAttacher: a
// pipeline attaches its Observer); o gets each event once even when it is
// also Config.Observer.
func (t *Throttler) AttachObserver(o spillway.Observer) { t.obs.Attach(o) }

// Config returns the configuration in effect, every default filled in
// (Classify and Rand stay nil for their defaults).
func (t *Throttler) Config() Config { return t.state.Load().cfg }

// Acquire admits a call or refuses it, with the current rejection
// probability, with a *spillway.Error whose Code is
// spillway.ReasonThrottled, whose Err is ErrThrottled and whose RetryAfter
// is one bucket's width. A refused call counts as a request of the window
// at once, as in the SRE book: refusals keep the probability up while the
// downstream accepts too little. An admitted call counts when its Permit
// is released (exactly once, with the call's error), in the bucket of its
// Acquire: a call still in flight is neither a request nor an accept, so
// that a burst of calls to a healthy downstream is not throttled before
// the first one returns. Acquire never blocks, so ctx is not consulted.
//
// It reads the clock and three atomic words; it draws a random number only
// while the probability is above 0, and takes a lock only for the first
// call of a bucket. It allocates nothing, a refusal included.
func (t *Throttler) Acquire(ctx context.Context) (spillway.Permit, error) {
	s := t.state.Load()
	e := t.current(s.w, t.clock.Nanotime())
	reqs, accs, b := s.w.counts(e)
	if p := s.probability(reqs, accs); p > 0 && s.rand() < p {
		b.counts.Add(oneRequest)
		return spillway.Permit{}, t.reject(ctx, s)
	}
	return spillway.NewPermit(t, uint64(e), s.w.gen), nil
}

// current returns the epoch that a call at the clock reading now counts
// in, rolling the window first when now is past its current bucket. A
// reading older than the current bucket (a call that raced a roll) counts
// in the current bucket.
func (t *Throttler) current(w *window, now int64) int64 {
	e := w.epoch(now)
	if c := w.cur.Load(); e <= c {
		return c
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := w.cur.Load(); e <= c {
		return c
	}
	w.roll(e)
	return e
}

// probability is the SRE book's rejection probability of a window holding
// reqs requests and accs accepts, capped at MaxRejectionRate.
func (s *state) probability(reqs, accs int64) float64 {
	p := (float64(reqs) - s.cfg.K*float64(accs)) / float64(reqs+1)
	if p <= 0 {
		return 0
	}
	return min(p, s.cfg.MaxRejectionRate)
}

// reject counts and reports a refusal and returns its preallocated error.
func (t *Throttler) reject(ctx context.Context, s *state) error {
	t.rejected.Add(1)
	if o := t.obs.Load(); o != nil {
		o.Observe(spillway.Event{Kind: spillway.EventRejection, Context: ctx, Policy: policyName, Name: s.err.Name,
			Reason: spillway.ReasonThrottled, Err: s.err})
	}
	return s.err
}

// ReleasePermit records the outcome err of the call that held p, in the
// bucket of its Acquire: a request and an accept (nil, or an error
// Config.Classify calls a Success), a request the downstream did not accept
// (Failure), or nothing at all (Ignored: the caller's own end, another
// guard's refusal). A permit of a bucket that left the window, of a window
// an Update replaced, or that t did not issue (the zero Permit included) is
// dropped. It implements spillway.Releaser.
func (t *Throttler) ReleasePermit(p spillway.Permit, err error) {
	if p.Releaser() != spillway.Releaser(t) {
		return
	}
	s := t.state.Load()
	a, gen := p.Words()
	switch s.outcome(err) {
	case spillway.Success:
		t.add(s.w, int64(a), gen, oneAccept)
	case spillway.Failure:
		t.add(s.w, int64(a), gen, oneRequest)
	}
}

// outcome classifies a call's error: nil is an accept, what
// spillway.OutcomeOf ignores is ignored, the rest is Config.Classify's.
func (s *state) outcome(err error) spillway.Outcome {
	if err == nil {
		return spillway.Success
	}
	o := spillway.OutcomeOf(err)
	if o == spillway.Ignored || s.classify == nil {
		return o
	}
	return s.classify(err)
}

// add adds c (oneRequest or oneAccept) to the counts of epoch e of window
// w, if w is still the window of generation gen and e still in it. The
// current bucket takes no lock; a previous one is changed under mu, with
// the sums a roll made of it.
func (t *Throttler) add(w *window, e int64, gen uint64, c uint64) {
	if w.gen != gen {
		return
	}
	b := w.bucket(e)
	if e == w.cur.Load() {
		b.counts.Add(c)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := w.cur.Load()
	if b.epoch.Load() != e || e <= cur-w.n {
		return // it left the window
	}
	b.counts.Add(c)
	if e < cur {
		reqs, accs := unpack(c)
		w.prevReqs.Add(reqs)
		w.prevAccs.Add(accs)
	}
}

// RejectionProbability returns the probability with which Acquire refuses
// a call right now, in [0, MaxRejectionRate]. It is the
// spillway_throttle_rejection_probability metric.
func (t *Throttler) RejectionProbability() float64 {
	s := t.state.Load()
	reqs, accs, _ := s.w.counts(t.current(s.w, t.clock.Nanotime()))
	return s.probability(reqs, accs)
}

// Counts returns the requests (refused ones included) and the accepts the
// window holds right now.
func (t *Throttler) Counts() (requests, accepts int64) {
	s := t.state.Load()
	requests, accepts, _ = s.w.counts(t.current(s.w, t.clock.Nanotime()))
	return requests, accepts
}

// Rejected returns the number of calls refused since New.
func (t *Throttler) Rejected() uint64 { return t.rejected.Load() }

// Update changes the settings that fn sets and keeps every other one and
// the window's counts. fn receives the configuration in effect (Config:
// every default filled in) and modifies it:
//
//	err := t.Update(func(c *throttle.Config) { c.K = 1.5 })
//
// A new Window or Buckets moves each bucket's counts, whole, into the new
// bucket where it began (counts older than a shorter window are dropped);
// the permits issued before such a change are then released without being
// recorded. A Buckets left at its default follows a new Window. The Clock is
// fixed by New. Updates are serialized; fn must not call Update. On error
// (the result is invalid) nothing changes.
func (t *Throttler) Update(fn func(*Config)) error {
	t.reconf.Lock()
	defer t.reconf.Unlock()
	old := t.state.Load()
	cfg := old.cfg
	fn(&cfg)
	if cfg.Buckets == old.cfg.Buckets && old.cfg.Buckets == defaultBuckets(old.cfg.Window) {
		cfg.Buckets = 0 // derived again from the new Window
	}
	cfg.Clock = t.clock
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w := old.w
	if bucketWidth(cfg) != w.width || int64(cfg.Buckets) != w.n {
		t.gen++
		w = w.rebucketed(t.gen, bucketWidth(cfg), cfg.Buckets, t.clock.Nanotime())
	}
	t.state.Store(newState(cfg, w))
	t.obs.SetOwn(cfg.Observer)
	return nil
}

// Execute runs fn if the throttler admits it and records its outcome. It
// returns the refusal without calling fn, or fn's error. An error that is
// ctx's own end (spillway.IsCallerDone) is not counted. If fn panics, the
// outcome is recorded as a *spillway.PanicError (not an accept, by
// default) and the panic goes on.
func (t *Throttler) Execute(ctx context.Context, fn func(context.Context) error) error {
	_, err := Do(ctx, t, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// Do is Execute for a function that returns a value.
func Do[T any](ctx context.Context, t *Throttler, fn func(context.Context) (T, error)) (T, error) {
	return spillway.Guarded(ctx, t, fn)
}
