package overload

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/spillway-dev/spillway"
)

// RealConfig is DefaultConfig shortened for the real run, which takes real
// seconds per row: 12 s, the first 4 s left out of the summary.
func RealConfig() Config {
	cfg := DefaultConfig()
	cfg.Duration, cfg.Warmup = 12*time.Second, 4*time.Second
	return cfg
}

// RunReal runs row in real time against a loopback HTTP server that behaves
// as the Downstream: each request's work is served at the speed its
// concurrency allows, and a request whose client gave up is cancelled.
// Arrivals are open loop (Poisson, cfg.Load × C/L per second; cfg.Steps
// change the load but not the capacity, each call in a
// goroutine of its own), the client's timeout is the request context's. The
// numbers depend on the machine and whatever else runs on it: report them as
// measured, never assert them.
func RunReal(ctx context.Context, cfg Config, row Row) Result {
	srv := newRealServer(cfg)
	defer srv.timer.Stop()
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tr := &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, DisableCompression: true}
	defer tr.CloseIdleConnections()
	r := &realRun{cfg: cfg, url: ts.URL, client: &http.Client{Transport: tr}, srv: srv,
		strategy: row.New(spillway.SystemClock, nil), // calls are concurrent: no shared rand.Rand
		rec:      newRecorder(cfg, row.Name), start: time.Now()}
	r.generate(ctx)
	return r.rec.result()
}

type realRun struct {
	cfg      Config
	url      string
	client   *http.Client
	srv      *realServer
	strategy Strategy
	start    time.Time

	mu  sync.Mutex // guards rec
	rec *recorder
}

// generate fires the arrivals until cfg.Duration, samples the time series
// every bucket, then waits for the calls in flight.
func (r *realRun) generate(ctx context.Context) {
	var calls sync.WaitGroup
	ticker := time.NewTicker(r.cfg.Bucket)
	defer ticker.Stop()
	arrivals := rand.New(rand.NewPCG(r.cfg.Seed, 1))
	next := time.Duration(0)
	for next < r.cfg.Duration && ctx.Err() == nil {
		select {
		case <-ticker.C:
			r.mu.Lock()
			r.rec.sample(time.Since(r.start), r.strategy.Limit(), r.srv.live())
			r.mu.Unlock()
		case <-time.After(max(0, next-time.Since(r.start))):
		}
		// Catch up with every arrival due: the generator may have slept late.
		for ; next <= time.Since(r.start) && next < r.cfg.Duration; next += time.Duration(arrivals.ExpFloat64() / r.cfg.arrivalRate(next) * 1e9) {
			calls.Go(func() { r.call(ctx) })
		}
	}
	calls.Wait()
}

func (r *realRun) call(ctx context.Context) {
	t, ok := r.strategy.Acquire()
	begin := time.Now()
	r.mu.Lock()
	r.rec.arrival(begin.Sub(r.start), ok)
	r.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	failed := true
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err == nil {
		if resp, err := r.client.Do(req); err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			failed = resp.Body.Close() != nil || err != nil || resp.StatusCode != http.StatusNoContent
		}
	}
	end := time.Now()
	latency := end.Sub(begin)
	failed = failed || latency > r.cfg.Timeout
	r.strategy.Release(t, failed)
	r.mu.Lock()
	defer r.mu.Unlock()
	if failed {
		r.rec.failure(begin.Sub(r.start))
		return
	}
	r.rec.success(begin.Sub(r.start), end.Sub(r.start))
}

// realServer is a Downstream in real time: a timer completes its calls.
type realServer struct {
	cfg   Config
	mu    sync.Mutex
	ds    *Downstream
	work  *rand.Rand
	seq   uint64
	start time.Time
	at    time.Duration // how far ds has been advanced since start
	timer *time.Timer
}

func newRealServer(cfg Config) *realServer {
	s := &realServer{cfg: cfg, ds: NewDownstream(cfg.Capacity, cfg.Kappa),
		work: rand.New(rand.NewPCG(cfg.Seed, 2)), start: time.Now()}
	s.timer = time.AfterFunc(time.Hour, s.tick)
	return s
}

func (s *realServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	s.mu.Lock()
	s.catchUpLocked()
	s.seq++
	c := s.ds.Start(Work(s.work, s.cfg.Latency), s.seq)
	c.Done = make(chan struct{})
	s.rescheduleLocked()
	s.mu.Unlock()
	select {
	case <-c.Done:
		w.WriteHeader(http.StatusNoContent)
	case <-req.Context().Done():
		s.mu.Lock()
		s.catchUpLocked()
		s.ds.Cancel(c)
		s.rescheduleLocked()
		s.mu.Unlock()
	}
}

func (s *realServer) live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ds.Live()
}

func (s *realServer) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked()
	s.rescheduleLocked()
}

// catchUpLocked advances the model to now, completing the calls due on the
// way, each at its own time (the speed changes at every completion).
func (s *realServer) catchUpLocked() {
	now := time.Since(s.start)
	for {
		dt, ok := s.ds.NextDone()
		if !ok || s.at+dt > now {
			break
		}
		s.ds.Advance(dt)
		s.at += dt
		for c := s.ds.PopDone(); c != nil; c = s.ds.PopDone() {
			close(c.Done)
		}
	}
	s.ds.Advance(now - s.at)
	s.at = now
}

func (s *realServer) rescheduleLocked() {
	if dt, ok := s.ds.NextDone(); ok {
		s.timer.Reset(dt)
	}
}
