package sharedlimit

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/internal/natstest"
	"github.com/spillway-dev/spillway/queue"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.LeakOptions()...)
}

// fakeClock is the wall clock the replicas share in a test.
type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// localBuckets is a tiny local per-key token bucket: the fallback the
// tests give (the gateway gives ratelimit.Keyed).
type localBuckets struct {
	rate  float64
	burst int
	now   func() time.Time
	mu    sync.Mutex
	keys  map[string]*state
}

func (b *localBuckets) AllowKey(key string) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.keys[key]
	if !ok {
		s = &state{tokens: float64(b.burst)}
		b.keys[key] = s
	}
	*s = s.refill(b.now(), b.rate, float64(b.burst))
	if s.tokens < 1 {
		return false, s.until(1, b.rate)
	}
	s.tokens--
	return true, 0
}

// fallbacks records the shares the limiter built local limiters for.
type fallbacks struct {
	rate  float64 // the shared limit
	burst int
	now   func() time.Time
	mu    sync.Mutex
	built []*localBuckets
}

func (f *fallbacks) build(n int) (KeyLimiter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rate, burst := Share(f.rate, f.burst, n)
	b := &localBuckets{rate: rate, burst: burst, now: f.now, keys: map[string]*state{}}
	f.built = append(f.built, b)
	return b, nil
}

func (f *fallbacks) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.built)
}

func (f *fallbacks) last() *localBuckets {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.built[len(f.built)-1]
}

// countingKV counts the round trips of the leases.
type countingKV struct {
	jetstream.KeyValue
	gets, writes *atomic.Int64
}

func (c countingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	c.gets.Add(1)
	return c.KeyValue.Get(ctx, key)
}

func (c countingKV) Update(ctx context.Context, key string, v []byte, rev uint64) (uint64, error) {
	c.writes.Add(1)
	return c.KeyValue.Update(ctx, key, v, rev)
}

// natsOpts are the options of a NATS server with JetStream on a fixed
// free port of 127.0.0.1, so that it can be restarted where it was.
func natsOpts(t *testing.T) *server.Options { return natsOptsTB(t) }

func natsOptsTB(t testing.TB) *server.Options {
	return &server.Options{Host: "127.0.0.1", Port: natstest.FreePorts(t, 1)[0], JetStream: true, StoreDir: t.TempDir(),
		JetStreamMaxMemory: 16 << 20, JetStreamMaxStore: 4 << 30, NoSigs: true, NoLog: true}
}

// openQueue opens a queue (a gateway replica's) on the server at url.
func openQueue(t *testing.T, url string) *queue.Queue { return openQueueTB(t, url) }

