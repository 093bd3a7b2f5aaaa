// Package sharedlimit is a rate limit that several gateway replicas share
// through the NATS JetStream cluster the queue already uses: one token
// bucket per (route, key), of Rate tokens per second and Burst tokens, for
// the whole fleet rather than for each replica.
//
// # Leases, not a round trip per request
//
// The bucket's state — its tokens and the time they were counted — is one
// entry of a key-value bucket (queue.(*Queue).KeyValue). A replica does
// not ask it for every request: it leases a batch of tokens, with a
// compare-and-swap on the entry's revision (refill computed from the
// stored time, then the batch taken off), and spends them locally with no
// NATS call. Only the request that finds its local batch empty leases the
// next one, within LeaseTimeout. A lease that finds the bucket empty is
// remembered until the bucket holds a batch again, and the requests until
// then are refused locally with that Retry-After: an overloaded key costs
// each replica at most Rate/lease round trips a second.
//
// The lease is a small fraction of the burst, adapted to the fleet and to
// what is left: at most max(1, Burst/(4·N)) for N live replicas, and at
// most 1/N of the tokens the bucket holds (at least 1). Tokens leased are
// taken from the shared bucket when leased, so a fleet that starts with no
// leases admits at most Rate·T + Burst in any window T, as one bucket
// would; leases held when the window begins can add their tokens, so the
// bound is Rate·T + Burst + Σ leases ≤ Rate·T + Burst + max(N, Burst/4).
// Tokens leased but never spent (a client that went quiet, a key evicted
// from the local cache) are lost: the fleet may admit up to that much
// less, never more.
//
// # Falling back to a local share
//
// When NATS does not answer — a lease that times out, a lost connection,
// a bucket that is gone — the replica answers with a local limiter of its
// share, Rate/N and ⌈Burst/N⌉ for the N replicas it last saw (Config.Fallback
// builds it), and says so: Shared reports false, the fallback counter
// grows, a line is logged. A background goroutine writes the replica's
// heartbeat every Config.Heartbeat, counts the live replicas from the
// others' heartbeats, opens the bucket again if it is gone, and returns
// the limiter to sharing as soon as NATS answers.
//
// # Bounded state
//
// The bucket's entries expire (its TTL) once they have not been written
// for a while; the TTL must cover the refill time Burst/Rate, past which a
// missing entry (a full bucket) says the same as an old one. The local
// cache holds at most MaxKeys keys; a new key evicts an arbitrary one (its
// lease is lost).
package sharedlimit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KeyLimiter is a per-key rate limit: the gateway's route limiter, and
// the local limiter of a replica's share (Config.Fallback).
type KeyLimiter interface {
	AllowKey(key string) (ok bool, retryAfter time.Duration)
}

// Defaults of Config.
const (
	DefaultMaxKeys      = 10_000
	DefaultLeaseTimeout = 25 * time.Millisecond
	DefaultHeartbeat    = time.Second
)

// Config configures New.
type Config struct {
	// Open opens (creates if need be) the key-value bucket: typically
	// queue.(*Queue).KeyValue with the gateway's bucket name. New calls it,
	// and the background goroutine calls it again after the bucket stopped
	// answering (a cluster that restarted lost it: it is held in memory).
	Open func(ctx context.Context) (jetstream.KeyValue, error)
	// Route names the shared limit: the replicas that name the same route
	// share one bucket per key. Required.
	Route string
	// Rate is the fleet's refill rate in tokens per second, above 0.
	Rate float64
	// Burst is the bucket's capacity, at least 1.
	Burst int
	// Fallback builds the local limiter that answers while NATS does not:
	// this replica's share of the limit when it last counted n replicas,
	// Rate/n tokens a second and a burst of ⌈Burst/n⌉ (Share). New calls it
	// with 1, to have one before it counts. Required.
	Fallback func(n int) (KeyLimiter, error)
	// MaxKeys bounds the local cache of leases; 0: DefaultMaxKeys.
	MaxKeys int
	// LeaseTimeout bounds a lease's round trips; 0: DefaultLeaseTimeout. A
	// lease that takes longer switches the replica to its local share.
	LeaseTimeout time.Duration
	// Heartbeat is how often the replica says it is alive and counts the
	// others (a replica is live for 3 heartbeats after its last); 0:
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// ID names this replica among the others; "": a random one.
	ID string
	// Now reads the wall clock, whose readings are stored in the bucket and
	// compared across replicas (a clock ahead by d can add at most Rate·d
	// tokens, never past Burst); nil: time.Now.
	Now func() time.Time
	// Logger receives the changes between sharing and the local share;
	// nil: slog.Default().
	Logger *slog.Logger
}

