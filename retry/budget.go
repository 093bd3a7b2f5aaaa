package retry

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// ErrBudgetExhausted is the sentinel of the error a Policy returns when its
// Budget refuses a retry. The error's Code is spillway.ReasonBudgetExhausted,
// its Policy "budget" and its Cause the last attempt's failure.
var ErrBudgetExhausted = errors.New("retry budget exhausted")

// The defaults that a zero BudgetConfig field stands for.
const (
	DefaultBudgetRatio        = 0.2
	DefaultBudgetWindow       = 10 * time.Second
	DefaultBudgetMinPerSecond = 10.0
	DefaultBudgetBuckets      = 10
)

// MaxBudgetBuckets bounds BudgetConfig.Buckets, and with it the work of
// TryRetry, which sums every bucket.
const MaxBudgetBuckets = 1000

// minBucketWidth is the narrowest bucket: finer buckets would measure the
// clock's cost rather than traffic.
const minBucketWidth = time.Millisecond

// foldEvery is how many requests Request counts before it reads the clock; a
// power of two, so that the test is a mask.
const foldEvery = 16

// BudgetConfig configures a Budget. The zero value of every field means its
// default: retries up to 20% of the requests of the last 10s, plus 10
// retries a second.
type BudgetConfig struct {
	// Ratio is how many retries each request earns: retries ≤ Ratio ×
	// requests over the Window, plus the floor. Default 0.2; a negative
	// Ratio means none (the floor alone).
	Ratio float64
	// Window is the sliding window over which requests and retries are
	// counted. Default 10s. Each bucket (Window / Buckets) must be at least
	// 1ms.
	Window time.Duration
	// MinPerSecond is the floor: MinPerSecond × Window-seconds retries are
	// allowed per window whatever the traffic, so that a quiet service can
	// still retry. Default 10; a negative MinPerSecond means no floor.
	MinPerSecond float64
	// Buckets is how many buckets the window slides by: the window is
	// accurate to one bucket. Default 10, at most 1000.
	Buckets int
	// Clock times the window. Default spillway.SystemClock.
	Clock spillway.Clock
}

// Budget bounds retries by the traffic that earns them, as Finagle's and
// Linkerd's retry budgets do: over a sliding Window, retries ≤ Ratio ×
// requests + MinPerSecond × Window-seconds. The retry policies that call one
// downstream share one Budget, so that while the downstream fails the extra
// load stays a fraction of the normal load, whatever MaxAttempts says.
//
// A budget protects a downstream from many callers retrying at once. One
// caller that calls sequentially cannot make a retry storm: it sends one
// request at a time, and a refused retry only moves it on to its next
// request sooner, so a budget drops its work and spares the downstream
// nothing. Such a caller sets Config.NoBudget (see the worker recipe in
// docs/cookbook.md).
//
// Request records a request (each execution's first attempt); TryRetry
// withdraws one retry if the budget allows it; Remaining reports the
// allowance. A Budget must be made with NewBudget; it is safe for concurrent
// use and starts no goroutine.
//
// The window is a ring of buckets, each an atomic epoch and two atomic
// counters, reset lazily when the clock reaches a bucket again (the only
// moment a mutex is taken). Request costs one atomic add: it reads the clock
// only every 16th request, and then folds the requests counted so far into
// the current bucket; TryRetry and Remaining fold them too. A request may
// thus be counted in a later bucket than its own, so it stays in the window
// longer than it should: at any moment at most 15 requests (plus those of
// calls concurrent with a fold) are counted that the exact rule would have
// expired, and the budget allows at most 15 × Ratio more retries than the
// exact rule, never fewer. Concurrent TryRetry calls are exact (they
// compare-and-swap the current bucket's retry count) except across a bucket
// boundary, where each may overshoot by one.
type Budget struct {
	// pending counts the requests not yet folded into a bucket; every request
	// writes it, so it sits alone on its cache line.
	pending atomic.Int64
	_       [56]byte

	cfg     BudgetConfig
	clock   spillway.Clock
	width   int64   // nanoseconds per bucket
	ratio   float64 // 0 when the configuration says none
	floor   float64 // MinPerSecond × Window-seconds, 0 when none
	mu      sync.Mutex
	buckets []bucket
}

