package spillwayotel

import (
	"maps"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/spillway-dev/spillway"
)

const (
	// The attribute keys of metrics: spillwayprom's label names (the
	// brief's "name" label), so that a dashboard reads both adapters alike.
	keyName    = attribute.Key("name")
	keyResult  = attribute.Key("result")
	keyReason  = attribute.Key("reason")
	keyFrom    = attribute.Key("from")
	keyTo      = attribute.Key("to")
	keyKind    = attribute.Key("kind")
	keyState   = attribute.Key("state")
	keyOutcome = attribute.Key("outcome")

	// The attribute keys of span events, namespaced: a span carries the
	// attributes of every library the call went through.
	spanName     = attribute.Key("spillway.name")
	spanReason   = attribute.Key("spillway.reason")
	spanKind     = attribute.Key("spillway.kind")
	spanPolicy   = attribute.Key("spillway.policy")
	spanAttempt  = attribute.Key("spillway.attempt")
	spanDelay    = attribute.Key("spillway.delay")
	spanDuration = attribute.Key("spillway.duration")
	spanMessage  = attribute.Key("error.message")
)

// cowMap is a copy-on-write map for keys that are few and read on every
// event: a read is an atomic load and a map lookup, with no lock and no
// allocation; a write copies the map under a mutex. Its zero value is empty.
type cowMap[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex
}

// load returns the value of k, creating it with mk the first time.
func (c *cowMap[K, V]) load(k K, mk func() V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	n := map[K]V{}
	if old != nil {
		n = maps.Clone(*old)
	}
	v := mk()
	n[k] = v
	c.m.Store(&n)
	return v
}

// nameSets holds the measurement options of one policy name. The slices are
// passed to Add and Record as they are (opts...), so a measurement allocates
// neither the option nor the variadic slice.
type nameSets struct {
	name attribute.KeyValue
	// add and record carry {name}.
	add    []metric.AddOption
	record []metric.RecordOption
	// success and failure carry {name, result}.
	success, failure []metric.AddOption
	// hedgeSent and hedgeWon carry {name, outcome}.
	hedgeSent, hedgeWon []metric.AddOption

	reasons     cowMap[spillway.Reason, []metric.AddOption]
	transitions cowMap[[2]string, []metric.AddOption]
	kinds       cowMap[string, []metric.AddOption]
}

func newNameSets(name string) *nameSets {
	kv := keyName.String(name)
	set := attribute.NewSet(kv)
	return &nameSets{
		name:    kv,
		add:     []metric.AddOption{metric.WithAttributeSet(set)},
		record:  []metric.RecordOption{metric.WithAttributeSet(set)},
		success: addOpts(kv, keyResult.String("success")),
		failure: addOpts(kv, keyResult.String("failure")),

		hedgeSent: addOpts(kv, keyOutcome.String("sent")),
		hedgeWon:  addOpts(kv, keyOutcome.String("won")),
	}
}

// sets returns the options of name, building them the first time it is seen.
func (o *Observer) sets(name string) *nameSets {
	return o.names.load(name, func() *nameSets { return newNameSets(name) })
}

// rejected returns the options of {name, reason}.
func (ns *nameSets) rejected(r spillway.Reason) []metric.AddOption {
	return ns.reasons.load(r, func() []metric.AddOption {
		return addOpts(ns.name, keyReason.String(string(r)))
	})
}

// transition returns the options of {name, from, to}.
func (ns *nameSets) transition(from, to string) []metric.AddOption {
	return ns.transitions.load([2]string{from, to}, func() []metric.AddOption {
		return addOpts(ns.name, keyFrom.String(from), keyTo.String(to))
	})
}

// fallback returns the options of {name, kind}.
func (ns *nameSets) fallback(kind string) []metric.AddOption {
	return ns.kinds.load(kind, func() []metric.AddOption {
		return addOpts(ns.name, keyKind.String(kind))
	})
}

func addOpts(kvs ...attribute.KeyValue) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}

func observeOpts(kvs ...attribute.KeyValue) []metric.ObserveOption {
	return []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}
