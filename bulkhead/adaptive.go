package bulkhead

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// Algorithm names how an adaptive bulkhead moves its limit. The zero value
// (Static) is a bulkhead of a fixed MaxConcurrent.
type Algorithm string

// The algorithms of Adaptive.Algorithm. Their parameters and defaults are
// Netflix concurrency-limits', but for Gradient2's Tolerance and Smoothing,
// measured in bench/overload (see Adaptive and docs/overload.md).
const (
	// Static keeps the limit at MaxConcurrent: no adaptation.
	Static Algorithm = ""
	// Gradient2 compares each window's average latency with a long-term,
	// exponentially smoothed average: the limit grows by QueueSize while
	// latency stays within Tolerance of the long-term average and shrinks
	// (by at most half, smoothed) once it rises past it. Drops count only
	// through their latency.
	Gradient2 Algorithm = "gradient2"
	// AIMD adds one to the limit after each window with no drop whose
	// demand reached half the limit, and multiplies it by BackoffRatio after
	// a window with a drop (or whose average latency exceeded Timeout).
	AIMD Algorithm = "aimd"
	// Vegas estimates the queue behind the downstream from the lowest
	// latency seen (limit × (1 − minRTT/RTT)) and keeps it between alpha
	// (3·log10 limit) and beta (6·log10 limit); a drop shrinks the limit.
	Vegas Algorithm = "vegas"
)

// Algorithms lists the adaptive algorithms, in the order docs name them.
var Algorithms = []Algorithm{Gradient2, AIMD, Vegas}

// Defaults of Adaptive's zero fields.
const (
	// DefaultInitialLimit is where an adaptive limit starts (clamped into
	// [MinConcurrent, MaxConcurrent]): Netflix's initialLimit.
	DefaultInitialLimit = 20
	// DefaultWindow is the shortest sampling window: the limit changes at
	// most once per window (Envoy's concurrency_update_interval of 100ms).
	DefaultWindow = 100 * time.Millisecond
	// DefaultMinSamples is how many samples a window needs before it
	// closes: Netflix WindowedLimit's windowSize.
	DefaultMinSamples = 10
	// DefaultTolerance is Gradient2's RTT tolerance. Netflix's rttTolerance
	// is 1.5: on a downstream whose throughput falls past its capacity, a
	// limit that lets latency rise by half before it shrinks loses a third
	// of the goodput at 2× overload (bench/overload). 1.05 shrinks at the
	// first rise that a window's average tells from noise.
	DefaultTolerance = 1.05
	// DefaultSmoothing is Gradient2's smoothing. Netflix's is 0.2; 0.3
	// keeps the growth at flat latency (QueueSize × Smoothing per window)
	// fast enough to reach the upper bound within about half a minute on a
	// downstream whose windows are noisy (bench/overload).
	DefaultSmoothing = 0.3
	// DefaultQueueSize is how much Gradient2's limit grows per window while
	// latency stays low (Netflix's queueSize).
	DefaultQueueSize = 4
	// DefaultLongWindow is how many windows Gradient2's long-term average
	// spans (Netflix's longWindow).
	DefaultLongWindow = 600
	// DefaultBackoffRatio is AIMD's multiplicative decrease (Netflix's).
	DefaultBackoffRatio = 0.9
	// DefaultTimeout is AIMD's latency above which a window counts as a
	// drop (Netflix's 5s).
	DefaultTimeout = 5 * time.Second
	// DefaultProbeMultiplier is how often Vegas forgets its lowest latency:
	// after about ProbeMultiplier × limit windows (Netflix's probeMultiplier).
	DefaultProbeMultiplier = 30
)