// bucket counts the requests and retries of one epoch (clock / width).
type bucket struct {
	epoch   atomic.Int64
	reqs    atomic.Int64
	retries atomic.Int64
}

// NewBudget validates cfg, fills in its defaults and returns the Budget. The
// error names the offending field.
func NewBudget(cfg BudgetConfig) (*Budget, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	b := &Budget{
		cfg:     cfg,
		clock:   cfg.Clock,
		width:   int64(cfg.Window) / int64(cfg.Buckets),
		ratio:   max(cfg.Ratio, 0),
		floor:   max(cfg.MinPerSecond, 0) * cfg.Window.Seconds(),
		buckets: make([]bucket, cfg.Buckets),
	}
	for i := range b.buckets {
		// No clock reading is this old, so every bucket is reset on first use.
		b.buckets[i].epoch.Store(math.MinInt64)
	}
	return b, nil
}

// MustNewBudget is NewBudget that panics on an invalid BudgetConfig.
func MustNewBudget(cfg BudgetConfig) *Budget {
	b, err := NewBudget(cfg)
	if err != nil {
		panic(err)
	}
	return b
}

func (c *BudgetConfig) normalize() error {
	switch {
	case math.IsNaN(c.Ratio) || math.IsInf(c.Ratio, 0):
		return fmt.Errorf("retry budget: Ratio must be finite, got %v", c.Ratio)
	case math.IsNaN(c.MinPerSecond) || math.IsInf(c.MinPerSecond, 0):
		return fmt.Errorf("retry budget: MinPerSecond must be finite, got %v", c.MinPerSecond)
	case c.Ratio < 0 && c.MinPerSecond < 0:
		return errors.New("retry budget: Ratio and MinPerSecond are both negative (none): the budget would refuse every retry")
	case c.Window < 0:
		return fmt.Errorf("retry budget: Window must not be negative, got %s", c.Window)
	case c.Buckets < 0 || c.Buckets > MaxBudgetBuckets:
		return fmt.Errorf("retry budget: Buckets must be in [1,%d] (0 means %d), got %d", MaxBudgetBuckets, DefaultBudgetBuckets, c.Buckets)
	}
	if c.Ratio == 0 {
		c.Ratio = DefaultBudgetRatio
	}
	if c.MinPerSecond == 0 {
		c.MinPerSecond = DefaultBudgetMinPerSecond
	}
	if c.Window == 0 {
		c.Window = DefaultBudgetWindow
	}
	if c.Buckets == 0 {
		c.Buckets = DefaultBudgetBuckets
	}
	if c.Window/time.Duration(c.Buckets) < minBucketWidth {
		return fmt.Errorf("retry budget: Window %s is too short for %d Buckets: each bucket must span at least %s", c.Window, c.Buckets, minBucketWidth)
	}
	if math.IsInf(c.MinPerSecond*c.Window.Seconds(), 0) {
		return fmt.Errorf("retry budget: MinPerSecond %v × Window %s overflows", c.MinPerSecond, c.Window)
	}
	c.Clock = spillway.ClockOrSystem(c.Clock)
	return nil
}

// Config returns the budget's configuration with every default filled in.
func (b *Budget) Config() BudgetConfig { return b.cfg }

// Request records one request: an execution's first attempt. A Policy's
// Begin calls it. It costs one atomic add, and a clock read every 16th call.
func (b *Budget) Request() {
	if b.pending.Add(1)&(foldEvery-1) == 0 {
		b.fold(b.clock.Nanotime())
	}
}

