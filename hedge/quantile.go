package hedge

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear: each power of two of nanoseconds from
// 2^minExp (1µs) to 2^maxExp (about 137s) is split into 2^subBits linear
// buckets, so a bucket is at most 12.5% wide; bucket 0 holds everything
// below 1µs and the last one everything above 137s.
const (
	subBits  = 3
	subCount = 1 << subBits
	minExp   = 10
	maxExp   = 37
	nBuckets = (maxExp-minExp)*subCount + 2
	// nSlots is how many slots the window slides by.
	nSlots = 4
	// refreshEvery is how many samples Record counts between two
	// computations of the quantile; a power of two, so that the test is a
	// mask.
	refreshEvery = 32
)

// histogram counts latencies over a sliding window of nSlots slots, each a
// fixed array of atomic counters: recording a sample is two atomic adds (a
// clock read, and a mutex only when a slot is reused for a new epoch); its
// memory is fixed (nSlots × nBuckets counters, under 8 KiB).
type histogram struct {
	width int64 // nanoseconds per slot
	mu    sync.Mutex
	slots [nSlots]slot
}

type slot struct {
	epoch  atomic.Int64
	total  atomic.Int64
	counts [nBuckets]atomic.Uint32
}

func newHistogram(window time.Duration) *histogram {
	h := &histogram{width: max(int64(window)/nSlots, 1)}
	for i := range h.slots {
		// No clock reading is this old: every slot is reset on first use.
		h.slots[i].epoch.Store(math.MinInt64)
	}
	return h
}

// bucketOf returns the bucket of a latency of ns nanoseconds.
func bucketOf(ns int64) int {
	if ns < 1<<minExp {
		return 0
	}
	e := bits.Len64(uint64(ns)) - 1
	if e >= maxExp {
		return nBuckets - 1
	}
	sub := int(ns>>(e-subBits)) & (subCount - 1)
	return 1 + (e-minExp)*subCount + sub
}

// upperBound returns the largest latency bucket i holds (its end): a delay
// taken from it is never below the quantile it estimates.
func upperBound(i int) time.Duration {
	switch {
	case i == 0:
		return 1 << minExp
	case i >= nBuckets-1:
		return 1 << maxExp
	}
	e, sub := minExp+(i-1)/subCount, int64((i-1)%subCount)
	step := int64(1) << (e - subBits)
	return time.Duration(int64(1)<<e + (sub+1)*step)
}

// epoch returns the slot epoch of the clock reading now, rounding towards
// minus infinity: SystemClock reads below zero under testing/synctest.
func (h *histogram) epoch(now int64) int64 {
	e := now / h.width
	if now%h.width != 0 && now < 0 {
		e--
	}
	return e
}

// record counts one latency at clock reading now.
func (h *histogram) record(now int64, d time.Duration) {
	s := h.slot(now)
	s.counts[bucketOf(int64(d))].Add(1)
	s.total.Add(1)
}

// slot returns the slot of the clock reading now, reset if it held an older
// epoch. A sample recorded by a concurrent call during the reset may be
// lost: the estimate is approximate by design.
func (h *histogram) slot(now int64) *slot {
	e := h.epoch(now)
	s := &h.slots[(e%nSlots+nSlots)%nSlots]
	if s.epoch.Load() != e {
		h.mu.Lock()
		if s.epoch.Load() < e {
			for i := range s.counts {
				s.counts[i].Store(0)
			}
			s.total.Store(0)
			s.epoch.Store(e)
		}
		h.mu.Unlock()
	}
	return s
}

// quantile returns the latency below which a fraction q of the window's
// samples fall (a bucket's upper bound), and the window's sample count.
func (h *histogram) quantile(now int64, q float64) (time.Duration, int64) {
	e := h.epoch(now)
	var live [nSlots]*slot
	var n int64
	for i := range h.slots {
		s := &h.slots[i]
		if se := s.epoch.Load(); se > e-nSlots && se <= e {
			live[i] = s
			n += s.total.Load()
		}
	}
	if n == 0 {
		return 0, 0
	}
	rank := int64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen int64
	for b := range nBuckets {
		for _, s := range live {
			if s != nil {
				seen += int64(s.counts[b].Load())
			}
		}
		if seen >= rank {
			return upperBound(b), n
		}
	}
	return upperBound(nBuckets - 1), n
}