// Limiter is a shared rate limit. Safe for concurrent use; Close stops its
// goroutine.
type Limiter struct {
	cfg     Config
	log     *slog.Logger
	prefix  string // "rl.<route hash>.": the buckets' entries
	hbKey   string // "hb.<route hash>": the replicas' heartbeats
	kv      atomic.Pointer[kvRef]
	shared  atomic.Bool
	n       atomic.Int64 // live replicas last seen, at least 1
	falls   atomic.Uint64
	fb      atomic.Pointer[fallbackRef]
	modeMu  sync.Mutex   // serializes the changes of mode
	mu      sync.RWMutex // guards keys
	keys    map[string]*entry
	stop    chan struct{}
	done    chan struct{}
	closing sync.Once
}

type kvRef struct{ kv jetstream.KeyValue }

// fallbackRef is the local limiter and the replica count it was built
// for: a replica that falls back again with the same count keeps it, and
// its buckets, rather than starting every key full again.
type fallbackRef struct {
	l KeyLimiter
	n int
}

// entry is one key's local lease. tokens and deny are written by the one
// request that leases (under lease) and read by every other.
type entry struct {
	tokens atomic.Int64 // leased, not yet spent
	deny   atomic.Int64 // the bucket was empty: refuse until then (Unix ns); 0: no
	lease  sync.Mutex
}

// take spends one leased token if there is one.
func (e *entry) take() bool {
	for {
		t := e.tokens.Load()
		if t <= 0 {
			return false
		}
		if e.tokens.CompareAndSwap(t, t-1) {
			return true
		}
	}
}

// denied is how long e's bucket is still known to be empty at now.
func (e *entry) denied(now func() time.Time) time.Duration {
	d := e.deny.Load()
	if d == 0 {
		return 0
	}
	return max(0, time.Duration(d-now().UnixNano()))
}

// New builds the limiter, opens the bucket and starts the heartbeat
// goroutine. A bucket that cannot be opened now is not an error: the
// limiter starts on its local share and shares once NATS answers. A
// bucket whose TTL is shorter than the refill time Burst/Rate is.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	fb, err := cfg.Fallback(1)
	if err != nil {
		return nil, fmt.Errorf("sharedlimit: route %s: fallback: %w", cfg.Route, err)
	}
	sum := sha256.Sum256([]byte(cfg.Route))
	route := hex.EncodeToString(sum[:8])
	l := &Limiter{
		cfg: cfg, log: cfg.Logger,
		prefix: "rl." + route + ".", hbKey: "hb." + route,
		keys: map[string]*entry{}, stop: make(chan struct{}), done: make(chan struct{}),
	}
	l.n.Store(1)
	l.fb.Store(&fallbackRef{fb, 1})
	ctx, cancel := context.WithTimeout(context.Background(), l.beatTimeout())
	defer cancel()
	err = l.open(ctx)
	if err != nil && !errors.Is(err, errUnavailable) {
		return nil, err
	}
	if err == nil {
		err = l.beat(ctx)
	}
	if err == nil {
		l.shared.Store(true)
	} else {
		l.log.Warn("sharedlimit: NATS does not answer; answering with this replica's share until it does",
			"route", cfg.Route, "rate", cfg.Rate, "burst", cfg.Burst, "error", err)
	}
	go l.run()
	return l, nil
}

