package ratelimit

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
)

// DefaultMaxKeys is the MaxKeys of a zero KeyedConfig.
const DefaultMaxKeys = 100_000

// MaxKeyLen is the longest key a Keyed tracks as it is; a longer one is
// tracked by a 128-bit seeded hash of itself (16 bytes).
const MaxKeyLen = 64

// maxShards bounds the shards of a Keyed. A small Keyed has fewer, so that
// each shard holds at least minShardKeys keys: eviction samples one shard,
// and a shard of a handful of keys would have to evict whatever it holds.
const (
	maxShards    = 64
	minShardKeys = 256
)

// evictSample is how many keys of a full shard a new key looks at to find
// one to evict.
const evictSample = 8

// KeyedConfig configures a Keyed: the Config of every key's bucket and the
// bound on the number of keys.
type KeyedConfig struct {
	// Config is every bucket's configuration. Its MaxWait must be 0:
	// AllowKey never waits.
	Config
	// MaxKeys bounds the number of keys tracked at once. Default 0 means
	// DefaultMaxKeys (100,000); negative values are invalid. A new key
	// beyond it evicts a key whose bucket is full again, or else the one
	// closest to full (see the package documentation).
	MaxKeys int
}

// Keyed limits each key (a client address, an API key) to its own token
// bucket, with a bounded number of keys. Create one with NewKeyed.
type Keyed struct {
	p        atomic.Pointer[params]
	clock    spillway.Clock
	seed     [3]maphash.Seed // shard, and the two halves of a long key's hash
	mask     uint64
	shards   []shard
	maxKeys  int
	rejected atomic.Uint64
	// obs is Config.Observer and the observers attached since
	// (AttachObserver).
	obs    spillway.ObserverSet
	update sync.Mutex
}

// shard is one part of a Keyed's keys, under its own lock.
type shard struct {
	mu  sync.RWMutex
	m   map[string]*bucket
	cap int
	// Keeps neighbouring shards' locks off one cache line.
	_ [cacheLine]byte
}

// bucket is one key's state: its theoretical arrival time.
type bucket struct{ tat atomic.Int64 }

