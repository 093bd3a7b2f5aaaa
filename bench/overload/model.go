package overload

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"time"
)

// Downstream is the overloaded service: a processor-sharing server whose
// calls slow each other down past its capacity.
//
// Each call brings an amount of work (seconds at full speed, see Work). Up to
// Capacity calls run at full speed at once. Past it, the n calls share the
// Capacity workers (each gets Capacity/n of one) and contention wastes a
// further part of them (a factor 1/(1+Kappa·(n/Capacity−1))). With Kappa = 1 a
// steady concurrency n gives every call the latency L·(n/C)² and the service
// a throughput of (C/L)·(C/n): past C it falls as concurrency rises, which is
// how a real service thrashes (locks, garbage collection, context switches)
// rather than merely queueing. A call its client abandoned is cancelled and
// leaves the server (as a Go server that honours the request context does).
//
// A Downstream is not safe for concurrent use; the real run's server guards
// it with a mutex. Time is given to it (Advance), never read.
type Downstream struct {
	capacity float64
	kappa    float64
	live     int     // calls started and neither done nor cancelled
	served   float64 // work every live call has received since the start, in seconds
	calls    callHeap
}

// Call is one call in a Downstream.
type Call struct {
	target float64 // the Downstream's served value at which the call is done
	seq    uint64  // start order: breaks ties so that runs are reproducible
	state  callState
	// Done is closed when the call completes, if the caller set it (the real
	// run); the simulation leaves it nil.
	Done chan struct{}
}

type callState uint8

const (
	running callState = iota
	completed
	cancelled
)

// NewDownstream returns a Downstream of the given capacity (calls at full
// speed) and thrashing coefficient kappa (0: past capacity the calls only
// share the workers, throughput stays at C/L; 1: latency L·(n/C)²).
func NewDownstream(capacity int, kappa float64) *Downstream {
	return &Downstream{capacity: float64(capacity), kappa: kappa}
}

// SetCapacity changes the capacity (instances lost or added). The caller
// advances the server to the time of the change first.
func (d *Downstream) SetCapacity(capacity int) { d.capacity = float64(capacity) }

// Live returns the number of calls in the server.
func (d *Downstream) Live() int { return d.live }

// speed is the rate at which each live call receives work.
func (d *Downstream) speed() float64 {
	n := float64(d.live)
	if n <= d.capacity {
		return 1
	}
	return (d.capacity / n) / (1 + d.kappa*(n/d.capacity-1))
}

// Advance moves the server's time forward by dt, giving every live call its
// share of work. The caller completes due calls with PopDone first: Advance
// must not pass the next completion (NextDone).
func (d *Downstream) Advance(dt time.Duration) {
	if d.live > 0 && dt > 0 {
		d.served += d.speed() * dt.Seconds()
	}
}

// Start adds a call needing work seconds of work at full speed.
func (d *Downstream) Start(work float64, seq uint64) *Call {
	c := &Call{target: d.served + work, seq: seq}
	heap.Push(&d.calls, c)
	d.live++
	return c
}

// Cancel removes a running call (its client gave up); it reports whether
// the call was still running.
func (d *Downstream) Cancel(c *Call) bool {
	if c.state != running {
		return false
	}
	c.state = cancelled
	d.live--
	return true
}

// NextDone returns how long from now the next live call completes at the
// current speed, rounded up to the nanosecond; ok is false when none runs.
func (d *Downstream) NextDone() (dt time.Duration, ok bool) {
	d.dropCancelled()
	if len(d.calls) == 0 {
		return 0, false
	}
	left := max(0, d.calls[0].target-d.served)
	return time.Duration(math.Ceil(left / d.speed() * 1e9)), true
}

// PopDone removes and returns a call whose work is done, or nil.
func (d *Downstream) PopDone() *Call {
	d.dropCancelled()
	// A nanosecond of work of slack: NextDone's rounding must not leave a
	// call a hair short of done at its own completion time.
	if len(d.calls) == 0 || d.calls[0].target > d.served+1e-9 {
		return nil
	}
	c := heap.Pop(&d.calls).(*Call)
	c.state = completed
	d.live--
	return c
}

func (d *Downstream) dropCancelled() {
	for len(d.calls) > 0 && d.calls[0].state == cancelled {
		heap.Pop(&d.calls)
	}
}

// Work draws a call's work in seconds: mean meanWork, half of it fixed and
// half exponential, so the uncontended p99 is about 2.8× the mean (the
// shape of a typical RPC: a floor plus a tail).
func Work(rng *rand.Rand, meanWork time.Duration) float64 {
	m := meanWork.Seconds()
	return m/2 + m/2*rng.ExpFloat64()
}

type callHeap []*Call

func (h callHeap) Len() int { return len(h) }
func (h callHeap) Less(i, j int) bool {
	if h[i].target != h[j].target {
		return h[i].target < h[j].target
	}
	return h[i].seq < h[j].seq
}
func (h callHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *callHeap) Push(x any)   { *h = append(*h, x.(*Call)) }
func (h *callHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return c
}
