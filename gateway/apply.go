package gateway

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/throttle"
)

// Change is one setting a reload applied, or one piece of running state it
// had to reset because the new setting could not be applied in place.
type Change struct {
	// Upstream or Route names what changed.
	Upstream string `json:"upstream,omitempty"`
	Route    string `json:"route,omitempty"`
	// Part is the configuration key changed (breaker, bulkhead, timeouts,
	// retry, retry.budget, hedge, pool, max_replay_body, ...), or the state
	// reset (breaker.window, retry.budget, hedge, connections,
	// health_counts, stale_cache), or "upstream" / "route" for one added or removed.
	Part string `json:"part"`
	// Detail lists the keys changed, old → new, and what was kept or reset.
	Detail string `json:"detail"`
}

func (c Change) String() string {
	who := "upstream " + c.Upstream
	if c.Route != "" {
		who = "route " + c.Route
	}
	return who + ": " + c.Part + ": " + c.Detail
}

// Changes is what Apply did: every change applied and every state reset.
// Both lists are sorted by upstream, route and part, and never nil.
type Changes struct {
	Applied []Change `json:"changes"`
	Resets  []Change `json:"resets"`
	// Overrides are, for Apply, the runtime overrides applied again on
	// top of the new configuration and those dropped; nil otherwise.
	Overrides *OverridesKept `json:"overrides,omitempty"`
}

// Lines returns the changes and the resets as text, one entry each.
func (cs Changes) Lines() (applied, resets []string) {
	str := func(l []Change) []string {
		out := make([]string, len(l))
		for i, c := range l {
			out[i] = c.String()
		}
		return out
	}
	return str(cs.Applied), str(cs.Resets)
}

// plan is what build prepared: the changes it will report and the steps
// that change the running policies in place. The steps run only once the
// whole configuration has been built without error, so that a refused
// reload changes nothing; they cannot fail, having been validated.
type plan struct {
	Changes
	commits []func()
}

func newPlan() *plan {
	return &plan{Changes: Changes{Applied: []Change{}, Resets: []Change{}}}
}

func (p *plan) commit(f func()) { p.commits = append(p.commits, f) }

func (p *plan) applied(c Change) { p.Applied = append(p.Applied, c) }

func (p *plan) reset(c Change) { p.Resets = append(p.Resets, c) }

// sort orders the lists: build walks maps.
func (p *plan) sort() {
	by := func(a, b Change) int {
		return cmp.Or(cmp.Compare(a.Upstream, b.Upstream), cmp.Compare(a.Route, b.Route), cmp.Compare(a.Part, b.Part))
	}
	slices.SortStableFunc(p.Applied, by)
	slices.SortStableFunc(p.Resets, by)
}

// Apply replaces the configuration with cfg, changing the running
// upstreams in place, and returns what it changed and what it reset. It is
// the one path by which the configuration changes at run time (Reload, the
// admin API).
//
// An upstream keeps its breaker (state, open deadline and window:
// thresholds through breaker.Reconfigure; a count window resized keeps its
// newest outcomes; a window type change starts a new window, state kept),
// its bulkhead (resized: calls in flight and queued keep their slots and
// places), its retry budget unless the budget's settings change (then a
// new one), its connection pool unless timeouts.connect changes, and its
// instances' health and ejection state for the instances that stay (a new
// pool inherits it). Timeouts, the retry policy and max_replay_body apply
// to the requests that start after Apply returns: those in flight finish
// with the settings they started with. Routes are rebuilt; a route keeps
// its stale cache while its stale_cache settings are unchanged, and its
// queue worker while its async settings are unchanged (otherwise the worker
// is stopped, Options.WorkerGrace, and a new one started).
//
// On error the running configuration and state are untouched. A queue
// worker that cannot start is logged and makes Ready false, the new
// configuration being in use.
//
// cfg is the configuration file's: the runtime overrides in force (see
// Gateway.Overrides) are applied again on top of it, those that no longer
// apply (their upstream or route is gone, or the new file makes them
// invalid) are dropped, and Changes.Overrides lists both.
func (g *Gateway) Apply(cfg *config.Config) (Changes, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return Changes{}, errors.New("gateway: closed")
	}
	eff, kept, dropped := g.overrides.onto(cfg)
	cs, err := g.apply(eff, routesOff(kept))
	if err != nil {
		return Changes{}, err
	}
	g.overrides.reset(cfg, kept)
	for _, d := range dropped {
		g.opts.Logger.Warn("gateway: reload: runtime override dropped", "who", d.Who, "upstream", d.Upstream, "route", d.Route,
			"what", string(d.What), "reason", d.Reason)
	}
	cs.Overrides = &OverridesKept{Kept: kept, Dropped: dropped}
	return cs, nil
}

