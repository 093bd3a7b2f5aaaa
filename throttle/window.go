package throttle

import (
	"math"
	"sync/atomic"
	"time"
)

// window counts the requests and accepts of the current bucket and the n-1
// buckets before it; bucket i holds epoch e (the clock divided by the
// bucket width) when e mod n == i.
//
// A call in the current epoch takes no lock: Acquire reads the sums of the
// buckets before the current one (prev*) and the current bucket; the
// release adds to the bucket of its Acquire (one atomic add: the bucket
// packs both counts in one word). The first call of a new epoch takes the
// Throttler's mutex to recycle the bucket and sum the others into prev*
// (roll), at most once a bucket width. The inaccuracies left, all bounded
// by one bucket and corrected at the next roll: a call that read the epoch
// just before a roll adds to the bucket that just became a previous one, so
// prev* misses it until the next roll; a reader racing a roll may see the
// new prev* with the old current bucket, counting that bucket twice.
type window struct {
	// gen tells the windows of one Throttler apart: an Update that changes
	// the buckets makes a new window, and the permits of the old one are
	// then not recorded (their epoch means another time).
	gen   uint64
	width int64 // nanoseconds per bucket
	n     int64
	// cur is the current epoch; prevReqs and prevAccs sum the live buckets
	// before it. Read by every call, written by a roll only.
	cur                atomic.Int64
	prevReqs, prevAccs atomic.Int64
	buckets            []bucket
}

// bucket counts the requests and accepts of one epoch. Only the current
// bucket is written on the common path, so buckets are not padded: a
// window of 120 buckets takes 2 KB.
type bucket struct {
	epoch atomic.Int64
	// counts packs the requests (low 32 bits) and the accepts (high 32
	// bits), so that an accept adds to both with one atomic add. A bucket
	// holds at most 2³² − 1 requests: 4 billion calls a bucket.
	counts atomic.Uint64
}

// The words a release adds to a bucket's counts.
const (
	oneRequest = 1
	oneAccept  = 1 | 1<<32
)

func unpack(c uint64) (reqs, accs int64) { return int64(uint32(c)), int64(c >> 32) }

func newWindow(gen uint64, width int64, n int) *window {
	w := &window{gen: gen, width: width, n: int64(n), buckets: make([]bucket, n)}
	for i := range w.buckets {
		w.buckets[i].epoch.Store(math.MinInt64) // never live
	}
	w.cur.Store(math.MinInt64) // the first call rolls
	return w
}

// bucket returns the bucket of epoch e, which is never negative (origin).
func (w *window) bucket(e int64) *bucket { return &w.buckets[e%w.n] }

// origin is the time epochs count from: a whole number of seconds, about
// 146 years before the clock's zero, so that every clock reading (a
// ManualClock's or synctest's may be negative) is after it and a plain
// division rounds it down to its bucket.
const origin = -4_611_686_018 * int64(time.Second)

// epoch returns the epoch of the clock reading now.
func (w *window) epoch(now int64) int64 { return (now - origin) / w.width }

// start returns the clock reading at which epoch e begins.
func (w *window) start(e int64) int64 { return e*w.width + origin }

// counts returns the requests and accepts of the window whose current epoch
// is e, and e's bucket.
func (w *window) counts(e int64) (reqs, accs int64, b *bucket) {
	b = w.bucket(e)
	reqs, accs = unpack(b.counts.Load())
	return w.prevReqs.Load() + reqs, w.prevAccs.Load() + accs, b
}

// roll makes e the current epoch: its bucket emptied, the live buckets
// before it summed into prev*. The caller holds the Throttler's mutex and
// has checked that e is past the current epoch.
func (w *window) roll(e int64) {
	b := w.bucket(e)
	b.counts.Store(0)
	b.epoch.Store(e)
	w.settle(e)
}

// settle sums the live buckets before epoch e into prev* and makes e
// current. The sums are stored before the epoch, so that whoever reads the
// new epoch reads its sums.
func (w *window) settle(e int64) {
	var reqs, accs int64
	for i := range w.buckets {
		b := &w.buckets[i]
		if be := b.epoch.Load(); be > e-w.n && be < e {
			r, a := unpack(b.counts.Load())
			reqs += r
			accs += a
		}
	}
	w.prevReqs.Store(reqs)
	w.prevAccs.Store(accs)
	w.cur.Store(e)
}

// rebucketed returns a window of another width and number of buckets,
// current at the clock reading now, holding w's counts that fall inside it:
// each of w's buckets moves, whole, to the new bucket where it began (a
// bucket that w had already let expire comes back if the new window is
// longer: it still holds its epoch's counts).
// Counts added to w while it is copied are lost.
func (w *window) rebucketed(gen uint64, width int64, n int, now int64) *window {
	nw := newWindow(gen, width, n)
	e := nw.epoch(now)
	cur := nw.bucket(e)
	cur.epoch.Store(e)
	for i := range w.buckets {
		b := &w.buckets[i]
		be := b.epoch.Load()
		if be == math.MinInt64 {
			continue
		}
		ne := min(nw.epoch(w.start(be)), e)
		if ne <= e-nw.n {
			continue // outside the new window
		}
		nb := nw.bucket(ne)
		if nb.epoch.Load() != ne {
			nb.epoch.Store(ne)
		}
		nb.counts.Add(b.counts.Load())
	}
	nw.settle(e)
	return nw
}