// TryRetry withdraws one retry and reports true if the budget allows it
// (Remaining() >= 1), and reports false otherwise.
func (b *Budget) TryRetry() bool {
	cur, e := b.fold(b.clock.Nanotime())
	for {
		// The current bucket's retries are read first and swapped last: a
		// concurrent withdrawal fails the swap and is judged again, and
		// concurrent requests only raise the allowance.
		r := cur.retries.Load()
		reqs, retries := b.sum(e, cur)
		if b.allowance(reqs, retries+r) < 1 {
			return false
		}
		if cur.retries.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// Remaining returns how many retries the budget allows right now (never
// negative); TryRetry succeeds while it is at least 1. It is the
// spillway_retry_budget_remaining metric.
func (b *Budget) Remaining() float64 {
	_, e := b.fold(b.clock.Nanotime())
	reqs, retries := b.sum(e, nil)
	return max(b.allowance(reqs, retries), 0)
}

// refusal describes the window at a refusal, for the error a Policy
// returns. It reads the window again, off the path of allowed retries.
func (b *Budget) refusal() *BudgetError {
	_, e := b.fold(b.clock.Nanotime())
	reqs, retries := b.sum(e, nil)
	return &BudgetError{Requests: reqs, Retries: retries, Config: b.cfg}
}

// BudgetError is the Err of the *spillway.Error a Policy returns when its
// Budget refuses a retry (errors.Is(err, ErrBudgetExhausted) holds): the
// window's counts at the refusal and the budget's configuration, so that
// its message says what the budget allowed and how to size it.
type BudgetError struct {
	// Requests and Retries are what the budget counted in its window.
	Requests, Retries int64
	// Config is the budget's configuration, every default filled in.
	Config BudgetConfig
}

// Is reports whether target is ErrBudgetExhausted.
func (e *BudgetError) Is(target error) bool { return target == ErrBudgetExhausted }

// Error says how many retries the window held, what allowed them and which
// settings raise the allowance, e.g. "retry budget exhausted: 107 retries in
// the last 10s, all that 20% of 37 requests plus 10/s allow (raise
// BudgetConfig.Ratio or MinPerSecond; a caller that calls sequentially needs
// no budget: Config.NoBudget)".
func (e *BudgetError) Error() string {
	c := e.Config
	var allow string
	switch pct := strconv.FormatFloat(math.Round(c.Ratio*1000)/10, 'f', -1, 64); {
	case c.Ratio <= 0:
		allow = fmt.Sprintf("the floor of %v/s allows", c.MinPerSecond)
	case c.MinPerSecond <= 0:
		allow = fmt.Sprintf("%s%% of %d requests allow", pct, e.Requests)
	default:
		allow = fmt.Sprintf("%s%% of %d requests plus %v/s allow", pct, e.Requests, c.MinPerSecond)
	}
	retries := "retries"
	if e.Retries == 1 {
		retries = "retry"
	}
	return fmt.Sprintf("%v: %d %s in the last %s, all that %s (raise BudgetConfig.Ratio or MinPerSecond; "+
		"a caller that calls sequentially needs no budget: Config.NoBudget)", ErrBudgetExhausted, e.Retries, retries, c.Window, allow)
}

func (b *Budget) allowance(reqs, retries int64) float64 {
	return b.ratio*float64(reqs) + b.floor - float64(retries)
}

// fold moves the pending requests into the bucket of the clock reading now,
// and returns that bucket and its epoch.
func (b *Budget) fold(now int64) (*bucket, int64) {
	e := floorDiv(now, b.width)
	n := int64(len(b.buckets))
	cur := &b.buckets[(e%n+n)%n]
	if cur.epoch.Load() != e {
		b.roll(cur, e)
	}
	if k := b.pending.Swap(0); k > 0 {
		cur.reqs.Add(k)
	}
	return cur, e
}

// roll resets bk for epoch e under b.mu, unless another caller already did
// (or moved it on to a later epoch). The counts are zeroed before the epoch
// is published, so that whoever sees the new epoch sees empty counts.
func (b *Budget) roll(bk *bucket, e int64) {
	b.mu.Lock()
	if bk.epoch.Load() < e {
		bk.reqs.Store(0)
		bk.retries.Store(0)
		bk.epoch.Store(e)
	}
	b.mu.Unlock()
}

// sum adds up the requests and retries of the buckets in the window that
// ends with epoch e; skip's retries are left out (TryRetry counts them itself).
func (b *Budget) sum(e int64, skip *bucket) (reqs, retries int64) {
	lo := e - int64(len(b.buckets))
	for i := range b.buckets {
		bk := &b.buckets[i]
		if be := bk.epoch.Load(); be > lo && be <= e {
			reqs += bk.reqs.Load()
			if bk != skip {
				retries += bk.retries.Load()
			}
		}
	}
	return reqs, retries
}

// floorDiv divides rounding towards minus infinity, so that a clock reading
// before the origin (synctest's fake time can be) still maps to one epoch
// per width.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
