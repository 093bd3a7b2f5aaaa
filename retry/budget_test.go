package retry_test

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/retry"
)

func TestBudgetDefaults(t *testing.T) {
	b := retry.MustNewBudget(retry.BudgetConfig{})
	got := b.Config()
	want := retry.BudgetConfig{Ratio: 0.2, Window: 10 * time.Second, MinPerSecond: 10, Buckets: 10, Clock: spillway.SystemClock}
	if got != want {
		t.Errorf("Config() = %+v, want %+v", got, want)
	}
	if r := b.Remaining(); r != 100 {
		t.Errorf("Remaining() = %v, want the floor of 10/s over 10s", r)
	}
	if _, err := retry.NewBudget(got); err != nil {
		t.Errorf("NewBudget(Config()) = %v", err)
	}
}

// budgetStep is one step of a budget scenario.
type budgetStep struct {
	advance  time.Duration
	requests int
	retries  int // TryRetry calls
	granted  int // how many of them succeed
	remain   float64
}

func TestBudget(t *testing.T) {
	tests := []struct {
		name  string
		cfg   retry.BudgetConfig
		steps []budgetStep
	}{
		{
			name: "ratio: each request earns a fifth of a retry",
			cfg:  retry.BudgetConfig{MinPerSecond: -1},
			steps: []budgetStep{
				{requests: 4, retries: 1, granted: 0, remain: 0.8},
				{requests: 1, retries: 1, granted: 1, remain: 0},
				{requests: 10, retries: 3, granted: 2, remain: 0},
			},
		},
		{
			name: "floor: MinPerSecond x Window retries without traffic",
			cfg:  retry.BudgetConfig{Ratio: -1, MinPerSecond: 1},
			steps: []budgetStep{
				{retries: 12, granted: 10, remain: 0},
				{requests: 100, retries: 1, granted: 0, remain: 0},
			},
		},
		{
			name: "ratio and floor add up",
			cfg:  retry.BudgetConfig{Ratio: 0.5, MinPerSecond: 0.2},
			steps: []budgetStep{
				{requests: 16, retries: 20, granted: 10, remain: 0},
			},
		},
		{
			name: "the window slides by buckets",
			cfg:  retry.BudgetConfig{Ratio: 1, MinPerSecond: -1, Window: 10 * time.Second, Buckets: 10},
			steps: []budgetStep{
				{requests: 5, remain: 5},
				{advance: 5 * time.Second, requests: 3, retries: 2, granted: 2, remain: 6},
				// At 9.999s the first bucket is still in the window.
				{advance: 4999 * ms, remain: 6},
				// At 10s it leaves: its 5 requests go, the 2 retries at 5s stay.
				{advance: ms, remain: 1},
				// At 15s the 5s bucket leaves too.
				{advance: 5 * time.Second, remain: 0},
				{requests: 2, retries: 3, granted: 2, remain: 0},
			},
		},
		{
			name: "an idle budget forgets everything",
			cfg:  retry.BudgetConfig{Ratio: 1, MinPerSecond: -1},
			steps: []budgetStep{
				{requests: 50, retries: 50, granted: 50, remain: 0},
				{advance: time.Hour, requests: 1, retries: 2, granted: 1, remain: 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := spillway.NewManualClock(0)
			tt.cfg.Clock = clock
			b := retry.MustNewBudget(tt.cfg)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				for range s.requests {
					b.Request()
				}
				granted := 0
				for range s.retries {
					if b.TryRetry() {
						granted++
					}
				}
				if granted != s.granted {
					t.Errorf("step %d: %d of %d retries granted, want %d", i, granted, s.retries, s.granted)
				}
				if r := b.Remaining(); math.Abs(r-s.remain) > 1e-9 {
					t.Errorf("step %d: Remaining() = %v, want %v", i, r, s.remain)
				}
			}
		})
	}
}

