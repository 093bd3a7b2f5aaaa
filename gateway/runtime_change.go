package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/pool"
)

// Actor is who made a runtime change and through which call: the admin
// token's name and the API call, as its override and audit line record.
type Actor struct {
	Who  string `json:"who"`
	Call string `json:"call"`
}

// Override is a runtime change in force: what the running configuration
// has that the file does not.
type Override struct {
	Actor
	At       time.Time `json:"at"`
	Upstream string    `json:"upstream,omitempty"`
	Route    string    `json:"route,omitempty"`
	// What is the change asked, as the body of the call.
	What json.RawMessage `json:"what"`
	// Before and After are the settings it changed, by key in the file's
	// spelling ("bulkhead.max_concurrent"), or the breaker's state.
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	// redo makes the change again on top of a configuration; undo, when
	// set, takes back what the configuration does not hold (an
	// ejection), for ClearOverrides.
	redo func(*config.Config) (*config.Config, error)
	undo func()
	// routeOff is, for a route's switch, whether it turned it off.
	routeOff *bool
}

// OverridesKept is what a reload did with the runtime overrides: kept
// (applied again on top of the new file) or dropped, with why.
type OverridesKept struct {
	Kept    []Override        `json:"kept"`
	Dropped []DroppedOverride `json:"dropped"`
}

// DroppedOverride is an override that a reload could not apply again.
type DroppedOverride struct {
	Override
	Reason string `json:"reason"`
}

// RefusedError is a runtime change refused, the running gateway
// unchanged: Field is the key refused, spelled as in the file below the
// upstream ("breaker.failure_rate"); "" when the refusal names no key.
type RefusedError struct {
	Field, Message string
}

func (e *RefusedError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// ErrUnknown is the error, wrapped, of a change naming no upstream or
// route of the running configuration.
var ErrUnknown = errors.New("unknown")

// overrides are the runtime changes in force. file and the list change
// under Gateway.mu; list is read without it.
type overrides struct {
	// file is the configuration the overrides apply on, nil when there
	// is none (the configuration in use is the file's).
	file *config.Config
	list atomic.Pointer[[]Override]
}

// Overrides returns the runtime changes in force, oldest first.
func (g *Gateway) Overrides() []Override {
	if l := g.overrides.list.Load(); l != nil {
		return slices.Clone(*l)
	}
	return []Override{}
}

// onto applies the overrides again on top of cfg, keeping those that
// still apply.
func (o *overrides) onto(cfg *config.Config) (*config.Config, []Override, []DroppedOverride) {
	kept, dropped := []Override{}, []DroppedOverride{}
	if l := o.list.Load(); l != nil {
		for _, ov := range *l {
			next, err := ov.redo(cfg)
			if err == nil {
				_, err = Check(next)
			}
			if err != nil {
				dropped = append(dropped, DroppedOverride{Override: ov, Reason: err.Error()})
				continue
			}
			cfg = next
			kept = append(kept, ov)
		}
	}
	return cfg, kept, dropped
}

// reset records file as the configuration the overrides kept apply on.
func (o *overrides) reset(file *config.Config, kept []Override) {
	o.file = nil
	if len(kept) > 0 {
		o.file = file
	}
	if kept == nil {
		kept = []Override{}
	}
	o.list.Store(&kept)
}

// change makes one runtime change: redo applied to the configuration in
// use, checked as the file is (Check), and applied in place (apply), all
// under g.mu; then done, if any, runs, still under g.mu. It records the
// override and writes the audit line; the override's Before and After
// are the settings that differ, unless done set them.
func (g *Gateway) change(ov Override, redo func(*config.Config) (*config.Config, error), done func(*Override)) (Changes, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return Changes{}, errors.New("gateway: closed")
	}
	cur := g.table.Load().cfg
	next, err := redo(cur)
	if err == nil {
		_, err = Check(next)
	}
	if err != nil {
		return Changes{}, refused(err, ov.Upstream)
	}
	cs, err := g.apply(next, routesOff(g.Overrides()))
	if err != nil {
		return Changes{}, err
	}
	if done != nil {
		done(&ov)
	}
	if ov.After == nil && ov.Upstream != "" {
		ov.Before, ov.After = diffViews(policiesView(cur.Upstreams[ov.Upstream]), policiesView(next.Upstreams[ov.Upstream]))
	}
	ov.At, ov.redo = time.Now().UTC(), redo
	if g.overrides.file == nil {
		g.overrides.file = cur
	}
	l := append(g.Overrides(), ov)
	g.overrides.list.Store(&l)
	g.opts.Logger.Info("gateway: runtime change", "who", ov.Who, "call", ov.Call, "upstream", ov.Upstream, "route", ov.Route,
		"what", string(ov.What), "before", ov.Before, "after", ov.After)
	g.events.Publish(EventOverride, ov)
	return cs, nil
}