// apply makes cfg the configuration in use, the routes named in off
// disabled; g.mu is held.
func (g *Gateway) apply(cfg *config.Config, off map[string]bool) (Changes, error) {
	old := g.table.Load()
	t, p, err := g.build(cfg, old)
	if err != nil {
		return Changes{}, err
	}
	for _, f := range p.commits {
		f()
	}
	for _, r := range t.routes {
		r.off.Store(off[r.cfg.Name])
	}
	g.table.Store(t)
	g.closeStaleTunnels(t)
	if err := g.syncWorkers(t); err != nil {
		g.opts.Logger.Error("gateway: reload: a queue worker did not start; the gateway is not ready", "error", err)
	}
	old.closeUnshared(t)
	g.metrics.forget(removed(old, t))
	diffRoutes(old, t, p)
	p.sort()
	g.events.Publish(EventConfig, p.Changes)
	return p.Changes, nil
}

// applyUpstream returns the upstream that runs u in old's place: old itself
// when its configuration is unchanged, otherwise a new one sharing old's
// stateful policies, with the steps that change them in p. Its transports
// are new (they hold no state); the requests in flight finish on old's.
func (g *Gateway) applyUpstream(old *upstream, u *config.Upstream, p *plan) (*upstream, error) {
	if reflect.DeepEqual(old.cfg, *u) {
		return old, nil
	}
	next := &upstream{name: u.Name, cfg: *u, on: parseRetryOn(u.Retry.On), metrics: old.metrics,
		pool: old.pool, breaker: old.breaker, budget: old.budget, bulkhead: old.bulkhead, throttle: old.throttle, hedge: old.hedge,
		shed: old.shed, base: old.base, ownBase: old.ownBase}
	err := errors.Join(g.applyBreaker(old, next, p), applyBulkhead(old, next, p), g.applyThrottle(old, next, p),
		applyShed(old, next, p), applyRetry(old, next, p))
	if err == nil {
		err = applyHedge(old, next, p)
	}
	if err == nil {
		g.applyTimeouts(old, next, p)
		err = g.applyBase(old, next, p)
	}
	if err == nil {
		err = g.applyPool(old, next, p)
	}
	if err == nil {
		err = next.wire()
	}
	if err != nil {
		if next.pool != old.pool {
			next.pool.Close() // not started
		}
		return nil, err
	}
	if d := diffKeys("max_replay_body", old.cfg.MaxReplayBody, u.MaxReplayBody); d != "" {
		p.applied(Change{Upstream: u.Name, Part: "max_replay_body", Detail: d + "; for the requests that start after the reload"})
	}
	return next, nil
}

