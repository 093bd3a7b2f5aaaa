package spillway

import (
	"reflect"
	"slices"
	"sync/atomic"
)

// ObserverAttacher is implemented by the policies that report events (a
// breaker, a bulkhead, a retry policy, a timeout, a fallback, a rate
// limiter, a throttle, a hedging policy, a shedder). AttachObserver adds o
// to the observers the policy reports to, besides its Config.Observer:
// NewPipeline and Compose attach their Observer to each of their policies,
// so that one Observer receives every event of a pipeline.
//
// Attaching is permanent: the policy reports to o for the rest of its
// life, whatever pipeline the event comes from, since the events are the
// policy's. A nil o is ignored, and so is an observer the policy already
// reports to (see ObserverSet).
type ObserverAttacher interface {
	AttachObserver(o Observer)
}

// ObserverSet is the observers a policy reports its events to: the one of
// its own Config and those attached to it since (ObserverAttacher). Each
// observer gets each event once, however often it was given: as the
// Config's and attached, attached twice, or inside an Observers. Two
// observers are the same when they are equal comparable values (the same
// *spillwayprom.Metrics) or the same Observers slice; an ObserverFunc
// cannot be compared, so each one given is an observer of its own.
//
// Reading the set is one atomic load, without a lock or an allocation;
// changing it copies it, which is rare (a new configuration, a new
// pipeline). Its zero value is an empty set, ready to use; it must not be
// copied after first use. The policy packages embed one; it is exported for
// them and for policies written outside this module.
type ObserverSet struct {
	list atomic.Pointer[observerList]
}

// observerList is one immutable state of an ObserverSet.
type observerList struct {
	own      Observer
	attached []Observer
	// all is own and attached, flattened and each once; nil when empty.
	all Observers
}

// Load returns the observers to report an event to, or nil when there are
// none, so that a policy builds the event only for someone. The Config's
// observer comes first, then the attached ones in the order they were
// attached:
//
//	if o := s.Load(); o != nil {
//		o.Observe(spillway.Event{...})
//	}
func (s *ObserverSet) Load() Observers {
	if l := s.list.Load(); l != nil {
		return l.all
	}
	return nil
}

// SetOwn makes o (nil for none) the policy's own observer, the one of its
// Config, in place of the previous one; the attached observers stay. A
// policy calls it when it is built and when its configuration changes.
func (s *ObserverSet) SetOwn(o Observer) {
	s.update(func(l *observerList) bool {
		l.own = o
		return true
	})
}

// Attach adds o to the observers, for good. A nil o is ignored, and so is
// one already attached.
func (s *ObserverSet) Attach(o Observer) {
	s.update(func(l *observerList) bool {
		if o == nil || slices.ContainsFunc(l.attached, func(a Observer) bool { return sameObserver(a, o) }) {
			return false
		}
		// Clipped, so that append copies: readers may hold the old slice.
		l.attached = append(slices.Clip(l.attached), o)
		return true
	})
}

// update applies change to a copy of the current list and installs it,
// again if a concurrent change came first; change returns false to leave
// the set as it is.
func (s *ObserverSet) update(change func(*observerList) bool) {
	for {
		old := s.list.Load()
		var next observerList
		if old != nil {
			next = *old
		}
		if !change(&next) {
			return
		}
		// An empty set stays a nil pointer: Load is then one load and
		// a nil check, as a nil Observer was.
		var install *observerList
		if next.own != nil || len(next.attached) > 0 {
			next.all = flatten(next.own, next.attached)
			install = &next
		}
		if s.list.CompareAndSwap(old, install) {
			return
		}
	}
}

// flatten lists the observers in own and attached that get events: the
// members of an Observers in its place, each observer once, nil ones left
// out.
func flatten(own Observer, attached []Observer) Observers {
	var all, seen Observers
	var add func(o Observer)
	add = func(o Observer) {
		if o == nil || slices.ContainsFunc(seen, func(s Observer) bool { return sameObserver(s, o) }) {
			return
		}
		seen = append(seen, o)
		if os, ok := o.(Observers); ok {
			for _, m := range os {
				add(m)
			}
			return
		}
		all = append(all, o)
	}
	add(own)
	for _, o := range attached {
		add(o)
	}
	return all
}

// sameObserver reports whether a and b are the same observer: equal values
// of a comparable type, or the same slice (an Observers given twice). It
// never compares values that == would panic on (an ObserverFunc, a struct
// holding one).
func sameObserver(a, b Observer) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	switch {
	case va.Type() != vb.Type():
		return false
	case va.Comparable():
		return a == b
	case va.Kind() == reflect.Slice:
		return va.Len() == vb.Len() && va.Pointer() == vb.Pointer()
	}
	return false
}