// TestBudgetLateFoldIsBounded shows the documented inaccuracy of Request's
// batching: requests not yet folded are counted in the bucket current when
// they are, so up to 15 requests can outlive the window, never more.
func TestBudgetLateFoldIsBounded(t *testing.T) {
	clock := spillway.NewManualClock(0)
	b := retry.MustNewBudget(retry.BudgetConfig{Ratio: 1, MinPerSecond: -1, Clock: clock})
	for range 15 {
		b.Request() // at 0s, not folded yet
	}
	clock.Advance(9 * time.Second)
	b.Request() // the 16th folds all 16 into the 9s bucket
	clock.Advance(6 * time.Second)
	// The exact rule counts only the request at 9s.
	if r := b.Remaining(); r != 16 {
		t.Errorf("Remaining() = %v, want 16: the exact 1 plus the 15 folded late", r)
	}

	// TryRetry folds what is pending, so a retry never misses a request.
	clock.Set(0)
	b = retry.MustNewBudget(retry.BudgetConfig{Ratio: 1, MinPerSecond: -1, Clock: clock})
	b.Request()
	if !b.TryRetry() || b.TryRetry() {
		t.Error("one request at ratio 1 must earn exactly one retry")
	}
}

func TestBudgetConfigValidation(t *testing.T) {
	tests := []struct {
		cfg  retry.BudgetConfig
		want string
	}{
		{retry.BudgetConfig{Ratio: nan()}, "Ratio"},
		{retry.BudgetConfig{Ratio: posInf()}, "Ratio"},
		{retry.BudgetConfig{MinPerSecond: nan()}, "MinPerSecond"},
		{retry.BudgetConfig{MinPerSecond: -posInf()}, "MinPerSecond"},
		{retry.BudgetConfig{Ratio: -1, MinPerSecond: -1}, "both negative"},
		{retry.BudgetConfig{Window: -time.Second}, "Window"},
		{retry.BudgetConfig{Buckets: -1}, "Buckets"},
		{retry.BudgetConfig{Buckets: 1001}, "Buckets"},
		{retry.BudgetConfig{Window: 5 * ms, Buckets: 10}, "Window 5ms is too short for 10 Buckets"},
		{retry.BudgetConfig{MinPerSecond: math.MaxFloat64, Window: time.Hour}, "overflows"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := retry.NewBudget(tt.cfg)
			if err == nil || !strings.HasPrefix(err.Error(), "retry budget: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewBudget(%+v) = %v, want an error naming %q", tt.cfg, err, tt.want)
			}
			defer func() {
				if recover() == nil {
					t.Error("MustNewBudget did not panic")
				}
			}()
			retry.MustNewBudget(tt.cfg)
		})
	}
}

// budgetModel is the naive budget: it keeps every event with its time and
// counts those whose bucket is in the window, the rule the Budget follows
// exactly but for Request's batching.
type budgetModel struct {
	width, n     int64
	ratio, floor float64
	requests     []int64
	retries      []int64
}

func (m *budgetModel) count(events []int64, now int64) int64 {
	e := epoch(now, m.width)
	var c int64
	for _, t := range events {
		if be := epoch(t, m.width); be > e-m.n && be <= e {
			c++
		}
	}
	return c
}

// allowance is the exact rule, with slack requests counted on top.
func (m *budgetModel) allowance(now, slack int64) float64 {
	return m.ratio*float64(m.count(m.requests, now)+slack) + m.floor - float64(m.count(m.retries, now))
}

func epoch(t, width int64) int64 {
	e := t / width
	if t%width != 0 && t < 0 {
		e--
	}
	return e
}

