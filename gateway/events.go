package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/gateway/pool"
)

// DefaultEventRing is how many events an EventBus keeps when NewEventBus is
// given a size below 1.
const DefaultEventRing = 1024

// Event is one decision the gateway made: a breaker's transition, a sampled
// rejection, an instance's ejection or recovery, a configuration change. It
// is what GET /api/v1/events sends as one server-sent event: ID as its id,
// Kind as its event name and the whole Event as its JSON data.
type Event struct {
	// ID increases by one per event published on a bus, from 1.
	ID uint64 `json:"id"`
	// Time is when the event was published.
	Time time.Time `json:"time"`
	// Kind names the event: "breaker", "rejection", "instance", "config", or a
	// kind a caller of Publish chose.
	Kind string `json:"kind"`
	// Data is the kind's fields (docs/gateway.md lists them); it must marshal
	// to JSON and must not change once published.
	Data any `json:"data,omitempty"`
}

// EventBus keeps the last N events in a ring, with increasing ids, for
// readers that follow it with their own cursor (Read). Publishing takes a
// short lock, never waits for a reader and allocates nothing but the
// caller's data: a reader that falls behind the ring is not waited for, it is
// told on its next Read how many events it lost and skips ahead. A reader
// holds no memory of the bus's between reads, so a stalled one costs nothing.
//
// Events are published on decisions only (a transition, one rejection per
// upstream and reason per second, an ejection, a reload), never per request.
// The methods are safe for concurrent use.
type EventBus struct {
	mu   sync.Mutex
	ring []Event
	// last is the id of the newest event, 0 before the first; the event of
	// id n is at ring[(n-1)%len(ring)].
	last uint64
	// wake is closed, and replaced, when an event is published or the bus
	// closes: readers waiting in Wait wake on it.
	wake   chan struct{}
	closed bool
}

// NewEventBus returns a bus keeping the last size events (DefaultEventRing
// when size < 1).
func NewEventBus(size int) *EventBus {
	if size < 1 {
		size = DefaultEventRing
	}
	return &EventBus{ring: make([]Event, size), wake: make(chan struct{})}
}

// Publish adds an event of kind with data to the ring, dropping the oldest
// when it is full, wakes the readers and returns the event's id. After
// Close, or on a nil bus, it does nothing and returns 0.
func (b *EventBus) Publish(kind string, data any) uint64 {
	if b == nil {
		return 0
	}
	t := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0
	}
	b.last++
	b.ring[(b.last-1)%uint64(len(b.ring))] = Event{ID: b.last, Time: t, Kind: kind, Data: data}
	close(b.wake)
	b.wake = make(chan struct{})
	return b.last
}

// Read appends to buf the events after id after, oldest first, at most
// cap(buf) of them when buf has room for one (all held otherwise), and
// returns them with lost: how many events after after had already left the
// ring (the reader skips ahead over them). A reader passes the id of the
// last event it got as after; 0 reads from the first event ever published.
func (b *EventBus) Read(after uint64, buf []Event) (events []Event, lost uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if after > b.last {
		after = b.last // an id from the future (another bus, a restart): start now
	}
	size := uint64(len(b.ring))
	if oldest := b.oldest(); after+1 < oldest {
		lost, after = oldest-1-after, oldest-1
	}
	n := b.last - after
	if c := uint64(cap(buf) - len(buf)); c > 0 && n > c {
		n = c
	}
	for id := after + 1; id <= after+n; id++ {
		buf = append(buf, b.ring[(id-1)%size])
	}
	return buf, lost
}

// oldest is the id of the oldest event held (1 before the ring wraps).
// It requires that b.mu is held.
func (b *EventBus) oldest() uint64 {
	if size := uint64(len(b.ring)); b.last > size {
		return b.last - size + 1
	}
	return 1
}

// Last returns the id of the newest event, 0 before the first.
func (b *EventBus) Last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// Wait returns a channel closed when an event after id after is published
// or the bus closes (then Closed reports true). When one already is, the
// channel is closed.
func (b *EventBus) Wait(after uint64) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last > after || b.closed {
		return closedChan
	}
	return b.wake
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Close ends the bus: readers waiting in Wait wake and see Closed, and
// Publish does nothing from then on. The events held can still be read.
func (b *EventBus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.wake)
	}
}