// applyBreaker reconfigures the breaker: thresholds, window size, probes
// and the probe timeout (timeouts.attempt) in place, the mode by a manual
// transition.
func (g *Gateway) applyBreaker(old, next *upstream, p *plan) error {
	was, u := &old.cfg, &next.cfg
	// slow_start.window is also the breaker's ramp after it closes.
	d := joinDiffs(diffKeys("breaker", was.Breaker, u.Breaker), diffKeys("slow_start", was.SlowStart, u.SlowStart))
	if was.Timeouts.Attempt != u.Timeouts.Attempt {
		d = joinDiffs(d, fmt.Sprintf("probe_timeout (timeouts.attempt) %v → %v", was.Timeouts.Attempt, u.Timeouts.Attempt))
	}
	if d == "" {
		return nil
	}
	bc := u.BreakerConfig()
	bc.Observer = next.metrics
	// Validated here, applied at commit: a refused reload changes nothing.
	if _, err := breaker.New(bc); err != nil {
		return err
	}
	br, mode := next.breaker, u.Breaker.Mode
	modeChanged := was.Breaker.Mode != mode
	p.commit(func() {
		if err := br.Reconfigure(bc); err != nil {
			g.opts.Logger.Error("gateway: reload: breaker not reconfigured", "upstream", u.Name, "error", err)
		}
		if modeChanged {
			setBreakerMode(br, mode)
		}
	})
	typeChanged := was.Breaker.Window.Type != u.Breaker.Window.Type
	how := "state, open deadline and window kept"
	if modeChanged || typeChanged {
		how = "kept what the resets do not name"
	}
	p.applied(Change{Upstream: u.Name, Part: "breaker", Detail: d + "; " + how})
	if modeChanged {
		p.reset(Change{Upstream: u.Name, Part: "breaker.state", Detail: fmt.Sprintf("mode %s → %s: moved as by a manual transition "+
			"(to closed from other than metrics_only, or to metrics_only from other than closed, starts an empty window)",
			cmp.Or(was.Breaker.Mode, "closed"), cmp.Or(mode, "closed"))})
	}
	if typeChanged {
		p.reset(Change{Upstream: u.Name, Part: "breaker.window", Detail: fmt.Sprintf(
			"window type %s → %s: a new, empty window; the breaker's state kept", windowType(was), windowType(u))})
	}
	return nil
}

func windowType(u *config.Upstream) string { return cmp.Or(u.Breaker.Window.Type, "count") }

// applyBulkhead reconfigures the bulkhead in place: the calls in flight
// keep their slots, the callers queued their places, and an adaptive limit
// its current value, clamped into its new bounds.
func applyBulkhead(old, next *upstream, p *plan) error {
	was, u := old.cfg.Bulkhead, next.cfg.Bulkhead
	d := diffKeys("bulkhead", was, u)
	if d == "" {
		return nil
	}
	bc := bulkheadConfig(&next.cfg, next.metrics)
	// Validated here, applied at commit: a refused reload changes nothing.
	if _, err := bulkhead.New(bc); err != nil {
		return err
	}
	bh := next.bulkhead
	// Update checks exactly what New did: it does not fail here.
	p.commit(func() { _ = bh.Update(bc) })
	how := "calls in flight keep their slots, queued callers their places"
	if u.Adaptive != "" && (was.Adaptive != u.Adaptive || was.MinConcurrent != u.MinConcurrent || was.MaxConcurrent != u.MaxConcurrent) {
		how += fmt.Sprintf("; the adaptive limit (%s) kept, clamped into [%d, %d], learning afresh from there", u.Adaptive, u.MinConcurrent, u.MaxConcurrent)
	}
	p.applied(Change{Upstream: next.name, Part: "bulkhead", Detail: d + "; " + how})
	return nil
}

// applyThrottle updates the throttle in place, keeping its window's
// requests and accepts (a new window length keeps those still inside it),
// adds one with an empty window, or removes it.
func (g *Gateway) applyThrottle(old, next *upstream, p *plan) error {
	d := diffKeys("throttle", old.cfg.Throttle, next.cfg.Throttle)
	if d == "" {
		return nil
	}
	tc, ok := next.cfg.ThrottleConfig()
	switch {
	case !ok:
		next.throttle = nil
		p.applied(Change{Upstream: next.name, Part: "throttle", Detail: d + "; requests are no longer throttled"})
		return nil
	case next.throttle == nil:
		t, err := newThrottle(&next.cfg, next.metrics)
		if err != nil {
			return err
		}
		next.throttle = t
		p.applied(Change{Upstream: next.name, Part: "throttle", Detail: d + "; a new throttle, its window empty"})
		return nil
	}
	// Validated here, applied at commit: a refused reload changes nothing.
	if _, err := throttle.New(tc); err != nil {
		return err
	}
	t := next.throttle
	p.commit(func() {
		if err := t.Update(func(c *throttle.Config) {
			c.K, c.Window, c.MaxRejectionRate, c.Buckets = tc.K, tc.Window, tc.MaxRejectionRate, 0
		}); err != nil {
			g.opts.Logger.Error("gateway: reload: throttle not updated", "upstream", next.name, "error", err)
		}
	})
	p.applied(Change{Upstream: next.name, Part: "throttle", Detail: d + "; the window's requests and accepts kept"})
	return nil
}

