package gateway

import (
	"sync"
	"time"
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
	now    func() time.Time
}

// NewEventBus returns a bus keeping the last size events (DefaultEventRing
// when size < 1).
func NewEventBus(size int) *EventBus {
	if size < 1 {
		size = DefaultEventRing
	}
	return &EventBus{ring: make([]Event, size), wake: make(chan struct{}), now: time.Now}
}

// Publish adds an event of kind with data to the ring, dropping the oldest
// when it is full, wakes the readers and returns the event's id. After
// Close it does nothing and returns 0.
func (b *EventBus) Publish(kind string, data any) uint64 {
	t := b.now()
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