// Closed reports whether Close was called.
func (b *EventBus) Closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// The kinds of the events the gateway publishes, and their data.
const (
	EventBreaker   = "breaker"   // BreakerEvent
	EventRejection = "rejection" // RejectionEvent
	EventInstance  = "instance"  // InstanceEvent
	EventConfig    = "config"    // Changes: what a reload (Apply) or a runtime change changed
	// EventOverride is a runtime change accepted (Override: who, what,
	// before and after); EventOverridesCleared the overrides cleared
	// (OverridesCleared), the file's configuration in force again.
	EventOverride         = "override"
	EventOverridesCleared = "overrides_cleared"
	// EventFault is a runtime fault added, removed or cleared (FaultEvent).
	EventFault = "fault"
)

// OverridesCleared is DELETE /api/v1/overrides: who cleared how many.
type OverridesCleared struct {
	Actor
	Cleared int `json:"cleared"`
}

// BreakerEvent is an upstream's breaker changing state (the states of
// spillway_circuit_state).
type BreakerEvent struct {
	Upstream string `json:"upstream"`
	From     string `json:"from"`
	To       string `json:"to"`
}

// RejectionEvent is a call the gateway refused locally. Rejections of one
// upstream and reason are sampled: at most one event a second, Count
// saying how many were refused since the previous event (this one
// included).
type RejectionEvent struct {
	Upstream string `json:"upstream"`
	Reason   string `json:"reason"`
	Count    uint64 `json:"count"`
}

// InstanceEvent is an instance of an upstream changing state: To is
// "healthy", "unhealthy", "ejected" or "restored" (back from an ejection);
// For is the ejection's length, as a Go duration ("30s").
type InstanceEvent struct {
	Upstream string `json:"upstream"`
	Instance string `json:"instance"`
	To       string `json:"to"`
	For      string `json:"for,omitempty"`
}

// Events returns the gateway's event bus: its breaker transitions, sampled
// rejections, instance transitions and configuration changes, which GET
// /api/v1/events streams. Code that changes the gateway at run time
// publishes its own events on it (Publish, with a kind of its own and data
// that marshals to JSON). Close closes it.
func (g *Gateway) Events() *EventBus { return g.events }

// rejectionSample folds the rejections of one upstream and reason into at
// most one event a second: a rejection costs a clock read and two atomic
// operations, the proxy under overload pays no lock and no allocation.
type rejectionSample struct {
	next   atomic.Int64  // Unix nanoseconds before which rejections are folded
	folded atomic.Uint64 // rejections since the last event
}

// take counts a rejection at now (Unix nanoseconds) and reports whether an
// event is due, with how many rejections it stands for.
func (s *rejectionSample) take(now int64) (count uint64, due bool) {
	s.folded.Add(1)
	next := s.next.Load()
	if now < next || !s.next.CompareAndSwap(next, now+int64(time.Second)) {
		return 0, false
	}
	return s.folded.Swap(0), true
}

// sampleRejection publishes a sampled rejection of u for reason, the i-th of
// rejections.
func (u *upstreamMetrics) sampleRejection(i int, reason spillway.Reason) {
	if n, due := u.samples[i].take(time.Now().UnixNano()); due {
		u.m.events.Publish(EventRejection, RejectionEvent{Upstream: u.name, Reason: string(reason), Count: n})
	}
}

// transition publishes a breaker's change of state.
func (u *upstreamMetrics) transition(e spillway.Event) {
	u.m.events.Publish(EventBreaker, BreakerEvent{Upstream: u.name, From: e.From, To: e.To})
}

// instance publishes an instance's change of state (pool.Options.OnTransition).
func (u *upstreamMetrics) instance(tr pool.Transition) {
	ev := InstanceEvent{Upstream: u.name, Instance: tr.Instance, To: tr.To}
	if tr.For > 0 {
		ev.For = tr.For.String()
	}
	u.m.events.Publish(EventInstance, ev)
}
