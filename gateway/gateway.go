package gateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/async"
	"github.com/spillway-dev/spillway/gateway/pool"
	"github.com/spillway-dev/spillway/queue"
)

// Options are the gateway's dependencies; the zero value of each field has a
// default.
type Options struct {
	// AccessLog receives one line per request (see ServeHTTP); nil: none.
	AccessLog *slog.Logger
	// AccessLogWriter, when set, receives the same lines as JSON written by
	// the gateway itself, one Write per line, in the shape slog's
	// JSONHandler gives them (time, level, msg, then the fields) at a
	// fraction of the cost; it takes precedence over AccessLog. It must be
	// safe for concurrent use.
	AccessLogWriter io.Writer
	// Logger receives operational messages; nil: slog.Default().
	Logger *slog.Logger
	// Registry receives the gateway's metrics; nil: a new registry.
	Registry *prometheus.Registry
	// Base sends the attempts to the instances; nil: a
	// spillwayhttp.NewBaseTransport per upstream, with its connect and
	// attempt timeouts. Tests inject one.
	Base http.RoundTripper
	// Queue stores the requests of async routes and runs their workers;
	// the gateway does not close it. Nil: a configuration with an async
	// route is refused.
	Queue *queue.Queue
	// WorkerGrace is how long stopping a queue worker (at Reload for a
	// route removed or changed, at Close) waits for its deliveries in
	// flight before cancelling them (their jobs are delivered again
	// later); default 5s.
	WorkerGrace time.Duration
	// Tracer traces each request (a server span, a client span per
	// attempt); nil: no tracing, at no cost. internal/server plugs in
	// gateway/telemetry's when the configuration has telemetry:.
	Tracer Tracer

	// check builds without starting anything: no health checks, and async
	// routes need no queue (see Check).
	check bool
}

// Gateway is the reverse proxy. Create it with New; its methods are safe for
// concurrent use. ServeHTTP is the public listener's handler; Reload swaps
// the configuration; Close stops the health checks.
type Gateway struct {
	opts    Options
	reg     *prometheus.Registry
	metrics *metrics
	// table is the routing table in use, swapped whole by Reload.
	table atomic.Pointer[table]
	// mu serialises Reload and Close.
	mu     sync.Mutex
	closed bool
	// asyncRoutes runs the async routes' queue workers, nil without
	// Options.Queue; jobs is the same, as the request path knows it.
	asyncRoutes *async.Routes
	jobs        jobs
	// events receives the decisions the gateway makes (Events).
	events *EventBus
	// overrides are the runtime changes in force (runtime_change.go).
	overrides overrides
	// faults are the runtime faults (fault.go), replaced whole under mu;
	// now is the clock their expiry is read on.
	faults atomic.Pointer[[]*Fault]
	now    func() time.Time
	// tunnels are the upgraded connections open (upgrade.go).
	tunnels tunnels
}

// table is everything one configuration resolves to.
type table struct {
	cfg       *config.Config
	routes    []*route
	index     *routeIndex // over routes, built with them (route_index.go)
	byName    map[string]*route
	upstreams map[string]*upstream
}