// Adaptive configures a bulkhead whose limit follows the downstream's
// latency instead of staying at MaxConcurrent. MaxConcurrent is then the
// upper bound of the limit. Its zero value is no adaptation (Static).
//
// The limit changes at most once per sampling window: each released call
// adds its round-trip time (from admission to release, read on Clock) to
// the window with a few atomic operations, and the release that finds the
// window over (Window elapsed and MinSamples collected) takes a lock, feeds
// the window's average latency, its highest in-flight count and whether any
// call was dropped to the algorithm, and sets the new limit.
type Adaptive struct {
	// Algorithm picks the algorithm. Default Static: no adaptation, every
	// other field is ignored.
	Algorithm Algorithm
	// MinConcurrent is the lowest the limit goes. Default 0 means 1.
	MinConcurrent int
	// InitialLimit is where the limit starts. Default 0 means
	// DefaultInitialLimit (20); clamped into [MinConcurrent, MaxConcurrent].
	InitialLimit int
	// Window is the shortest sampling window. Default 0 means DefaultWindow
	// (100ms).
	Window time.Duration
	// MinSamples is how many samples a window needs to close. Default 0
	// means DefaultMinSamples (10).
	MinSamples int
	// Clock measures the calls' round-trip times and the windows. Default
	// nil means spillway.SystemClock.
	Clock spillway.Clock
	// Drop reports whether a failed call was dropped by the downstream for
	// being overloaded (a timeout, a 503): the loss signal of AIMD and
	// Vegas. Other failures are not samples at all (they came back before a
	// meaningful latency could be measured). Default nil: a call that failed
	// with a timeout (reason deadline_exceeded) or was throttled downstream
	// (reason throttled) is a drop. A call whose caller gave up
	// (spillway.ErrCallerDone) or that panicked is never a sample.
	Drop func(err error) bool

	// Tolerance (Gradient2) is how far above the long-term average latency
	// a window's average may be before the limit shrinks. Default 0 means
	// DefaultTolerance (1.05); must be >= 1. A downstream that queues
	// without thrashing (its throughput holds past its capacity) and whose
	// latency varies a lot from window to window may want more: Netflix's
	// 1.5.
	Tolerance float64
	// Smoothing (Gradient2, Vegas) weighs each new estimate against the
	// current limit, in (0, 1]. Default 0 means DefaultSmoothing (0.3) for
	// Gradient2 and 1 (no smoothing) for Vegas.
	Smoothing float64
	// QueueSize (Gradient2) is how much the limit may grow per window while
	// latency stays low. Default 0 means DefaultQueueSize (4).
	QueueSize int
	// LongWindow (Gradient2) is how many windows the long-term average
	// latency spans. Default 0 means DefaultLongWindow (600).
	LongWindow int
	// BackoffRatio (AIMD) multiplies the limit after a window with a drop,
	// in [0.5, 1). Default 0 means DefaultBackoffRatio (0.9).
	BackoffRatio float64
	// Timeout (AIMD) is the average latency above which a window counts as
	// a drop. Default 0 means DefaultTimeout (5s).
	Timeout time.Duration
	// ProbeMultiplier (Vegas): the lowest latency seen is forgotten after
	// between half and all of ProbeMultiplier × limit windows, so that a
	// downstream that became slower for good is re-measured. Default 0
	// means DefaultProbeMultiplier (30).
	ProbeMultiplier int
}