// NewKeyed returns a Keyed configured by cfg, tracking no key, or an error
// naming the invalid field.
func NewKeyed(cfg KeyedConfig) (*Keyed, error) {
	switch {
	case cfg.MaxKeys < 0:
		return nil, fmt.Errorf("ratelimit: MaxKeys must be >= 0 (0 means %d), got %d", DefaultMaxKeys, cfg.MaxKeys)
	case cfg.MaxWait != 0:
		return nil, errKeyedWait(cfg.MaxWait)
	}
	p, err := resolve(cfg.Config)
	if err != nil {
		return nil, err
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	// A power of two, so that a hash's low bits pick the shard; the
	// shards' capacities add up to MaxKeys at most.
	n := min(maxShards, 1<<(bits.Len(uint(max(cfg.MaxKeys/minShardKeys, 1)))-1))
	k := &Keyed{clock: p.cfg.Clock, mask: uint64(n - 1), shards: make([]shard, n), maxKeys: cfg.MaxKeys}
	for i := range k.seed {
		k.seed[i] = maphash.MakeSeed()
	}
	for i := range k.shards {
		k.shards[i].m = make(map[string]*bucket)
		k.shards[i].cap = cfg.MaxKeys / n
	}
	k.p.Store(p)
	k.obs.SetOwn(p.cfg.Observer)
	return k, nil
}

// MustNewKeyed is like NewKeyed but panics if cfg is invalid.
func MustNewKeyed(cfg KeyedConfig) *Keyed {
	k, err := NewKeyed(cfg)
	if err != nil {
		panic(err)
	}
	return k
}

// Name returns the limiter's name (Config.Name).
func (k *Keyed) Name() string { return k.p.Load().cfg.Name }

// PolicyKind returns "ratelimit" (spillway.Kinded).
func (k *Keyed) PolicyKind() string { return policyName }

// AttachObserver makes k report its refusals to o too, besides
// Config.Observer, for the rest of its life (spillway.ObserverAttacher);
// o gets each event once even when it is also Config.Observer.
func (k *Keyed) AttachObserver(o spillway.Observer) { k.obs.Attach(o) }

// Config returns the configuration in effect, defaults filled in.
func (k *Keyed) Config() KeyedConfig {
	return KeyedConfig{Config: k.p.Load().cfg, MaxKeys: k.maxKeys}
}

// Rejected returns the number of calls AllowKey refused since NewKeyed.
func (k *Keyed) Rejected() uint64 { return k.rejected.Load() }

// Len returns the number of keys tracked now, at most MaxKeys.
func (k *Keyed) Len() int {
	n := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// AllowKey takes a token of key's bucket if it has one now. It returns
// false and how long until the bucket's next token when it has none; the
// refusal is counted in Rejected and reported to the Observer (with a nil
// Context). A key seen for the first time starts with a full bucket.
func (k *Keyed) AllowKey(key string) (ok bool, retryAfter time.Duration) {
	p := k.p.Load()
	now := k.clock.Nanotime()
	wait, ok := p.take(&k.bucket(key, now).tat, now, 0)
	if !ok {
		k.rejected.Add(1)
		observe(nil, &k.obs, p)
		return false, wait
	}
	return true, 0
}

// bucket returns key's bucket, tracking the key if it is new.
func (k *Keyed) bucket(key string, now int64) *bucket {
	s := &k.shards[maphash.String(k.seed[0], key)&k.mask]
	if len(key) <= MaxKeyLen {
		s.mu.RLock()
		b := s.m[key]
		s.mu.RUnlock()
		if b == nil {
			// The key may point into the caller's larger buffer: keep a
			// copy of its own.
			b = s.track(strings.Clone(key), now)
		}
		return b
	}
	var sum [16]byte
	binary.LittleEndian.PutUint64(sum[:8], maphash.String(k.seed[1], key))
	binary.LittleEndian.PutUint64(sum[8:], maphash.String(k.seed[2], key))
	s.mu.RLock()
	b := s.m[string(sum[:])] // the conversion in an index does not allocate
	s.mu.RUnlock()
	if b == nil {
		b = s.track(string(sum[:]), now)
	}
	return b
}

// track returns key's bucket, making one (full) if the key is new; the
// shard keeps key. A new key in a full shard evicts first.
func (s *shard) track(key string, now int64) *bucket {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.m[key]; b != nil {
		return b
	}
	if len(s.m) >= s.cap {
		s.evict(now)
	}
	b := &bucket{}
	b.tat.Store(now)
	s.m[key] = b
	return b
}

// evict forgets, among a few keys of the shard (the map's random
// iteration order samples them), every key whose bucket is full again, or
// else the one closest to full. It requires that s.mu is held.
func (s *shard) evict(now int64) {
	var (
		oldest    string
		oldestTAT int64
		seen      int
		dropped   bool
	)
	for key, b := range s.m {
		t := b.tat.Load()
		switch {
		case t <= now:
			delete(s.m, key) // full: no state to lose
			dropped = true
		case seen == 0 || t < oldestTAT:
			oldest, oldestTAT = key, t
		}
		if seen++; seen == evictSample {
			break
		}
	}
	if !dropped {
		delete(s.m, oldest)
	}
}

// Update changes the settings that fn sets and keeps every other one and
// every key's tokens, as Limiter.Update does, visiting every tracked key
// (a shard at a time: a change is rare, a call is not). MaxKeys cannot
// change (it shapes the shards), nor can MaxWait be set. On error nothing
// changes.
func (k *Keyed) Update(fn func(*Config)) error {
	k.update.Lock()
	defer k.update.Unlock()
	old := k.p.Load()
	p, err := update(old, fn)
	if err != nil {
		return err
	}
	if p.maxWait != 0 {
		return errKeyedWait(p.cfg.MaxWait)
	}
	k.p.Store(p)
	k.obs.SetOwn(p.cfg.Observer)
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.RLock()
		now := k.clock.Nanotime()
		for _, b := range s.m {
			rescale(&b.tat, now, old, p)
		}
		s.mu.RUnlock()
	}
	return nil
}

// errKeyedWait is the error of a Keyed configured to wait.
func errKeyedWait(d time.Duration) error {
	return fmt.Errorf("ratelimit: MaxWait must be 0 for a Keyed limiter (AllowKey never waits), got %v", d)
}