// TestBudgetMatchesModel feeds a Budget and the naive model the same timed
// events: the Budget never allows less than the exact rule, and never more
// than the exact rule with the 15 requests of a late fold.
func TestBudgetMatchesModel(t *testing.T) {
	const lateFold = 15
	rapid.Check(t, func(t *rapid.T) {
		buckets := rapid.IntRange(1, 20).Draw(t, "buckets")
		width := time.Duration(rapid.Int64Range(int64(ms), int64(time.Second)).Draw(t, "width"))
		ratio := rapid.OneOf(rapid.Just(-1.0), rapid.Float64Range(0.01, 3)).Draw(t, "ratio")
		minPerSecond := rapid.OneOf(rapid.Just(-1.0), rapid.Float64Range(0.01, 20)).Draw(t, "minPerSecond")
		if ratio < 0 && minPerSecond < 0 {
			minPerSecond = 1
		}
		clock := spillway.NewManualClock(time.Duration(rapid.Int64Range(-int64(time.Hour), int64(time.Hour)).Draw(t, "start")))
		b := retry.MustNewBudget(retry.BudgetConfig{Ratio: ratio, MinPerSecond: minPerSecond, Window: width * time.Duration(buckets), Buckets: buckets, Clock: clock})
		cfg := b.Config()
		m := &budgetModel{width: int64(width), n: int64(buckets), ratio: max(cfg.Ratio, 0), floor: max(cfg.MinPerSecond, 0) * cfg.Window.Seconds()}

		steps := rapid.IntRange(1, 200).Draw(t, "steps")
		for range steps {
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0:
				clock.Advance(time.Duration(rapid.Int64Range(0, int64(width)*int64(buckets+2)).Draw(t, "advance")))
			case 1:
				for range rapid.IntRange(1, 40).Draw(t, "requests") {
					b.Request()
					m.requests = append(m.requests, clock.Nanotime())
				}
			case 2:
				now := clock.Nanotime()
				exact, loose := m.allowance(now, 0), m.allowance(now, lateFold)
				got := b.TryRetry()
				if got {
					m.retries = append(m.retries, now)
				}
				if exact >= 1 && !got {
					t.Fatalf("refused a retry the exact rule allows (allowance %v)", exact)
				}
				if got && loose < 1 {
					t.Fatalf("granted a retry beyond the bound (allowance %v with %d late requests)", loose, lateFold)
				}
			case 3:
				now := clock.Nanotime()
				exact, loose := max(m.allowance(now, 0), 0), max(m.allowance(now, lateFold), 0)
				if r := b.Remaining(); r < exact-1e-9 || r > loose+1e-9 {
					t.Fatalf("Remaining() = %v, want within [%v, %v]", r, exact, loose)
				}
			}
		}
	})
}

func TestBudgetConcurrentRetriesAreExact(t *testing.T) {
	clock := spillway.NewManualClock(0)
	b := retry.MustNewBudget(retry.BudgetConfig{Ratio: 0.25, MinPerSecond: 0.5, Clock: clock})
	const workers, each = 8, 1000
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				b.Request()
			}
		})
	}
	wg.Wait()
	var granted atomic.Int64
	for range workers {
		wg.Go(func() {
			for range each {
				if b.TryRetry() {
					granted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// 0.25 × 8000 requests + 0.5/s × 10s.
	if got := granted.Load(); got != 2005 {
		t.Errorf("granted %d retries, want exactly 2005", got)
	}
	if r := b.Remaining(); r != 0 {
		t.Errorf("Remaining() = %v, want 0", r)
	}
}

// TestBudgetConcurrentWithRollover runs requests, retries and reads while
// the clock moves through many bucket rollovers. It is mostly for the race
// detector; its count check is loose: a retry is earned by the requests of
// its own or the previous window, so a run allows at most 2 × Ratio × its
// requests, plus per window the late fold (15) and a bucket-boundary
// overshoot of one per worker and bucket.
func TestBudgetConcurrentWithRollover(t *testing.T) {
	clock := spillway.NewManualClock(0)
	b := retry.MustNewBudget(retry.BudgetConfig{Ratio: 0.25, MinPerSecond: -1, Window: 100 * ms, Buckets: 10, Clock: clock})
	const workers, each, ticks = 4, 2000, 2000
	var requests, granted atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				b.Request()
				requests.Add(1)
				if b.TryRetry() {
					granted.Add(1)
				}
				if r := b.Remaining(); r < 0 || math.IsNaN(r) {
					t.Errorf("Remaining() = %v", r)
				}
			}
		})
	}
	wg.Go(func() {
		for range ticks {
			clock.Advance(time.Millisecond)
		}
	})
	wg.Wait()
	windows := ticks/100 + 1
	if g, r := granted.Load(), requests.Load(); float64(g) > 2*0.25*float64(r)+float64(windows*(15+workers*10)) {
		t.Errorf("granted %d retries for %d requests at ratio 0.25", g, r)
	}
}