// resolve checks a and fills its defaults; maxConcurrent is the resolved
// upper bound.
func (a Adaptive) resolve(maxConcurrent int) (Adaptive, error) {
	switch a.Algorithm {
	case Gradient2, AIMD, Vegas:
	default:
		return a, fmt.Errorf("bulkhead: unknown Adaptive.Algorithm %q (want one of %v)", a.Algorithm, Algorithms)
	}
	if a.MinConcurrent == 0 {
		a.MinConcurrent = 1
	}
	if a.InitialLimit == 0 {
		a.InitialLimit = DefaultInitialLimit
	}
	a.Window = cmp.Or(a.Window, DefaultWindow)
	a.MinSamples = cmp.Or(a.MinSamples, DefaultMinSamples)
	a.Clock = spillway.ClockOrSystem(a.Clock)
	a.Tolerance = cmp.Or(a.Tolerance, DefaultTolerance)
	if a.Smoothing == 0 {
		a.Smoothing = DefaultSmoothing
		if a.Algorithm == Vegas {
			a.Smoothing = 1
		}
	}
	a.QueueSize = cmp.Or(a.QueueSize, DefaultQueueSize)
	a.LongWindow = cmp.Or(a.LongWindow, DefaultLongWindow)
	a.BackoffRatio = cmp.Or(a.BackoffRatio, DefaultBackoffRatio)
	a.Timeout = cmp.Or(a.Timeout, DefaultTimeout)
	a.ProbeMultiplier = cmp.Or(a.ProbeMultiplier, DefaultProbeMultiplier)
	var err error
	switch {
	case a.MinConcurrent < 0 || a.MinConcurrent > maxConcurrent:
		err = fmt.Errorf("MinConcurrent must be in [1, MaxConcurrent %d], got %d", maxConcurrent, a.MinConcurrent)
	case a.InitialLimit < 0:
		err = fmt.Errorf("InitialLimit must be >= 0, got %d", a.InitialLimit)
	case a.Window < 0 || a.MinSamples < 0 || a.QueueSize < 0 || a.LongWindow < 0 || a.Timeout < 0 || a.ProbeMultiplier < 0:
		err = errors.New("Window, MinSamples, QueueSize, LongWindow, Timeout and ProbeMultiplier must be >= 0")
	case a.Tolerance < 1:
		err = fmt.Errorf("Tolerance must be >= 1, got %v", a.Tolerance)
	case a.Smoothing < 0 || a.Smoothing > 1:
		err = fmt.Errorf("Smoothing must be in (0, 1], got %v", a.Smoothing)
	case a.BackoffRatio < 0.5 || a.BackoffRatio >= 1:
		err = fmt.Errorf("BackoffRatio must be in [0.5, 1), got %v", a.BackoffRatio)
	}
	if err != nil {
		return a, fmt.Errorf("bulkhead: Adaptive.%w", err)
	}
	a.InitialLimit = min(max(a.InitialLimit, a.MinConcurrent), maxConcurrent)
	return a, nil
}

// window is what one sampling window tells an algorithm.
type window struct {
	rtt      float64 // average round-trip time, nanoseconds
	inFlight int64   // the highest in-flight count a sampled call saw at admission
	dropped  bool    // a call of the window was dropped
}

// algorithm moves an estimated limit; next returns the new estimate for a
// closed window, unclamped.
type algorithm interface {
	next(w window, limit float64) float64
}

// limiter is the adaptive state of a bulkhead: the open window's sums
// (atomics, written by every release) and the algorithm's state (under mu,
// touched once per window).
type limiter struct {
	cfg        Adaptive
	clock      spillway.Clock
	lo, hi     float64
	windowNs   int64
	minSamples int64

	// The open window. A sample racing with the window's close may have its
	// sum in one window and its count in the next: a window's average is
	// approximate by one sample at most.
	start    atomic.Int64
	count    atomic.Int64
	rttSum   atomic.Int64
	maxIn    atomic.Int64
	dropped  atomic.Bool
	mu       sync.Mutex // held by the release that closes the window
	estimate float64    // the limit as the algorithm sees it; under mu
	alg      algorithm  // under mu
}