// New returns a gateway serving cfg, starts the upstreams' health checks
// and a queue worker per async route. It fails when a policy rejects its
// settings (cfg is expected to come from config.Load, validated), when the
// metrics cannot be registered, when cfg has an async route and
// Options.Queue is nil, or when a worker cannot start.
func New(cfg *config.Config, o Options) (*Gateway, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.WorkerGrace <= 0 {
		o.WorkerGrace = defaultWorkerGrace
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	g := &Gateway{opts: o, reg: o.Registry, events: NewEventBus(DefaultEventRing), now: time.Now}
	m, err := newMetrics(o.Registry, g)
	if err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	g.metrics = m
	if o.Queue != nil {
		g.asyncRoutes = async.New(o.Queue, deliveries{g}, async.Options{Logger: o.Logger, WorkerGrace: o.WorkerGrace,
			Deliveries: m.deliveries, DeadDropped: m.deadDropped})
		g.jobs = g.asyncRoutes
	}
	// Nothing to commit: every upstream is new.
	t, _, err := g.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	g.table.Store(t)
	if err := g.syncWorkers(t); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// syncWorkers makes the running queue workers those of t's async routes
// (async.Routes.Sync). g.mu is held, or g is not shared yet.
func (g *Gateway) syncWorkers(t *table) error {
	if g.asyncRoutes == nil {
		return nil
	}
	return g.asyncRoutes.Sync(t.cfg)
}

// build resolves cfg into a table: the upstreams of old still configured
// are applied in place (see Apply; the steps that change their running
// policies are in p, to run before t is used), and the routes whose
// stale_cache settings are unchanged keep their caches. On error, what it
// made is closed and old is untouched.
func (g *Gateway) build(cfg *config.Config, old *table) (t *table, p *plan, err error) {
	if cfg == nil {
		return nil, nil, errors.New("gateway: no configuration")
	}
	t = &table{cfg: cfg, upstreams: make(map[string]*upstream, len(cfg.Upstreams)), byName: make(map[string]*route, len(cfg.Routes))}
	defer func() {
		if err != nil {
			t.closeUnshared(old)
		}
	}()
	if err := g.checkQueue(cfg); err != nil {
		return t, nil, err
	}
	p = newPlan()
	if err := g.buildUpstreams(cfg, old, t, p); err != nil {
		return t, nil, err
	}
	oldCaches := map[string]*staleCache{}
	if old != nil {
		for _, r := range old.routes {
			if r.cache != nil {
				oldCaches[r.cfg.Name] = r.cache
			}
		}
	}
	lookup := func(route, name string) (*upstream, error) {
		u, ok := t.upstreams[name]
		if !ok {
			return nil, fmt.Errorf("gateway: route %q: unknown upstream %q", route, name)
		}
		return u, nil
	}
	for i, rc := range cfg.Routes {
		r := &route{cfg: rc}
		if rc.Upstream != "" {
			if r.up, err = lookup(rc.Name, rc.Upstream); err != nil {
				return t, nil, err
			}
			r.total = r.up.cfg.Timeouts.Total
			if rc.Timeout > 0 {
				r.total = rc.Timeout
			}
			r.totalKey = r.up.limit(r.total)
		}
		for j, f := range rc.Fallback {
			switch {
			case f.Upstream != "":
				u, err := lookup(rc.Name, f.Upstream)
				if err != nil {
					return t, nil, err
				}
				r.chain = append(r.chain, step{replica: u})
				r.hasReplica = true
			case f.StaleCache != nil:
				if c := oldCaches[rc.Name]; c != nil && reflect.DeepEqual(c.cfg, *f.StaleCache) {
					r.cache = c
				} else if r.cache, err = newStaleCache(*f.StaleCache); err != nil {
					return t, nil, &placedError{path: fmt.Sprintf("$.routes[%d].fallback[%d].stale_cache", i, j),
						err: fmt.Errorf("gateway: route %q: stale_cache: %w", rc.Name, err)}
				}
				r.chain = append(r.chain, step{cache: r.cache})
			case f.Static != nil:
				r.chain = append(r.chain, step{static: f.Static})
			}
		}
		var runtime []*Fault
		if l := g.faults.Load(); l != nil {
			runtime = *l
		}
		r.faults.Store(newFaultSet(rc, runtime, g.now))
		if r.limit, err = g.applyRouteLimit(rc, i, old.route(rc.Name), p); err != nil {
			return t, nil, err
		}
		t.routes = append(t.routes, r)
		t.byName[rc.Name] = r
	}
	t.index = newRouteIndex(t.routes)
	return t, p, nil
}

// buildUpstreams puts cfg's upstreams into t: new ones for the names old
// does not have, the others applied in place.
func (g *Gateway) buildUpstreams(cfg *config.Config, old, t *table, p *plan) error {
	for name, uc := range cfg.Upstreams {
		var u *upstream
		var err error
		if prev := old.upstream(name); prev != nil {
			u, err = g.applyUpstream(prev, uc, p)
		} else {
			u, err = newUpstream(uc, &g.opts, g.metrics)
			p.applied(Change{Upstream: name, Part: "upstream", Detail: "added"})
		}
		if err != nil {
			return &placedError{path: "$.upstreams." + name, err: fmt.Errorf("gateway: upstream %q: %w", name, err)}
		}
		t.upstreams[name] = u
	}
	if old != nil {
		for name := range old.upstreams {
			if _, ok := cfg.Upstreams[name]; !ok {
				p.applied(Change{Upstream: name, Part: "upstream", Detail: "removed: its pool closed, its state dropped"})
			}
		}
	}
	return nil
}

// route returns t's route name, nil when t is nil or has none.
func (t *table) route(name string) *route {
	if t == nil {
		return nil
	}
	return t.byName[name]
}

// upstream returns t's upstream name, nil when t is nil or has none.
func (t *table) upstream(name string) *upstream {
	if t == nil {
		return nil
	}
	return t.upstreams[name]
}

// closeUnshared closes the pools, base transports, caches and shared rate
// limits of t that other (nil: no table) does not use: the pools' health
// checks, the caches' clean-up goroutines and the shared limits'
// heartbeats stop, the transports drop their idle connections.
func (t *table) closeUnshared(other *table) {
	keep := map[any]bool{}
	if other != nil {
		for _, u := range other.upstreams {
			keep[u.pool] = true
			if u.ownBase {
				keep[u.base] = true
			}
		}
		for _, r := range other.routes {
			if r.cache != nil {
				keep[r.cache] = true
			}
			if r.limit != nil && r.limit.shared != nil {
				keep[r.limit.shared] = true
			}
		}
	}
	for _, u := range t.upstreams {
		if !keep[u.pool] {
			keep[u.pool] = true
			u.pool.Close()
		}
		// Only the gateway's own bases, *http.Transport, are map keys:
		// Options.Base may be of a type that is not comparable.
		if c, ok := u.base.(interface{ CloseIdleConnections() }); ok && u.ownBase && !keep[u.base] {
			keep[u.base] = true
			c.CloseIdleConnections()
		}
	}
	for _, r := range t.routes {
		if r.cache != nil && !keep[r.cache] {
			keep[r.cache] = true
			r.cache.close()
		}
		if r.limit != nil && r.limit.shared != nil && !keep[r.limit.shared] {
			keep[r.limit.shared] = true
			_ = r.limit.shared.Close()
		}
	}
}

// removed returns the names of the upstreams and routes of old that t
// does not have.
func removed(old, t *table) (upstreams, routes []string) {
	for name := range old.upstreams {
		if _, ok := t.upstreams[name]; !ok {
			upstreams = append(upstreams, name)
		}
	}
	kept := make(map[string]bool, len(t.routes))
	for _, r := range t.routes {
		kept[r.cfg.Name] = true
	}
	for _, r := range old.routes {
		if !kept[r.cfg.Name] {
			routes = append(routes, r.cfg.Name)
		}
	}
	return upstreams, routes
}

// Reload applies cfg (see Apply) and logs, once, what it changed and what
// it reset.
func (g *Gateway) Reload(cfg *config.Config) error {
	cs, err := g.Apply(cfg)
	if err != nil {
		return err
	}
	applied, resets := cs.Lines()
	g.opts.Logger.Info("gateway: configuration reloaded", "changes", applied, "resets", resets)
	return nil
}

// Close closes the upgraded connections (CloseUpgrades), stops the queue
// workers (waiting up to Options.WorkerGrace for their deliveries in
// flight), the health checks of every upstream, and
// drops idle upstream connections; it closes Events, which ends its streams. It does not close Options.Queue.
// ServeHTTP must not be called afterwards.
func (g *Gateway) Close() {
	g.CloseUpgrades()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	if g.asyncRoutes != nil {
		g.asyncRoutes.Close()
	}
	g.table.Load().closeUnshared(nil)
	g.events.Close()
}

// Queue returns Options.Queue: the store of the async routes' jobs, nil
// when the gateway has none. The admin API reads jobs and dead letters
// through it.
func (g *Gateway) Queue() *queue.Queue { return g.opts.Queue }

// Config returns the configuration in use.
func (g *Gateway) Config() *config.Config { return g.table.Load().cfg }

// Registry returns the registry holding the gateway's metrics.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// Status is the state of every upstream, the shape of GET /api/v1/status.
type Status struct {
	Upstreams map[string]UpstreamStatus `json:"upstreams"`
	// Queues are the async routes' queues, when the store answered.
	Queues map[string]QueueStatus `json:"queues,omitempty"`
	// Store is the state of the queue's store, when the gateway has a
	// queue.
	Store *StoreStatus `json:"store,omitempty"`
	// Overrides are the runtime changes in force (Gateway.Overrides),
	// absent when there is none.
	Overrides []Override `json:"overrides,omitempty"`
}

// UpstreamStatus is the state of one upstream.
type UpstreamStatus struct {
	Breaker BreakerStatus `json:"breaker"`
	// InFlight counts the attempts holding a bulkhead slot: waiting for
	// their response headers, or streaming the response body.
	InFlight  int                   `json:"in_flight"`
	Instances []pool.InstanceStatus `json:"instances"`
}

// BreakerStatus is a breaker's state (closed, open, half_open, forced_open,
// disabled or metrics_only) and the failure rate of its window.
type BreakerStatus struct {
	State       string  `json:"state"`
	FailureRate float64 `json:"failure_rate"`
	// SlowStartShare is the share of requests a breaker that has just
	// closed admits (slow_start.window), and SlowStartLeft the time until
	// it admits them all; both absent when it is not ramping.
	SlowStartShare float64 `json:"slow_start_share,omitempty"`
	SlowStartLeft  string  `json:"slow_start_left,omitempty"`
}

// Status returns the state of every upstream of the configuration in use
// and, with a queue, of its queues and its store (read from the store,
// each within a second).
func (g *Gateway) Status() Status {
	t := g.table.Load()
	s := Status{Upstreams: make(map[string]UpstreamStatus, len(t.upstreams))}
	for name, u := range t.upstreams {
		snap := u.breaker.Snapshot()
		s.Upstreams[name] = UpstreamStatus{
			Breaker:   breakerStatus(snap),
			InFlight:  u.bulkhead.InFlight(),
			Instances: u.pool.Status(),
		}
	}
	if g.asyncRoutes != nil {
		s.Queues, s.Store = g.asyncRoutes.Status(t.cfg)
	}
	s.Overrides = g.Overrides()
	return s
}

// Ready reports whether the gateway can serve: it has at least one route;
// with a queue, every async route has its worker and the store answers a
// status lookup within a second (one key-value read); and every upstream
// named in readiness.required_upstreams has at least one instance that is
// healthy and not ejected. By default no upstream is required: an upstream
// that is down, like an open breaker, does not make the gateway unready,
// since its routes still answer (fallbacks, fast errors) and neither a
// restart nor a load balancer taking the gateway out would bring it back.
func (g *Gateway) Ready() bool {
	t := g.table.Load()
	if len(t.routes) == 0 {
		return false
	}
	if g.asyncRoutes != nil && !g.asyncRoutes.Ready() {
		return false
	}
	for _, name := range t.cfg.Readiness.RequiredUpstreams {
		u, ok := t.upstreams[name]
		if !ok || !u.usable() {
			return false
		}
	}
	return true
}

// usable reports whether u has an instance healthy and not ejected.
func (u *upstream) usable() bool {
	for _, is := range u.pool.Status() {
		if is.Healthy && !is.Ejected {
			return true
		}
	}
	return false
}
