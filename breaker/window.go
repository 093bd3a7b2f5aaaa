package breaker

import (
	"math"
	"sync"
	"sync/atomic"
)

// The outcome of one recorded call, as bits: a slow failure is both.
const (
	outFailure uint32 = 1 << iota
	outSlow
)

// pair packs two signed counters into one word so that one atomic add moves
// both: lo in the low 32 bits, hi above. A counter may dip below zero for an
// instant when two writers race (an eviction's decrement landing before the
// increment it undoes), which the signed decoding of unpair survives.
func pair(lo, hi int64) uint64 { return uint64(lo + hi<<32) }

func unpair(w uint64) (lo, hi int64) {
	lo = int64(int32(uint32(w)))
	hi = (int64(w) - lo) >> 32
	return lo, hi
}

// counts are a window's totals, read without stopping its writers.
type counts struct {
	calls, failures, slow int64
}

// clamp bounds the totals to what the window can hold: a reader racing the
// writers may see an eviction before the insertion it follows.
func (c counts) clamp() counts {
	c.calls = max(c.calls, 0)
	c.failures = min(max(c.failures, 0), c.calls)
	c.slow = min(max(c.slow, 0), c.calls)
	return c
}

// countWindow remembers the outcomes of the last size recorded calls, one
// slot per call in a ring.
//
// Writers take no lock. Each claims a ring position with one atomic add,
// swaps its outcome into that slot only if the slot holds another, and then
// adds the difference to the packed failure/slow totals, so the totals are
// exactly the sum of the slots whenever no writer is between its swap and
// its add. Two writers meet on one slot only when the ring wraps around
// while the first is still writing; the swap keeps even that consistent.
type countWindow struct {
	size  uint64
	slots []atomic.Uint32
	// The counters below are written by calls; keep them off the line of
	// the fields above, which every call reads.
	_ [64]byte
	// pos counts the calls recorded since the window started; the next call
	// goes to slot pos % size. Successes recorded while the whole window holds
	// successes do not advance it (see record).
	pos atomic.Uint64
	// totals packs the failures (lo) and slow calls (hi) in the slots.
	totals atomic.Uint64
	// consec is the current run of failures (only when Config.ConsecutiveFailures > 0).
	consec atomic.Int64
}

func newCountWindow(size int) *countWindow {
	return &countWindow{size: uint64(size), slots: make([]atomic.Uint32, size)}
}

// record adds outcome o and reports whether the breaker must now open.
func (w *countWindow) record(c *core, o uint32) bool {
	if o == 0 && w.totals.Load() == 0 && w.pos.Load() >= w.size {
		// The window is full of successes: adding one more changes no slot,
		// no total and no rate, so nothing is written at all. Which slot is
		// the oldest does not matter while every slot is the same. (Nor is
		// the run of failures to reset: with no failure in the window, the
		// last call was no failure.)
		return false
	}
	n := w.pos.Add(1)
	// The rates can rise only when a failure or slow call comes in, or when
	// the window reaches MinCalls: those are the only times they are judged.
	judge := n == c.minCalls
	slot := &w.slots[(n-1)%w.size]
	if slot.Load() != o {
		if old := slot.Swap(o); old != o {
			w.totals.Add(pair(int64(o&outFailure)-int64(old&outFailure), int64(o&outSlow>>1)-int64(old&outSlow>>1)))
			judge = judge || o&^old != 0
		}
	}
	if c.consecutive(&w.consec, o) {
		return true
	}
	if !judge {
		return false
	}
	f, s := unpair(w.totals.Load())
	return c.tripsAt(min(n, w.size), f, s)
}

func (w *countWindow) counts() counts {
	f, s := unpair(w.totals.Load())
	return counts{calls: int64(min(w.pos.Load(), w.size)), failures: f, slow: s}.clamp()
}