// refused turns the error of a checked change into a RefusedError naming
// the key, below the upstream up.
func refused(err error, up string) error {
	var re *RefusedError
	if errors.Is(err, ErrUnknown) || errors.As(err, &re) {
		return err
	}
	var es config.Errors
	if errors.As(err, &es) && len(es) > 0 {
		field := strings.TrimPrefix(strings.TrimPrefix(es[0].Path, "$.upstreams."+up), ".")
		return &RefusedError{Field: field, Message: es[0].Msg}
	}
	return &RefusedError{Message: err.Error()}
}

// ClearOverrides drops every runtime override and applies the file's
// configuration again.
func (g *Gateway) ClearOverrides(a Actor) (Changes, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return Changes{}, errors.New("gateway: closed")
	}
	if g.overrides.file == nil {
		return Changes{Applied: []Change{}, Resets: []Change{}}, nil
	}
	cs, err := g.apply(g.overrides.file, nil)
	if err != nil {
		return Changes{}, err
	}
	ovs := g.Overrides()
	for _, ov := range ovs {
		if ov.undo != nil {
			ov.undo()
		}
	}
	n := len(ovs)
	g.overrides.reset(nil, nil)
	g.opts.Logger.Info("gateway: runtime overrides cleared", "who", a.Who, "call", a.Call, "cleared", n)
	g.events.Publish(EventOverridesCleared, OverridesCleared{Actor: a, Cleared: n})
	return cs, nil
}

// PatchUpstream overlays patch, keys of an upstream as the file writes
// them (see config.Config.PatchUpstream), on the upstream named name, in
// place and keeping state (see Apply), and records it as an override. A
// patch refused is a *RefusedError; an unknown upstream wraps ErrUnknown.
func (g *Gateway) PatchUpstream(a Actor, name string, patch []byte) (UpstreamView, error) {
	redo := func(c *config.Config) (*config.Config, error) {
		if c.Upstreams[name] == nil {
			return nil, fmt.Errorf("upstream %q: %w", name, ErrUnknown)
		}
		return c.PatchUpstream(name, patch)
	}
	if _, err := g.change(Override{Actor: a, Upstream: name, What: patch}, redo, nil); err != nil {
		return UpstreamView{}, err
	}
	v, _ := g.Upstream(name)
	return v, nil
}

// BreakerStates are the states SetBreaker accepts.
var BreakerStates = []string{"forced_open", "closed", "disabled", "metrics_only", "auto"}

// SetBreaker moves the breaker of the upstream named name: forced_open,
// disabled and metrics_only are its manual modes, held until changed
// (breaker.mode); auto returns it to automatic operation; closed does so
// and closes it now, with an empty window. The mode is an override; the
// closing is done once.
func (g *Gateway) SetBreaker(a Actor, name, state string) (UpstreamView, error) {
	if !slices.Contains(BreakerStates, state) {
		return UpstreamView{}, &RefusedError{Field: "state", Message: fmt.Sprintf("%q is not one of %s", state, strings.Join(BreakerStates, ", "))}
	}
	mode := state
	if state == "auto" {
		mode = "closed"
	}
	what, _ := json.Marshal(map[string]string{"state": state})
	redo := func(c *config.Config) (*config.Config, error) {
		if c.Upstreams[name] == nil {
			return nil, fmt.Errorf("upstream %q: %w", name, ErrUnknown)
		}
		return c.PatchUpstream(name, fmt.Appendf(nil, `{"breaker":{"mode":%q}}`, mode))
	}
	var before string
	if up := g.table.Load().upstreams[name]; up != nil {
		before = up.breaker.State().String()
	}
	_, err := g.change(Override{Actor: a, Upstream: name, What: what}, redo, func(ov *Override) {
		br := g.table.Load().upstreams[name].breaker
		if state == "closed" {
			_ = br.TransitionTo(breaker.Closed)
		}
		ov.Before = map[string]any{"breaker.state": before}
		ov.After = map[string]any{"breaker.state": br.State().String()}
	})
	if err != nil {
		return UpstreamView{}, err
	}
	v, _ := g.Upstream(name)
	return v, nil
}