// applyRetry replaces the retry budget when its settings change (it has no
// in-place reconfiguration: its counts restart) and reports a change of
// the retry policy, which wire builds anew.
func applyRetry(old, next *upstream, p *plan) error {
	was, u := old.cfg.Retry, next.cfg.Retry
	if d := diffKeys("retry.budget", was.Budget, u.Budget); d != "" {
		b, err := newBudget(&next.cfg)
		if err != nil {
			return err
		}
		next.budget = b
		p.reset(Change{Upstream: next.name, Part: "retry.budget", Detail: d + ": a new budget; its counts of requests and retries start from zero"})
	}
	was.Budget, u.Budget = config.Budget{}, config.Budget{}
	if d := diffKeys("retry", was, u); d != "" {
		p.applied(Change{Upstream: next.name, Part: "retry", Detail: d + "; for the requests that start after the reload"})
	}
	return nil
}

// applyHedge keeps the hedging policy — its learned latency and counts —
// while hedge: and the retry budget it draws from are unchanged; otherwise
// it makes a new one (a learned delay is learned again).
func applyHedge(old, next *upstream, p *plan) error {
	d := diffKeys("hedge", old.cfg.Hedge, next.cfg.Hedge)
	if d == "" && (next.budget == old.budget || old.hedge == nil) {
		next.hedge = old.hedge
		return nil
	}
	h, err := newHedge(&next.cfg, next.budget, next.metrics)
	if err != nil {
		return err
	}
	next.hedge = h
	switch {
	case old.hedge == nil || h == nil:
		p.applied(Change{Upstream: next.name, Part: "hedge", Detail: d + "; for the requests that start after the reload"})
	case d == "":
		p.reset(Change{Upstream: next.name, Part: "hedge", Detail: "retry.budget changed: a new hedging policy drawing from the new budget; its learned latency and counts start from zero"})
	default:
		p.reset(Change{Upstream: next.name, Part: "hedge", Detail: d + ": a new hedging policy; its learned latency and counts start from zero"})
	}
	return nil
}

// applyTimeouts reports a change of the time limits, which wire applies;
// a new connect limit needs a new base transport (the dialer's), so its
// connection pool starts empty.
func (g *Gateway) applyTimeouts(old, next *upstream, p *plan) {
	was, u := old.cfg.Timeouts, next.cfg.Timeouts
	d := diffKeys("timeouts", was, u)
	if d == "" {
		return
	}
	p.applied(Change{Upstream: next.name, Part: "timeouts", Detail: d + "; for the requests that start after the reload"})
	if next.ownBase && was.Connect != u.Connect {
		p.reset(Change{Upstream: next.name, Part: "connections", Detail: "timeouts.connect changed: a new connection pool; the old one's idle connections closed"})
	}
}

// applyBase builds a new base transport, so a new connection pool, when
// timeouts.connect (the dialer's) or tls: changes; a tls: change also
// replaces the health checks' pool (applyPool).
func (g *Gateway) applyBase(old, next *upstream, p *plan) error {
	was, u := &old.cfg, &next.cfg
	tlsDiff := diffKeys("tls", was.TLS, u.TLS)
	if !next.ownBase || was.Timeouts.Connect == u.Timeouts.Connect && tlsDiff == "" {
		return nil
	}
	if err := next.setBase(u, &g.opts); err != nil {
		return err
	}
	if tlsDiff != "" {
		p.applied(Change{Upstream: next.name, Part: "tls", Detail: tlsDiff + "; for the connections made after the reload"})
		p.reset(Change{Upstream: next.name, Part: "connections", Detail: tlsDiff + ": a new connection pool with the new TLS settings (files read again); the old one's idle connections closed"})
	}
	return nil
}