// resized returns a window of the new size holding the newest outcomes of w
// that fit. Outcomes recorded into w while it is copied are lost.
func (w *countWindow) resized(size int) *countWindow {
	nw := newCountWindow(size)
	n := w.pos.Load()
	keep := min(n, w.size, nw.size)
	var f, s int64
	for i := range keep {
		o := w.slots[(n-keep+i)%w.size].Load()
		nw.slots[i].Store(o)
		f += int64(o & outFailure)
		s += int64(o & outSlow >> 1)
	}
	nw.pos.Store(keep)
	nw.totals.Store(pair(f, s))
	nw.consec.Store(w.consec.Load())
	return nw
}

// timeWindow remembers the calls recorded in the current bucket and the
// n-1 buckets before it; bucket i holds epoch e (the time divided by the
// bucket width) when e % n == i.
//
// A call whose time falls in the current epoch takes no lock: one atomic
// add to the current bucket. The first call of a new epoch takes mu to
// recycle the bucket, expire the buckets that left the window and sum the
// others into prev, so that judging the window is prev plus the current
// bucket: two loads, whatever the number of buckets. A call from an older
// epoch that is still in the window (its clock read raced the new epoch)
// takes mu and adds to prev too. The inaccuracies left: a call that found
// its epoch current just before a recycle and adds just after it is missed
// by prev until the next recycle; one that stalled for a whole window adds
// to a recycled bucket.
type timeWindow struct {
	width   int64 // nanoseconds per bucket
	n       int64
	buckets []bucket
	// cur is the current epoch; a new one is swapped in at each recycle.
	cur atomic.Pointer[epoch]
	// pending is set while the window's rates are over a threshold with
	// fewer than MinCalls calls: then successes are judged too, since the
	// call that brings the window to MinCalls opens the breaker.
	pending atomic.Bool
	_       [64]byte
	// prev sums the calls (lo) and failures (hi) of the live buckets
	// before the current one, prevSlow their slow calls.
	prev     atomic.Uint64
	prevSlow atomic.Int64
	consec   atomic.Int64
	mu       sync.Mutex // serialises recycling and late calls
}

// epoch is one bucket-width of time and the bucket that records it.
type epoch struct {
	e, start, end int64
	b             *bucket
}

// bucket is padded to a cache line: the current bucket is written by every
// call, its neighbours by the calls that straddle an epoch boundary.
type bucket struct {
	epoch atomic.Int64
	cf    atomic.Uint64 // calls (lo) and failures (hi)
	slow  atomic.Int64
	_     [40]byte
}

func newTimeWindow(width int64, n int) *timeWindow {
	w := &timeWindow{width: width, n: int64(n), buckets: make([]bucket, n)}
	for i := range w.buckets {
		w.buckets[i].epoch.Store(math.MinInt64) // never live
	}
	w.cur.Store(&epoch{e: math.MinInt64, start: 1, end: 0}) // contains no time
	return w
}

// floorDiv divides rounding down, so that a clock reading before 0 still
// falls in the right bucket.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func (w *timeWindow) bucket(e int64) *bucket {
	i := e % w.n
	if i < 0 {
		i += w.n
	}
	return &w.buckets[i]
}

// record adds outcome o at time now and reports whether the breaker must now open.
func (w *timeWindow) record(c *core, o uint32, now int64) bool {
	d := pair(1, int64(o&outFailure))
	slow := int64(o&outSlow) >> 1
	var bk *bucket // the current bucket, if the call is in the current epoch
	var cf uint64  // the current bucket's calls and failures
	s := int64(-1) // its slow calls, when known
	judge := false
	if cur := w.cur.Load(); now >= cur.start && now < cur.end {
		bk = cur.b
		cf = bk.cf.Add(d)
		if slow != 0 {
			s = bk.slow.Add(1)
		}
	} else {
		var ok bool
		if cf, s, judge, ok = w.recordLate(now, d, slow); !ok {
			return false
		}
	}
	if c.consecutive(&w.consec, o) {
		return true
	}
	if o == 0 && !judge && !w.pending.Load() {
		// A success can only lower the rates: judging it cannot open.
		return false
	}
	if s < 0 {
		s = bk.slow.Load()
	}
	calls, f := unpair(cf + w.prev.Load())
	s += w.prevSlow.Load()
	over := c.overRates(calls, f, s)
	if pending := over && uint64(calls) < c.minCalls; w.pending.Load() != pending {
		w.pending.Store(pending)
	}
	return over && uint64(calls) >= c.minCalls
}