// diffViews returns the settings that differ between a and b, by key.
func diffViews(a, b PoliciesView) (before, after map[string]any) {
	fa, fb := flatten(a), flatten(b)
	before, after = map[string]any{}, map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(fb)) {
		if fmt.Sprint(fa[k]) != fmt.Sprint(fb[k]) {
			before[k], after[k] = fa[k], fb[k]
		}
	}
	for k, v := range fa {
		if _, ok := fb[k]; !ok {
			before[k], after[k] = v, nil
		}
	}
	return before, after
}

// flatten returns v's JSON leaves by dotted key.
func flatten(v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	out := map[string]any{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok {
			for k, sub := range m {
				walk(joinKey(prefix, k), sub)
			}
			return
		}
		out[prefix] = v
	}
	walk("", m)
	return out
}

// SetInstance ejects (action "eject") the instance configured as url of
// the upstream named name, until restored whatever the outlier logic finds
// (pool.Pool.Eject), or restores it ("restore"). The ejection is an
// override: a reload keeps it while the instance stays, ClearOverrides
// restores the instance.
func (g *Gateway) SetInstance(a Actor, name, url, action string) (UpstreamView, error) {
	if action != "eject" && action != "restore" {
		return UpstreamView{}, &RefusedError{Field: "action", Message: fmt.Sprintf("%q is not eject or restore", action)}
	}
	what, _ := json.Marshal(map[string]string{"url": url, "action": action})
	redo := func(c *config.Config) (*config.Config, error) {
		u := c.Upstreams[name]
		if u == nil {
			return nil, fmt.Errorf("upstream %q: %w", name, ErrUnknown)
		}
		if !slices.Contains(u.Instances, url) {
			return nil, &RefusedError{Field: "url", Message: fmt.Sprintf("upstream %s has no instance %q (instances: %s)", name, url, strings.Join(u.Instances, ", "))}
		}
		return c, nil
	}
	_, err := g.change(Override{Actor: a, Upstream: name, What: what}, redo, func(ov *Override) {
		p := g.table.Load().upstreams[name].pool
		st := p.Status()
		was := st[slices.IndexFunc(st, func(s pool.InstanceStatus) bool { return s.URL == url })]
		if action == "eject" {
			_ = p.Eject(url) // the instance exists: redo checked
			ov.undo = func() {
				if up := g.table.Load().upstreams[name]; up != nil {
					_ = up.pool.Restore(url)
				}
			}
		} else {
			_ = p.Restore(url)
		}
		ov.Before = map[string]any{"ejected": was.Ejected, "manual": was.Manual}
		ov.After = map[string]any{"ejected": action == "eject", "manual": action == "eject"}
	})
	if err != nil {
		return UpstreamView{}, err
	}
	v, _ := g.Upstream(name)
	return v, nil
}

// routesOff returns the routes that the overrides ovs leave disabled.
func routesOff(ovs []Override) map[string]bool {
	off := map[string]bool{}
	for _, ov := range ovs {
		if ov.routeOff != nil {
			off[ov.Route] = *ov.routeOff
		}
	}
	return off
}

// SetRoute turns the optional route named name off (enabled false) or
// back on: while off it answers its default at once, as when its
// upstream's breaker is open (the seed's "disable non-essential
// features"). A route that is not optional has no default to answer and
// is refused. The switch is an override: a reload keeps it while the
// route stays optional.
func (g *Gateway) SetRoute(a Actor, name string, enabled bool) (RouteView, error) {
	what, _ := json.Marshal(map[string]bool{"enabled": enabled})
	redo := func(c *config.Config) (*config.Config, error) {
		i := slices.IndexFunc(c.Routes, func(r *config.Route) bool { return r.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("route %q: %w", name, ErrUnknown)
		}
		if !c.Routes[i].Optional {
			return nil, &RefusedError{Field: "enabled", Message: fmt.Sprintf("route %s is not optional: it has no default answer to give "+
				"while disabled (set optional: true and default: in the file to make it switchable)", name)}
		}
		return c, nil
	}
	off := !enabled
	_, err := g.change(Override{Actor: a, Route: name, What: what, routeOff: &off}, redo, func(ov *Override) {
		r := g.table.Load().byName[name]
		ov.Before = map[string]any{"enabled": !r.off.Load()}
		r.off.Store(off)
		ov.After = map[string]any{"enabled": enabled}
	})
	if err != nil {
		return RouteView{}, err
	}
	rs := g.Routes()
	return rs[slices.IndexFunc(rs, func(r RouteView) bool { return r.Name == name })], nil
}
