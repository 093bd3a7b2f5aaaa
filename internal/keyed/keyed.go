// Package keyed holds values made once per key, on the key's first use, and
// read without a lock afterwards: the per-downstream policies of
// spillwayhttp's Transport and spillwaygrpc's interceptors.
//
// The map is copy-on-write: a lookup is a plain map read through an atomic
// pointer (no lock, no allocation); making a value copies the map under a
// mutex. It suits few keys (hosts, services) read very often.
package keyed

import (
	"sync"
	"sync/atomic"
)

// Map is a copy-on-write map from keys to values made on first use. Its zero
// value is empty and ready to use; it must not be copied after first use.
type Map[V any] struct {
	m  atomic.Pointer[map[string]V]
	mu sync.Mutex
}

// Load returns key's value, if it has been made.
func (c *Map[V]) Load(key string) (V, bool) {
	if p := c.m.Load(); p != nil {
		v, ok := (*p)[key]
		return v, ok
	}
	var zero V
	return zero, false
}

// Make returns key's value, making it with mk if no other call has: mk runs
// once per key (under the map's lock, so it must not call back into the map)
// and an error leaves the key unmade, for the next call to try again.
func (c *Map[V]) Make(key string, mk func(key string) (V, error)) (V, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[string]V
	if p := c.m.Load(); p != nil {
		old = *p
	}
	if v, ok := old[key]; ok {
		return v, nil
	}
	v, err := mk(key)
	if err != nil {
		return v, err
	}
	m := make(map[string]V, len(old)+1)
	for k, x := range old {
		m[k] = x
	}
	m[key] = v
	c.m.Store(&m)
	return v, nil
}

// All returns every value made, by key, in a new map the caller owns.
func (c *Map[V]) All() map[string]V {
	var cur map[string]V
	if p := c.m.Load(); p != nil {
		cur = *p
	}
	out := make(map[string]V, len(cur))
	for k, v := range cur {
		out[k] = v
	}
	return out
}