// newLimiter returns the adaptive state of a bulkhead of upper bound hi,
// starting at limit.
func newLimiter(cfg Adaptive, hi, limit int) *limiter {
	l := &limiter{
		cfg: cfg, clock: cfg.Clock, lo: float64(cfg.MinConcurrent), hi: float64(hi),
		windowNs: int64(cfg.Window), minSamples: int64(cfg.MinSamples),
		estimate: float64(limit),
	}
	l.start.Store(l.clock.Nanotime())
	switch cfg.Algorithm {
	case Gradient2:
		l.alg = &gradient2{tolerance: cfg.Tolerance, smoothing: cfg.Smoothing, queue: float64(cfg.QueueSize), lo: l.lo,
			long: ewma{factor: 2 / (float64(cfg.LongWindow) + 1), warmup: 10}}
	case AIMD:
		l.alg = &aimd{backoff: cfg.BackoffRatio, timeout: float64(cfg.Timeout)}
	case Vegas:
		l.alg = &vegas{smoothing: cfg.Smoothing, probe: float64(cfg.ProbeMultiplier),
			rng: uint64(l.clock.Nanotime()) | 1}
	}
	return l
}

// same reports whether cfg (resolved) is the configuration l runs, but for
// Adaptive.Drop, which a func cannot be compared on.
func (l *limiter) same(cfg Config) bool {
	return l.cfg.key() == cfg.Adaptive.key() && l.hi == float64(cfg.MaxConcurrent)
}

// adaptiveKey is Adaptive without Drop: the comparable part.
type adaptiveKey struct {
	alg                                   Algorithm
	lo, initial, samples, queue, long, pm int
	window, timeout                       time.Duration
	clock                                 spillway.Clock
	tolerance, smoothing, backoff         float64
}

func (a Adaptive) key() adaptiveKey {
	return adaptiveKey{a.Algorithm, a.MinConcurrent, a.InitialLimit, a.MinSamples, a.QueueSize, a.LongWindow, a.ProbeMultiplier,
		a.Window, a.Timeout, a.Clock, a.Tolerance, a.Smoothing, a.BackoffRatio}
}

// clamp returns the limit n within the bounds.
func (l *limiter) clamp(n float64) float64 { return min(max(n, l.lo), l.hi) }

// kind sorts a call's outcome: a sample, a drop, or nothing to learn from.
func (l *limiter) kind(err error) (sample, dropped bool) {
	if err == nil {
		return true, false
	}
	if errors.Is(err, spillway.ErrCallerDone) {
		return false, false
	}
	if _, ok := errors.AsType[*spillway.PanicError](err); ok {
		return false, false
	}
	if localRefusal(err) {
		// A guard acquired after the bulkhead (a rate limiter, a throttle,
		// a shedder) refused the call: the downstream never saw it, so it
		// says nothing about the downstream's latency or load.
		return false, false
	}
	if l.cfg.Drop != nil {
		d := l.cfg.Drop(err)
		return d, d
	}
	switch spillway.ReasonOf(err) {
	case spillway.ReasonDeadlineExceeded, spillway.ReasonThrottled:
		return true, true
	}
	return false, false
}

// localRefusal reports whether err is a refusal a Spillway policy made
// before the call ran: a rejection (spillway.IsRejection) whose Error names
// the policy that made it. A downstream's own "too many requests" carries
// no policy name and stays a drop.
func localRefusal(err error) bool {
	e, ok := errors.AsType[*spillway.Error](err)
	return ok && e.Policy != "" && spillway.IsRejection(err)
}

// sample adds one released call to the open window — started at start
// (Clock), admitted with inFlight calls in flight, ended with err — and
// closes the window when it is over.
func (l *limiter) sample(b *Bulkhead, start, inFlight int64, err error) {
	ok, dropped := l.kind(err)
	if !ok {
		return
	}
	now := l.clock.Nanotime()
	if dropped {
		l.dropped.Store(true)
	}
	l.rttSum.Add(now - start)
	n := l.count.Add(1)
	for m := l.maxIn.Load(); inFlight > m && !l.maxIn.CompareAndSwap(m, inFlight); m = l.maxIn.Load() {
	}
	if n < l.minSamples || now-l.start.Load() < l.windowNs || !l.mu.TryLock() {
		return
	}
	limit, changed := l.closeWindow(now)
	l.mu.Unlock()
	if changed {
		b.setLimit(l, limit)
	}
}