// recordLate records a call whose time is not in the current epoch, under
// mu, and returns the current bucket's counts after it. The first call of
// a new epoch recycles a bucket (judge: buckets expired, which can raise the
// rates); a late call from an older epoch still in the window goes to its
// bucket and to prev; a call older than the window is dropped (ok false).
func (w *timeWindow) recordLate(now int64, d uint64, slow int64) (cf uint64, s int64, judge, ok bool) {
	e := floorDiv(now, w.width)
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := w.cur.Load()
	switch {
	case e > cur.e:
		bk := w.recycle(e)
		return bk.cf.Add(d), bk.slow.Add(slow), true, true
	case e == cur.e: // another call recycled it meanwhile
		return cur.b.cf.Add(d), cur.b.slow.Add(slow), false, true
	case e > cur.e-w.n:
		bk := w.bucket(e)
		if bk.epoch.Load() != e {
			// No call was recorded during e: its bucket expired and was
			// emptied by a recycle since.
			bk.cf.Store(0)
			bk.slow.Store(0)
			bk.epoch.Store(e)
		}
		bk.cf.Add(d)
		bk.slow.Add(slow)
		w.prev.Add(d)
		w.prevSlow.Add(slow)
		return cur.b.cf.Load(), cur.b.slow.Load(), false, true
	}
	return 0, 0, false, false
}

// recycle makes e the current epoch and returns its bucket, after expiring
// every bucket that left the window (the one recycled for e among them) and
// summing the others into prev.
// recycle requires that w.mu is held.
func (w *timeWindow) recycle(e int64) *bucket {
	var cf uint64
	var slow int64
	for i := range w.buckets {
		b := &w.buckets[i]
		switch ep := b.epoch.Load(); {
		case ep <= e-w.n:
			// Swap: a stalled call's add lands either before (and is
			// dropped with the bucket) or after (and stays).
			b.cf.Swap(0)
			b.slow.Swap(0)
		case ep < e:
			cf += b.cf.Load()
			slow += b.slow.Load()
		}
	}
	bk := w.bucket(e)
	bk.epoch.Store(e)
	w.prev.Store(cf)
	w.prevSlow.Store(slow)
	start := e * w.width
	w.cur.Store(&epoch{e: e, start: start, end: start + w.width, b: bk})
	return bk
}

// counts sums the buckets that are live at now; it is right even when no
// call has recycled the expired buckets yet.
func (w *timeWindow) counts(now int64) counts {
	e := floorDiv(now, w.width)
	var t counts
	for i := range w.buckets {
		b := &w.buckets[i]
		if ep := b.epoch.Load(); ep > e-w.n && ep <= e {
			calls, f := unpair(b.cf.Load())
			t.calls += calls
			t.failures += f
			t.slow += b.slow.Load()
		}
	}
	return t.clamp()
}

// rebucketed returns a window of the new geometry holding the calls of w
// that are still in it at now. Each old bucket moves whole, to the new
// bucket that holds its start time. Calls recorded into w while it is
// copied are lost.
func (w *timeWindow) rebucketed(now, width int64, n int) *timeWindow {
	nw := newTimeWindow(width, n)
	e, ne := floorDiv(now, w.width), floorDiv(now, width)
	for i := range w.buckets {
		b := &w.buckets[i]
		ep := b.epoch.Load()
		if ep <= e-w.n || ep > e {
			continue
		}
		nep := floorDiv(ep*w.width, width)
		if nep <= ne-nw.n {
			continue
		}
		nb := nw.bucket(nep)
		nb.epoch.Store(nep)
		nb.cf.Add(b.cf.Load())
		nb.slow.Add(b.slow.Load())
	}
	nw.mu.Lock()
	nw.recycle(ne)
	nw.mu.Unlock()
	nw.consec.Store(w.consec.Load())
	return nw
}
