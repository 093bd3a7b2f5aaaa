// Package async runs a gateway's async routes: it stores their requests as
// jobs of the durable queue (package queue) and answers 202 Accepted,
// answers GET /_spillway/jobs/<id>, and runs one queue worker per async
// route that delivers the jobs back through the gateway.
//
// It knows the gateway only through Upstreams, which the gateway
// implements: "deliver this job's request along route R" and "the breaker
// state of route R's upstream". The gateway knows it through the small
// interface its routes call (Accept, JobStatus) and constructs it with
// New; package gateway imports package async, never the other way round.
package async

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/queue"
)

// Upstreams is the gateway as the async routes' workers see it.
type Upstreams interface {
	// Deliver sends req, a job of the async route named route rebuilt as
	// its client sent it (its URL the path as received, the query and the
	// client's scheme; Host and RemoteAddr the client's), to the route's
	// current upstream as the gateway proxies a request (strip_prefix,
	// the forwarding headers, the upstream's host) through that upstream's
	// breaker, bulkhead, time limits and instance pool, without its retry
	// policy: the queue retries. It fails with ErrNoRoute when route is
	// not, or no longer, an async route with an upstream.
	Deliver(ctx context.Context, route string, req *http.Request) (*http.Response, error)
	// Breaker returns the state of the breaker of route's upstream; false
	// when route has no upstream (a reload is replacing it).
	Breaker(route string) (breaker.Snapshot, bool)
}

// ErrNoRoute is Upstreams.Deliver's failure for a route that is not an
// async route with an upstream: a reload is replacing it, and its jobs
// wait for the new table.
var ErrNoRoute = errors.New("async: no such async route")

// Options are Routes' dependencies.
type Options struct {
	// Logger receives operational messages.
	Logger *slog.Logger
	// WorkerGrace is how long stopping a worker waits for its deliveries
	// in flight before cancelling them (their jobs are delivered again
	// later).
	WorkerGrace time.Duration
	// Deliveries counts delivery attempts by route and result
	// (spillway_queue_deliveries_total); DeadDropped the dead letters
	// dropped by route (spillway_queue_dead_letters_dropped_total).
	Deliveries  *prometheus.CounterVec
	DeadDropped *prometheus.CounterVec
}

// Routes are a gateway's async routes over one queue. Create them with
// New; their methods are safe for concurrent use.
type Routes struct {
	q    *queue.Queue
	up   Upstreams
	opts Options
	// delivered are the async routes of the last Sync that have an
	// upstream, with its retry_after_max.
	delivered atomic.Pointer[map[string]time.Duration]
	// mu serialises Sync and Close, and guards workers.
	mu sync.Mutex
	// workers are the queue workers by async route name.
	workers map[string]*worker
	// workerless counts the async routes whose worker could not start.
	workerless atomic.Int64
}

// New returns the async routes storing into q and delivering through up.
// Nothing runs before Sync.
func New(q *queue.Queue, up Upstreams, o Options) *Routes {
	rs := &Routes{q: q, up: up, opts: o, workers: map[string]*worker{}}
	rs.delivered.Store(&map[string]time.Duration{})
	return rs
}

// Ready reports whether every async route of the last Sync has its worker
// and the store answers a status lookup within a second (one key-value
// read).
func (rs *Routes) Ready() bool {
	return rs.workerless.Load() == 0 && probeQueue(rs.q)
}

// Close stops every worker, waiting up to Options.WorkerGrace for their
// deliveries in flight. It does not close the queue.
func (rs *Routes) Close() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	ws := make([]*worker, 0, len(rs.workers))
	for name, w := range rs.workers {
		ws = append(ws, w)
		delete(rs.workers, name)
	}
	rs.stopWorkers(ws)
}

// queueProbeTimeout bounds the store lookups made for metrics, status and
// readiness, which must answer even when the store does not.
const queueProbeTimeout = time.Second

// probeQueue reports whether the store answers: a status lookup of an id
// no job has, which costs the store one key-value read.
func probeQueue(q *queue.Queue) bool {
	ctx, cancel := context.WithTimeout(context.Background(), queueProbeTimeout)
	defer cancel()
	_, err := q.Status(ctx, "00000000000000000000000000000000")
	return err == nil || errors.Is(err, queue.ErrNotFound)
}

// ValidJobID reports whether id has the shape of a job id: 32 lowercase
// hexadecimal digits (queue.ValidID).
func ValidJobID(id string) bool { return queue.ValidID(id) }

// QueueConfig maps the queue: section of a configuration to queue.Config
// (the fields correspond one to one; Logger is left for the caller).
func QueueConfig(c config.Queue) queue.Config {
	qc := queue.Config{
		Servers: c.Servers, Dir: c.Dir, MaxMemory: c.MaxMemory, MaxDisk: c.MaxDisk,
		SyncAlways: c.SyncAlways, SyncInterval: c.SyncInterval,
		CredsFile: c.Credentials, User: c.User, Password: c.Password, Token: c.Token,
		Replicas: c.Replicas, DedupeWindow: c.DedupeWindow, Timeout: c.Timeout, Prefix: c.Prefix,
		PingInterval:       c.PingInterval,
		DeadLetterMaxBytes: c.DeadLetters.MaxBytes, DeadLetterMaxMessages: int64(c.DeadLetters.MaxMessages),
	}
	if c.TLS != nil {
		qc.TLS = &queue.TLS{CA: c.TLS.CA, Cert: c.TLS.Cert, Key: c.TLS.Key}
	}
	return qc
}

// HasAsync reports whether cfg has an async route, which needs a queue.
func HasAsync(cfg *config.Config) bool {
	for _, r := range cfg.Routes {
		if r.Async != nil {
			return true
		}
	}
	return false
}