// closeWindow feeds the open window to the algorithm and opens the next.
// It requires l.mu and reports the new integer limit and whether it moved.
func (l *limiter) closeWindow(now int64) (int64, bool) {
	n := l.count.Swap(0)
	if n == 0 { // another release closed it meanwhile
		return 0, false
	}
	// A round trip shorter than the clock's resolution is 1ns, not 0.
	w := window{rtt: max(1, float64(l.rttSum.Swap(0))/float64(n)), inFlight: l.maxIn.Swap(0), dropped: l.dropped.Swap(false)}
	l.start.Store(now)
	before := int64(l.estimate)
	l.estimate = l.clamp(l.alg.next(w, l.estimate))
	after := int64(l.estimate)
	return after, after != before
}

// gradient2 is Netflix's Gradient2Limit over windows: gradient =
// clamp(tolerance × longRTT / RTT, 0.5, 1); limit ← limit×(1−s) + new×s,
// where new is limit + queue while gradient is 1, limit×gradient past it.
//
// Two deviations. Netflix's new is limit×gradient + queue: past the
// tolerance the queue still pushes the limit up, and it settles where
// limit×(1−gradient) = queue, with latency above the tolerance by about
// queue/limit (10 % more at a limit of 40 and a queue of 4), which a
// downstream that thrashes pays for in throughput. And the long-term average learns only from windows that say
// something about the downstream alone — its first windows, windows whose
// demand stayed under half the limit, and windows at the lowest limit. A
// window at the limit partly measures the queue the limit itself lets
// build; Netflix's average absorbs that latency, and under a sustained
// overload the limit then creeps up with it to the upper bound (a closed
// loop against a downstream of capacity C settles at the maximum instead
// of near C: TestAdaptiveSettlesNearCapacity). A downstream that became
// slower for good pushes the limit down to MinConcurrent, where the
// average learns the new latency and the limit grows back.
type gradient2 struct {
	tolerance, smoothing, queue, lo float64
	long                            ewma
}

func (g *gradient2) next(w window, limit float64) float64 {
	appLimited := float64(w.inFlight) < limit/2
	long := g.long.value
	if g.long.n < g.long.warmup || appLimited || limit <= g.lo {
		long = g.long.add(w.rtt)
	}
	// After a long overload the long-term average lags far above the
	// recovered latency: pull it down faster than its decay would.
	if long/w.rtt > 2 {
		g.long.value *= 0.9
	}
	// A downstream that is not asked for half the limit says nothing about
	// a larger one: do not grow on it.
	if appLimited {
		return limit
	}
	gradient := max(0.5, min(1, g.tolerance*long/w.rtt))
	// The queue is added only while latency is within the tolerance
	// (Netflix adds it always): added to a shrinking limit, it holds the
	// limit where the latency exceeds the tolerance by what the queue
	// adds, past a thrashing downstream's capacity.
	next := limit + g.queue
	if gradient < 1 {
		next = limit * gradient
	}
	return limit*(1-g.smoothing) + next*g.smoothing
}

// ewma is an exponentially weighted moving average whose first warmup
// values are averaged plainly (Netflix's ExpAvgMeasurement).
type ewma struct {
	factor, value float64
	n, warmup     int
}

func (e *ewma) add(v float64) float64 {
	if e.n < e.warmup {
		e.n++
		e.value += (v - e.value) / float64(e.n)
	} else {
		e.value = e.value*(1-e.factor) + v*e.factor
	}
	return e.value
}

// aimd is Netflix's AIMDLimit over windows.
type aimd struct{ backoff, timeout float64 }

func (a *aimd) next(w window, limit float64) float64 {
	cur := math.Floor(limit)
	switch {
	case w.dropped || w.rtt > a.timeout:
		return max(1, min(cur-1, math.Floor(cur*a.backoff)))
	case float64(w.inFlight)*2 >= cur:
		return cur + 1
	}
	return limit
}