// applyPool replaces the pool when its instances, balance, health or
// outlier settings change; the new pool inherits, at commit, the health and
// ejection state of the instances that stay, then starts its checks.
func (g *Gateway) applyPool(old, next *upstream, p *plan) error {
	was, u := &old.cfg, &next.cfg
	d := joinDiffs(diffKeys("instances", was.Instances, u.Instances), diffKeys("balance", was.Balance, u.Balance),
		diffKeys("health", was.Health, u.Health), diffKeys("outlier", was.Outlier, u.Outlier), healthTLS(was, u),
		diffKeys("slow_start", was.SlowStart, u.SlowStart))
	if d == "" {
		return nil
	}
	np, err := newPool(u, &g.opts, next.metrics)
	if err != nil {
		return err
	}
	prev := old.pool
	p.commit(func() {
		np.Inherit(prev)
		np.Start()
	})
	next.pool = np
	p.applied(Change{Upstream: u.Name, Part: "pool", Detail: d + "; the health, ejection and slow start of the instances that stay kept"})
	if was.Health != nil && u.Health != nil {
		p.reset(Change{Upstream: u.Name, Part: "health_counts", Detail: "the counts of consecutive health check results start again from zero"})
	}
	return nil
}

// healthTLS is the diff of tls: when the health checks use it.
func healthTLS(was, u *config.Upstream) string {
	if u.Health == nil {
		return ""
	}
	return diffKeys("tls", was.TLS, u.TLS)
}

// diffRoutes reports the routes added, removed or changed, and the stale
// caches a changed stale_cache setting replaced.
func diffRoutes(old, t *table, p *plan) {
	for _, r := range t.routes {
		name := r.cfg.Name
		prev, ok := old.byName[name]
		switch {
		case !ok:
			p.applied(Change{Route: name, Part: "route", Detail: "added"})
			continue
		case reflect.DeepEqual(prev.cfg, r.cfg):
			continue
		}
		p.applied(Change{Route: name, Part: "route", Detail: diffKeys("", prev.cfg, r.cfg)})
		if prev.cache != nil && prev.cache != r.cache {
			p.reset(Change{Route: name, Part: "stale_cache", Detail: "settings changed: a new, empty cache"})
		}
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for name := range old.byName {
			if _, ok := t.byName[name]; !ok && !yield(name) {
				return
			}
		}
	}) {
		p.applied(Change{Route: name, Part: "route", Detail: "removed"})
	}
}

// diffKeys lists the settings that differ between a and b (values of the
// same type), as "key old → new" joined by ", ", keys in the configuration's
// spelling under prefix; "" when they are equal.
func diffKeys(prefix string, a, b any) string {
	var out []string
	diffValues(prefix, reflect.ValueOf(a), reflect.ValueOf(b), &out)
	return strings.Join(out, ", ")
}

func diffValues(key string, a, b reflect.Value, out *[]string) {
	switch {
	case a.Kind() == reflect.Struct && !a.Type().Implements(stringer):
		// A struct that writes itself (a rate: 100/s) is one setting.
		for i := range a.NumField() {
			if !a.Type().Field(i).IsExported() {
				continue
			}
			diffValues(joinKey(key, snake(a.Type().Field(i).Name)), a.Field(i), b.Field(i), out)
		}
	case a.Kind() == reflect.Pointer && !a.IsNil() && !b.IsNil():
		diffValues(key, a.Elem(), b.Elem(), out)
	case !reflect.DeepEqual(a.Interface(), b.Interface()):
		*out = append(*out, fmt.Sprintf("%s %s → %s", key, show(a), show(b)))
	}
}

var stringer = reflect.TypeFor[fmt.Stringer]()

func show(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "none"
		}
		return fmt.Sprintf("%+v", v.Elem().Interface())
	}
	return fmt.Sprint(v.Interface())
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func joinDiffs(ds ...string) string {
	return strings.Join(slices.DeleteFunc(ds, func(s string) bool { return s == "" }), ", ")
}

// snake turns a Go field name into the configuration's spelling:
// FailureRate → failure_rate.
func snake(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			// An acronym is one word: CAFile is ca_file.
			if i > 0 && (unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