func (c *Config) setDefaults() error {
	switch {
	case c.Open == nil || c.Fallback == nil:
		return errors.New("sharedlimit: Config.Open and Config.Fallback are required")
	case c.Route == "":
		return errors.New("sharedlimit: Config.Route is required")
	case !(c.Rate > 0) || math.IsInf(c.Rate, 1) || c.Burst < 1:
		return fmt.Errorf("sharedlimit: route %s: rate must be above 0 and burst at least 1 (rate %v, burst %d)", c.Route, c.Rate, c.Burst)
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.LeaseTimeout <= 0 {
		c.LeaseTimeout = DefaultLeaseTimeout
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ID == "" {
		c.ID = rand.Text()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// AllowKey spends one token of key's bucket: from the local lease, or
// from a new one, or from the local share while NATS does not answer.
// retryAfter is how long until a token may be there when it refuses.
func (l *Limiter) AllowKey(key string) (bool, time.Duration) {
	if !l.shared.Load() {
		return l.fb.Load().l.AllowKey(key)
	}
	e := l.entry(key)
	if e.take() {
		return true, 0
	}
	if d := e.denied(l.cfg.Now); d > 0 {
		return false, d
	}
	return l.leaseAndTake(e, key)
}

// leaseAndTake leases a batch for key and spends one token of it. One
// request per key leases at a time; the ones behind it find its batch.
func (l *Limiter) leaseAndTake(e *entry, key string) (bool, time.Duration) {
	e.lease.Lock()
	defer e.lease.Unlock()
	if e.take() {
		return true, 0
	}
	if d := e.denied(l.cfg.Now); d > 0 {
		return false, d
	}
	ref := l.kv.Load()
	if !l.shared.Load() || ref == nil {
		return l.fb.Load().l.AllowKey(key)
	}
	got, wait, err := l.lease(ref.kv, key)
	if err != nil {
		l.toFallback(err)
		return l.fb.Load().l.AllowKey(key)
	}
	if got == 0 {
		e.deny.Store(l.cfg.Now().Add(wait).UnixNano())
		return false, wait
	}
	e.deny.Store(0)
	e.tokens.Add(int64(got - 1))
	return true, 0
}

// entry returns key's entry, making room for it when the cache is full.
// A key seen before costs a read lock.
func (l *Limiter) entry(key string) *entry {
	l.mu.RLock()
	e, ok := l.keys[key]
	l.mu.RUnlock()
	if ok {
		return e
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.keys[key]; ok {
		return e
	}
	if len(l.keys) >= l.cfg.MaxKeys {
		for k := range l.keys { // an arbitrary one: map order is random
			delete(l.keys, k)
			break
		}
	}
	e = &entry{}
	l.keys[key] = e
	return e
}

// Shared reports whether the limiter shares its limit through NATS (true)
// or answers with its local share (false).
func (l *Limiter) Shared() bool { return l.shared.Load() }

// Fallbacks is how many times the limiter fell back to its local share.
func (l *Limiter) Fallbacks() uint64 { return l.falls.Load() }

// Replicas is the number of live replicas the limiter last counted.
func (l *Limiter) Replicas() int { return int(l.n.Load()) }

// Len is the number of keys this replica holds a lease of, at most
// MaxKeys.
func (l *Limiter) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.keys)
}

// Route is the route the limit is shared by.
func (l *Limiter) Route() string { return l.cfg.Route }

// Close stops the heartbeat goroutine and removes this replica's
// heartbeat, so that the others count it out at once. Idempotent.
func (l *Limiter) Close() error {
	l.closing.Do(func() { close(l.stop) })
	<-l.done
	return nil
}

// toFallback switches to the local share after err, if sharing.
func (l *Limiter) toFallback(err error) {
	l.modeMu.Lock()
	defer l.modeMu.Unlock()
	if !l.shared.Load() {
		return
	}
	n := int(l.n.Load())
	rate, burst := Share(l.cfg.Rate, l.cfg.Burst, n)
	if l.fb.Load().n != n {
		if fb, ferr := l.cfg.Fallback(n); ferr == nil {
			l.fb.Store(&fallbackRef{fb, n})
		} else { // keep the previous one
			l.log.Error("sharedlimit: cannot build the local share", "route", l.cfg.Route, "error", ferr)
		}
	}
	l.falls.Add(1)
	l.shared.Store(false)
	l.log.Warn("sharedlimit: NATS does not answer; answering with this replica's share until it does",
		"route", l.cfg.Route, "replicas", n, "rate", rate, "burst", burst, "error", err)
}

// toShared returns to sharing, if on the local share.
func (l *Limiter) toShared() {
	l.modeMu.Lock()
	defer l.modeMu.Unlock()
	if l.shared.Load() {
		return
	}
	l.shared.Store(true)
	l.log.Info("sharedlimit: NATS answers again; the limit is shared", "route", l.cfg.Route, "replicas", l.n.Load())
}

// Share is one replica's share of a limit of rate and burst among n:
// rate/n, and ⌈burst/n⌉ so that every replica keeps at least 1.
func Share(rate float64, burst, n int) (float64, int) {
	n = max(1, n)
	return rate / float64(n), (burst + n - 1) / n
}

func (l *Limiter) beatTimeout() time.Duration {
	return max(l.cfg.LeaseTimeout, min(l.cfg.Heartbeat, time.Second))
}