// vegas is Netflix's VegasLimit over windows, with its default functions:
// threshold log10(limit), alpha 3·log10, beta 6·log10, increase and
// decrease by log10(limit).
type vegas struct {
	smoothing, probe float64
	noLoad           float64 // the lowest window latency since the last probe
	probes, rng      uint64  // windows since the last probe; the jitter's xorshift state
	jitter           float64
}

func (v *vegas) next(w window, limit float64) float64 {
	v.probes++
	if v.jitter == 0 {
		v.jitter = v.nextJitter()
	}
	if v.jitter*v.probe*limit <= float64(v.probes) {
		v.jitter, v.probes, v.noLoad = v.nextJitter(), 0, w.rtt
		return limit
	}
	if v.noLoad == 0 || w.rtt < v.noLoad {
		v.noLoad = w.rtt
		return limit
	}
	log := math.Max(1, math.Log10(limit))
	queue := math.Ceil(limit * (1 - v.noLoad/w.rtt))
	var next float64
	switch {
	case w.dropped:
		next = limit - log
	case float64(w.inFlight)*2 < limit:
		return limit
	case queue <= log:
		next = limit + 6*log
	case queue < 3*log:
		next = limit + log
	case queue > 6*log:
		next = limit - log
	default:
		return limit
	}
	return (1-v.smoothing)*limit + v.smoothing*next
}

// nextJitter draws the probe's jitter in [0.5, 1) from a xorshift: Vegas
// replicas started together do not probe together.
func (v *vegas) nextJitter() float64 {
	v.rng ^= v.rng << 13
	v.rng ^= v.rng >> 7
	v.rng ^= v.rng << 17
	return 0.5 + float64(v.rng>>11)/(1<<53)/2
}

// setLimit makes limit the bulkhead's, if l is still its limiter (an Update
// may have replaced it), and admits the waiters it has room for.
func (b *Bulkhead) setLimit(l *limiter, limit int64) {
	b.mu.Lock()
	if b.adaptive.Load() == l {
		b.limit.Store(limit)
		b.dispatchLocked()
	}
	b.mu.Unlock()
}

// Algorithm returns the algorithm in use (Static for a fixed limit).
func (b *Bulkhead) Algorithm() Algorithm {
	if l := b.adaptive.Load(); l != nil {
		return l.cfg.Algorithm
	}
	return Static
}

// MinConcurrent returns the lowest the limit may go: the adaptive lower
// bound, or the fixed limit of a static bulkhead.
func (b *Bulkhead) MinConcurrent() int {
	if l := b.adaptive.Load(); l != nil {
		return int(l.lo)
	}
	return b.Limit()
}

// MaxConcurrent returns the highest the limit may go: Config.MaxConcurrent,
// the fixed limit of a static bulkhead and the upper bound of an adaptive one.
func (b *Bulkhead) MaxConcurrent() int { return int(b.maxConcurrent.Load()) }

// permit returns the permit of a call admitted with n calls in flight: an
// adaptive bulkhead keeps the admission time and n in its words (n >= 1
// marks a permit to sample).
func (b *Bulkhead) permit(n int64) spillway.Permit {
	if l := b.adaptive.Load(); l != nil {
		return spillway.NewPermit(b, uint64(l.clock.Nanotime()), uint64(n))
	}
	return spillway.NewPermit(b, 0, 0)
}

// errPanicked is the outcome Execute and Do release a permit with when the
// call panicked or called runtime.Goexit: never a sample.
var errPanicked = &spillway.PanicError{Value: "bulkhead: the call panicked or exited"}

// releaseUnlessDone releases p as a panic unless the call is done (and
// released p with its outcome): deferred by Execute and Do.
func (b *Bulkhead) releaseUnlessDone(p spillway.Permit, done *bool) {
	if !*done {
		b.ReleasePermit(p, errPanicked)
	}
}