func openQueueTB(t testing.TB, url string) *queue.Queue {
	t.Helper()
	q, err := queue.Open(t.Context(), queue.Config{Servers: []string{url}, Prefix: "RL", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// bucketOf opens the shared bucket through q, as the gateway does.
func bucketOf(q *queue.Queue, ttl time.Duration) func(context.Context) (jetstream.KeyValue, error) {
	return func(ctx context.Context) (jetstream.KeyValue, error) { return q.KeyValue(ctx, "ratelimit", ttl, 1<<20) }
}

func newLimiter(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTwoReplicasShareOneLimit: two replicas (two queues, two limiters)
// on one NATS server, overloaded for 3 s of a shared fake clock, admit
// together what one bucket would: at most rate·T + burst (no lease is
// held when the window begins), and at least that less the leases left
// unspent at its end (N × lease). They reach NATS for a small fraction of
// the requests.
func TestTwoReplicasShareOneLimit(t *testing.T) {
	s := natstest.Start(t, natsOpts(t))
	clock := newClock()
	const rate, burst, window = 100.0, 40, 3 * time.Second
	var gets, writes atomic.Int64
	var lims [2]*Limiter
	for i := range lims {
		q := openQueue(t, s.ClientURL())
		open := func(ctx context.Context) (jetstream.KeyValue, error) {
			kv, err := bucketOf(q, time.Minute)(ctx)
			return countingKV{kv, &gets, &writes}, err
		}
		fb := &fallbacks{rate: rate, burst: burst, now: clock.Now}
		lims[i] = newLimiter(t, Config{Open: open, Route: "orders", Rate: rate, Burst: burst, Fallback: fb.build,
			Heartbeat: 20 * time.Millisecond, LeaseTimeout: time.Second, Now: clock.Now})
	}
	eventually(t, "both replicas counting 2", func() bool { return lims[0].Replicas() == 2 && lims[1].Replicas() == 2 })
	gets.Store(0)

	var admitted [2]int
	requests := 0
	// The client's requests reach either replica at random (a seeded
	// source: the run is the same each time), 6 a millisecond.
	rng := rand.New(rand.NewPCG(1, 2))
	for range window / time.Millisecond {
		clock.Advance(time.Millisecond)
		for range 6 {
			i := rng.IntN(2)
			requests++
			if ok, _ := lims[i].AllowKey("client-1"); ok {
				admitted[i]++
			}
		}
	}
	for _, l := range lims {
		if !l.Shared() {
			t.Fatal("a replica fell back during the run")
		}
	}
	total := admitted[0] + admitted[1]
	ideal := int(rate*window.Seconds()) + burst
	slack := 2 * int(lims[0].leaseSize(2))
	t.Logf("admitted %v = %d of %d requests; one bucket: %d; KV gets %d, writes %d", admitted, total, requests, ideal, gets.Load(), writes.Load())
	if total > ideal || total < ideal-slack {
		t.Fatalf("admitted %d, want %d-%d (rate·T + burst, less the unspent leases)", total, ideal-slack, ideal)
	}
	for i, a := range admitted {
		if a < total/10 {
			t.Errorf("replica %d admitted %d of %d: starved", i, a, total)
		}
	}
	if g := gets.Load(); g > int64(requests)/20 {
		t.Errorf("%d KV reads for %d requests: NATS is on the request path", g, requests)
	}
}

// TestFallbackAndBack: when the NATS server stops, each replica falls
// back to its share (rate/2, burst/2), says so in its gauge and counter;
// when it comes back (with the bucket gone: it was in memory), they share
// again.
func TestFallbackAndBack(t *testing.T) {
	opts := natsOpts(t)
	s := natstest.Start(t, opts)
	clock := newClock()
	var lims [2]*Limiter
	var fbs [2]*fallbacks
	for i := range lims {
		q := openQueue(t, s.ClientURL())
		fbs[i] = &fallbacks{rate: 100, burst: 40, now: clock.Now}
		lims[i] = newLimiter(t, Config{Open: bucketOf(q, time.Minute), Route: "orders", Rate: 100, Burst: 40, Fallback: fbs[i].build,
			Heartbeat: 20 * time.Millisecond, LeaseTimeout: 500 * time.Millisecond, Now: clock.Now})
	}
	eventually(t, "both replicas counting 2", func() bool { return lims[0].Replicas() == 2 && lims[1].Replicas() == 2 })
	if ok, _ := lims[0].AllowKey("a"); !ok {
		t.Fatal("shared limiter refused the first request")
	}
	expectMetrics(t, lims[0], 1, 0, 2)

	s.Shutdown()
	s.WaitForShutdown()
	eventually(t, "both replicas on their share", func() bool { return !lims[0].Shared() && !lims[1].Shared() })
	for _, l := range lims {
		expectMetrics(t, l, 0, 1, 2)
	}
	for i, fb := range fbs {
		if b := fb.last(); b.rate != 50 || b.burst != 20 {
			t.Fatalf("replica %d fell back to rate %v burst %d, want its share 50, 20", i, b.rate, b.burst)
		}
	}
	admitted := 0
	for range 100 {
		if ok, _ := lims[1].AllowKey("b"); ok {
			admitted++
		}
	}
	if admitted != 20 {
		t.Fatalf("on its share a replica admitted %d at once, want its burst share 20", admitted)
	}

	s = natstest.Start(t, opts)
	eventually(t, "both replicas sharing again", func() bool {
		return lims[0].Shared() && lims[1].Shared() && lims[0].Replicas() == 2 && lims[1].Replicas() == 2
	})
	for _, l := range lims {
		expectMetrics(t, l, 1, 1, 2)
	}
	if ok, _ := lims[1].AllowKey("c"); !ok {
		t.Fatal("shared again, the limiter refused a new key's first request")
	}

	// A second outage with the same count keeps the local share's
	// buckets: key b, spent in the first, does not start full again.
	s.Shutdown()
	s.WaitForShutdown()
	eventually(t, "both replicas on their share again", func() bool { return !lims[0].Shared() && !lims[1].Shared() })
	expectMetrics(t, lims[1], 0, 2, 2)
	if ok, _ := lims[1].AllowKey("b"); ok || fbs[1].count() != 2 {
		t.Fatalf("second outage: key b admitted %v, %d local limiters built (want the first share's, still empty)", ok, fbs[1].count())
	}
}

// collector exposes limiters as the gateway's state collector does.
type collector []*Limiter

func (c collector) Describe(ch chan<- *prometheus.Desc) { Describe(ch) }
func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c {
		l.Collect(ch)
	}
}

// expectMetrics checks a replica's spillway_rate_limit_shared, fallback
// count and replica count, gathered as a registry does.
func expectMetrics(t *testing.T, l *Limiter, shared, falls, replicas float64) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collector{l})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if lp := m.GetLabel(); len(lp) != 1 || lp[0].GetName() != "route" || lp[0].GetValue() != l.Route() {
			t.Fatalf("%s labels %v", mf.GetName(), lp)
		}
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	want := map[string]float64{"spillway_rate_limit_shared": shared, "spillway_rate_limit_shared_fallbacks_total": falls,
		"spillway_rate_limit_shared_replicas": replicas}
	for name, v := range want {
		if got[name] != v {
			t.Fatalf("%s = %v, want %v (all: %v)", name, got[name], v, got)
		}
	}
}

// TestBoundedState: the local cache keeps at most MaxKeys keys, and the
// bucket's entries expire (its TTL) once idle, so that neither grows with
// the number of clients ever seen.
func TestBoundedState(t *testing.T) {
	s := natstest.Start(t, natsOpts(t))
	q := openQueue(t, s.ClientURL())
	fb := &fallbacks{rate: 100, burst: 50, now: time.Now}
	// A generous LeaseTimeout: on a loaded machine a lease taking longer
	// than the default would answer from the fallback, writing nothing.
	l := newLimiter(t, Config{Open: bucketOf(q, time.Second), Route: "orders", Rate: 100, Burst: 50, Fallback: fb.build, MaxKeys: 8,
		LeaseTimeout: time.Second})
	for i := range 100 {
		if ok, _ := l.AllowKey(strings.Repeat("k", i+1)); !ok {
			t.Fatalf("key %d refused its first request", i)
		}
	}
	if n := l.Len(); n != 8 {
		t.Fatalf("%d keys cached, want MaxKeys 8", n)
	}
	kv, err := bucketOf(q, time.Second)(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{l.stateKey("k"), l.stateKey(strings.Repeat("k", 100))}
	for i, key := range keys {
		if _, err := kv.Get(t.Context(), key); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	for _, key := range keys {
		eventually(t, "an idle key's entry to expire", func() bool {
			_, err := kv.Get(t.Context(), key)
			return errors.Is(err, jetstream.ErrKeyNotFound)
		})
	}
}

// TestConfigRefused: a limit without its parts, or a bucket whose entries
// would expire before a bucket refills (it would come back full too
// early), is refused at New.
func TestConfigRefused(t *testing.T) {
	s := natstest.Start(t, natsOpts(t))
	q := openQueue(t, s.ClientURL())
	fb := (&fallbacks{rate: 10, burst: 10, now: time.Now}).build
	good := Config{Open: bucketOf(q, time.Minute), Route: "r", Rate: 10, Burst: 10, Fallback: fb}
	for name, mod := range map[string]func(*Config){
		"no open":     func(c *Config) { c.Open = nil },
		"no fallback": func(c *Config) { c.Fallback = nil },
		"no route":    func(c *Config) { c.Route = "" },
		"zero rate":   func(c *Config) { c.Rate = 0 },
		"zero burst":  func(c *Config) { c.Burst = 0 },
		"short ttl":   func(c *Config) { c.Burst = 1000; c.Open = bucketOf(q, time.Minute) }, // refill 100 s
		"fallback err": func(c *Config) {
			c.Fallback = func(int) (KeyLimiter, error) { return nil, errors.New("no") }
		},
	} {
		cfg := good
		mod(&cfg)
		if l, err := New(cfg); err == nil {
			_ = l.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestStartsOnShareWithoutNATS: a limiter whose bucket cannot be opened
// starts on its local share rather than failing, and reports it.
func TestStartsOnShareWithoutNATS(t *testing.T) {
	fb := &fallbacks{rate: 10, burst: 3, now: time.Now}
	down := func(context.Context) (jetstream.KeyValue, error) {
		return nil, errors.New("nats: no servers available")
	}
	l := newLimiter(t, Config{Open: down, Route: "r", Rate: 10, Burst: 3, Fallback: fb.build, Heartbeat: time.Hour})
	if l.Shared() {
		t.Fatal("shared without a bucket")
	}
	admitted := 0
	for range 10 {
		if ok, _ := l.AllowKey("k"); ok {
			admitted++
		}
	}
	if admitted != 3 {
		t.Fatalf("admitted %d, want the local burst 3", admitted)
	}
}

// TestRefillAndGrant: the bucket's arithmetic. A clock behind the stored
// time refills nothing (skew never counts time twice); a lease is at most
// the batch, at most 1/n of the tokens, at least 1.
func TestRefillAndGrant(t *testing.T) {
	t0 := time.Unix(100, 0)
	s := state{tokens: 2, at: t0.UnixNano()}
	if r := s.refill(t0.Add(-time.Second), 10, 50); r != s {
		t.Fatalf("refill before the stored time: %+v", r)
	}
	if r := s.refill(t0.Add(time.Second), 10, 50); r.tokens != 12 || r.at != t0.Add(time.Second).UnixNano() {
		t.Fatalf("refill of 1 s at 10/s: %+v", r)
	}
	if r := s.refill(t0.Add(time.Hour), 10, 50); r.tokens != 50 {
		t.Fatalf("refill past the burst: %+v", r)
	}
	if d := s.until(5, 10); d != 300*time.Millisecond {
		t.Fatalf("until 5 tokens: %v", d)
	}
	for _, c := range []struct {
		tokens  float64
		want, n int64
		grant   int64
	}{{0.9, 5, 1, 0}, {50, 5, 2, 5}, {6, 5, 2, 3}, {1.5, 5, 3, 1}, {3, 1, 1, 1}} {
		if g := grant(c.tokens, c.want, c.n); g != c.grant {
			t.Errorf("grant(%v, %d, %d) = %d, want %d", c.tokens, c.want, c.n, g, c.grant)
		}
	}
	if got := decode(state{tokens: 7, at: 9}.encode(), 10); got != (state{tokens: 7, at: 9}) {
		t.Fatalf("round trip: %+v", got)
	}
	if got := decode([]byte("junk"), 10); got.tokens != 10 {
		t.Fatalf("a damaged entry reads %+v, want a full bucket", got)
	}
}
