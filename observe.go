package spillway

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventAttempt: an attempt finished; Attempt, Duration and Err are set.
	EventAttempt EventKind = iota + 1
	// EventRetry: a retry is scheduled; Attempt (the one that failed), Delay and Err are set.
	EventRetry
	// EventTransition: a breaker changed state; From and To are set.
	EventTransition
	// EventRejection: a policy refused a call; Reason is set.
	EventRejection
	// EventFallback: a fallback served; Fallback names it and Err is the error it replaced.
	EventFallback
	// EventTimeout: a timeout policy cut a call short; Duration is the limit.
	EventTimeout
	// EventHedge: a hedging policy sent a hedge; Attempt is the hedge's
	// number (1 for the first) and Delay how long the previous attempt
	// had gone unanswered.
	EventHedge
	// EventHedgeWon: a hedge's answer won its call; Attempt is the hedge's
	// number and Duration the call's latency.
	EventHedgeWon
)

var eventKindNames = [...]string{"", "attempt", "retry", "transition", "rejection", "fallback", "timeout", "hedge", "hedge_won"}

func (k EventKind) String() string {
	if int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return "unknown"
}

// Event is one observation. Only the fields that its Kind documents are set.
// Events are passed by value so that reporting one allocates nothing.
type Event struct {
	Kind EventKind
	// Context is the context of the call the event belongs to, when the
	// policy has one (every event but a breaker's transition): tracing
	// adapters find the call's span in it.
	Context context.Context
	// Policy is the kind of policy that reports: "breaker", "retry", "bulkhead",
	// "timeout", "fallback", "budget", "hedge" or "pipeline".
	Policy string
	// Name is the reporting policy's name.
	Name     string
	Reason   Reason
	From, To string
	Attempt  int
	Delay    time.Duration
	Duration time.Duration
	Fallback string
	Err      error
}

// Observer receives events from policies. Observe runs synchronously on the
// goroutine of the call that caused the event (never under a policy's lock), so
// it must be fast and must not block; wrap slow consumers in a ChannelObserver.
//
// A nil Observer is valid everywhere and costs one nil check.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to the Observer interface.
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// Observers fans one event out to several observers, in order.
type Observers []Observer

// Observe passes e to each observer.
func (os Observers) Observe(e Event) {
	for _, o := range os {
		if o != nil {
			o.Observe(e)
		}
	}
}

// Registrar is what an Observer that exports gauges implements besides
// Observe (spillwayprom.Metrics, spillwayotel.Observer): Register exports
// the gauges of the policies it is given (breaker state, bulkhead use, retry
// budget) and skips those that have none, such as timeouts and fallbacks,
// and nil ones. It returns an error when another policy already holds a
// name. NewPipeline, and spillwayhttp and spillwaygrpc for every downstream
// they make, register their policies with an Observer that implements it.
type Registrar interface {
	Register(policies ...any) error
}

// Register registers policies with every member that is a Registrar, so
// that Observers{metrics, logs} instruments as metrics alone does.
func (os Observers) Register(policies ...any) error {
	var errs []error
	for _, o := range os {
		if r, ok := o.(Registrar); ok {
			errs = append(errs, r.Register(policies...))
		}
	}
	return errors.Join(errs...)
}

// ChannelObserver delivers events to a buffered channel without ever
// blocking: when the buffer is full the event is dropped and counted. The
// consumer reads C from a goroutine of its own.
type ChannelObserver struct {
	C       chan Event
	dropped atomic.Uint64
}

// NewChannelObserver returns a ChannelObserver whose channel holds size events.
func NewChannelObserver(size int) *ChannelObserver {
	return &ChannelObserver{C: make(chan Event, size)}
}

// Observe sends e if there is room and drops it otherwise.
func (c *ChannelObserver) Observe(e Event) {
	select {
	case c.C <- e:
	default:
		c.dropped.Add(1)
	}
}

// Dropped returns how many events were dropped because the channel was full.
func (c *ChannelObserver) Dropped() uint64 { return c.dropped.Load() }
