// Package spillwaytest holds what the policies' tests share.
package spillwaytest

import (
	"sync"

	"github.com/spillway-dev/spillway"
)

// Recorder is an Observer that keeps every event, safely for concurrent
// use. It panics on an event without a context: every event of a call must
// carry the call's context (tracing adapters rely on it). It keeps the
// events without their context, so that tests compare them with ==.
type Recorder struct {
	mu     sync.Mutex
	events []spillway.Event
}

// Observe records e.
func (r *Recorder) Observe(e spillway.Event) {
	if e.Context == nil {
		panic("spillwaytest: an event of a call must carry the call's context")
	}
	e.Context = nil
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// Events returns a copy of the events recorded so far.
func (r *Recorder) Events() []spillway.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]spillway.Event(nil), r.events...)
}
