package gateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/pool"
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
}

// Gateway is the reverse proxy. Create it with New; its methods are safe for
// concurrent use. ServeHTTP is the public listener's handler; Reload swaps
// the configuration; Close stops the health checks.
type Gateway struct {
	opts    Options
	reg     *prometheus.Registry
	metrics *metrics
	proxy   *httputil.ReverseProxy
	// table is the routing table in use, swapped whole by Reload.
	table atomic.Pointer[table]
	// mu serialises Reload and Close.
	mu     sync.Mutex
	closed bool
}

// table is everything one configuration resolves to.
type table struct {
	cfg       *config.Config
	routes    []*route
	upstreams map[string]*upstream
}

// New returns a gateway serving cfg and starts the upstreams' health checks.
// It fails when a policy rejects its settings (cfg is expected to come from
// config.Load, validated) or when the metrics cannot be registered.
func New(cfg *config.Config, o Options) (*Gateway, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	g := &Gateway{opts: o, reg: o.Registry}
	m, err := newMetrics(o.Registry, g)
	if err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	g.metrics = m
	g.proxy = g.newProxy()
	t, err := g.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	g.table.Store(t)
	return g, nil
}

// build resolves cfg into a table, reusing from old the upstreams whose
// configuration is unchanged and the caches of the routes whose stale_cache
// settings are unchanged. On error, what it made is closed and old is
// untouched.
func (g *Gateway) build(cfg *config.Config, old *table) (t *table, err error) {
	if cfg == nil {
		return nil, errors.New("gateway: no configuration")
	}
	t = &table{cfg: cfg, upstreams: make(map[string]*upstream, len(cfg.Upstreams))}
	defer func() {
		if err != nil {
			t.closeUnshared(old)
		}
	}()
	for name, uc := range cfg.Upstreams {
		if old != nil {
			if u, ok := old.upstreams[name]; ok && reflect.DeepEqual(u.cfg, *uc) {
				t.upstreams[name] = u
				continue
			}
		}
		u, err := newUpstream(uc, &g.opts, g.metrics)
		if err != nil {
			return t, fmt.Errorf("gateway: upstream %q: %w", name, err)
		}
		t.upstreams[name] = u
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
	for _, rc := range cfg.Routes {
		r := &route{cfg: rc}
		if rc.Upstream != "" {
			if r.up, err = lookup(rc.Name, rc.Upstream); err != nil {
				return t, err
			}
			r.total = r.up.cfg.Timeouts.Total
			if rc.Timeout > 0 {
				r.total = rc.Timeout
			}
			r.totalKey = r.total.String()
		}
		for _, f := range rc.Fallback {
			switch {
			case f.Upstream != "":
				u, err := lookup(rc.Name, f.Upstream)
				if err != nil {
					return t, err
				}
				r.chain = append(r.chain, step{replica: u})
				r.hasReplica = true
			case f.StaleCache != nil:
				if c := oldCaches[rc.Name]; c != nil && c.cfg == *f.StaleCache {
					r.cache = c
				} else if r.cache, err = newStaleCache(*f.StaleCache); err != nil {
					return t, fmt.Errorf("gateway: route %q: stale_cache: %w", rc.Name, err)
				}
				r.chain = append(r.chain, step{cache: r.cache})
			case f.Static != nil:
				r.chain = append(r.chain, step{static: f.Static})
			}
		}
		t.routes = append(t.routes, r)
	}
	return t, nil
}

// closeUnshared closes the upstreams and caches of t that other (nil: no
// table) does not use: the pools' health checks and the caches' clean-up
// goroutines stop. It returns the number of upstreams closed.
func (t *table) closeUnshared(other *table) int {
	keep := map[any]bool{}
	if other != nil {
		for _, u := range other.upstreams {
			keep[u] = true
		}
		for _, r := range other.routes {
			if r.cache != nil {
				keep[r.cache] = true
			}
		}
	}
	n := 0
	for _, u := range t.upstreams {
		if !keep[u] {
			keep[u] = true
			u.close()
			n++
		}
	}
	for _, r := range t.routes {
		if r.cache != nil && !keep[r.cache] {
			keep[r.cache] = true
			r.cache.close()
		}
	}
	return n
}

// Reload atomically replaces the configuration with cfg. Requests in flight
// finish on the previous table. Every upstream whose resolved configuration
// is deep-equal to its previous one keeps its pool (health, ejections),
// breaker (state and window), retry budget and bulkhead; every route whose
// stale_cache settings are unchanged keeps its cache. Upstreams no longer
// configured, or changed, have their pools closed. On error the running
// configuration stays.
func (g *Gateway) Reload(cfg *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway: closed")
	}
	old := g.table.Load()
	t, err := g.build(cfg, old)
	if err != nil {
		return err
	}
	g.table.Store(t)
	n := old.closeUnshared(t)
	g.opts.Logger.Info("gateway: configuration reloaded", "routes", len(t.routes), "upstreams", len(t.upstreams),
		"replaced_upstreams", n)
	return nil
}

// Close stops the health checks of every upstream and drops idle upstream
// connections. ServeHTTP must not be called afterwards.
func (g *Gateway) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	g.table.Load().closeUnshared(nil)
}

// Config returns the configuration in use.
func (g *Gateway) Config() *config.Config { return g.table.Load().cfg }

// Registry returns the registry holding the gateway's metrics.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// Status is the state of every upstream, the shape of GET /api/v1/status.
type Status struct {
	Upstreams map[string]UpstreamStatus `json:"upstreams"`
}

// UpstreamStatus is the state of one upstream.
type UpstreamStatus struct {
	Breaker BreakerStatus `json:"breaker"`
	// InFlight counts the attempts holding a bulkhead slot.
	InFlight  int                   `json:"in_flight"`
	Instances []pool.InstanceStatus `json:"instances"`
}

// BreakerStatus is a breaker's state (closed, open, half_open, forced_open,
// disabled or metrics_only) and the failure rate of its window.
type BreakerStatus struct {
	State       string  `json:"state"`
	FailureRate float64 `json:"failure_rate"`
}

// Status returns the state of every upstream of the configuration in use.
func (g *Gateway) Status() Status {
	t := g.table.Load()
	s := Status{Upstreams: make(map[string]UpstreamStatus, len(t.upstreams))}
	for name, u := range t.upstreams {
		snap := u.breaker.Snapshot()
		s.Upstreams[name] = UpstreamStatus{
			Breaker:   BreakerStatus{State: snap.State.String(), FailureRate: snap.FailureRate},
			InFlight:  u.bulkhead.InFlight(),
			Instances: u.pool.Status(),
		}
	}
	return s
}

// Ready reports whether the gateway can serve: it has at least one route, and
// every upstream has at least one instance that is healthy and not ejected.
// An open breaker does not make the gateway unready: its routes still answer
// (fallbacks, fast errors), and restarting the process would not help.
func (g *Gateway) Ready() bool {
	t := g.table.Load()
	if len(t.routes) == 0 {
		return false
	}
	for _, u := range t.upstreams {
		usable := false
		for _, is := range u.pool.Status() {
			if is.Healthy && !is.Ejected {
				usable = true
				break
			}
		}
		if !usable {
			return false
		}
	}
	return true
}
