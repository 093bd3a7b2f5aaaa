// Package depmap draws a gateway configuration's dependency map — routes,
// the upstreams they proxy to, those upstreams' instances, and each route's
// fallback chain — as Mermaid, Graphviz DOT or JSON, optionally coloured by
// the live state a running gateway reports (`spillway map`). The map is
// drawn from a configuration (Build) or from a running gateway's runtime
// API alone (FromAPI), the same graph either way.
//
// Node identifiers are generated (r1, u2, u2i1, r1f3), never taken from the
// configuration: a name only ever appears inside a label, escaped for the
// format, so no name can break the syntax of the map or inject markup into
// what renders it.
package depmap

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
)

// Node kinds.
const (
	KindRoute      = "route"
	KindUpstream   = "upstream"
	KindInstance   = "instance"
	KindStaleCache = "stale_cache"
	KindStatic     = "static"
	KindDefault    = "default" // an optional route's default answer
)

// Edge kinds: a route's upstream (solid), an upstream's instance (solid),
// a fallback step (dashed).
const (
	EdgeUpstream = "upstream"
	EdgeInstance = "instance"
	EdgeFallback = "fallback"
)

// Node is one box of the map.
type Node struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Name is the route's or upstream's name, the instance's URL, or a
	// short description of a fallback leaf ("stale cache", "static 200").
	Name     string `json:"name"`
	Async    bool   `json:"async,omitempty"`    // a route that queues its requests
	Optional bool   `json:"optional,omitempty"` // a route that answers its default while failing
	// State is the live state, set by Colour: an upstream's breaker state,
	// an instance's healthy, unhealthy or ejected.
	State string `json:"state,omitempty"`
}

// Edge joins two nodes by ID.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Kind string `json:"kind"`
	// Step is a fallback's position in its route's chain, from 1.
	Step int `json:"step,omitempty"`
}

// Graph is the dependency map: routes in the order they match, upstreams
// by name, each followed by its instances.
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// The map is drawn from routeSpecs and upstreamSpecs, made either from a
// configuration (Build) or from a running gateway's runtime API
// (FromAPI), so that both give the same graph.
type routeSpec struct {
	name, upstream  string
	async, optional bool
	steps           []step // the fallback chain, then an optional route's default
}

// step is a fallback: to an upstream, or to a leaf of kind with label.
type step struct {
	upstream, kind, label string
}

type upstreamSpec struct {
	state     string // the breaker's, when known
	instances []instanceSpec
}

type instanceSpec struct {
	url, state string
}

// Build returns the map of cfg, a configuration loaded and checked.
func Build(cfg *config.Config) *Graph {
	ups := make(map[string]upstreamSpec, len(cfg.Upstreams))
	for name, u := range cfg.Upstreams {
		var s upstreamSpec
		for _, url := range u.Instances {
			s.instances = append(s.instances, instanceSpec{url: url})
		}
		ups[name] = s
	}
	routes := make([]routeSpec, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		rs := routeSpec{name: r.Name, upstream: r.Upstream, async: r.Async != nil, optional: r.Optional}
		for _, f := range r.Fallback {
			switch {
			case f.Upstream != "":
				rs.steps = append(rs.steps, step{upstream: f.Upstream})
			case f.StaleCache != nil:
				rs.steps = append(rs.steps, step{kind: KindStaleCache, label: "stale cache"})
			case f.Static != nil:
				rs.steps = append(rs.steps, step{kind: KindStatic, label: fmt.Sprintf("static %d", f.Static.Status)})
			}
		}
		if r.Optional && r.Default != nil {
			rs.steps = append(rs.steps, step{kind: KindDefault, label: fmt.Sprintf("default %d", r.Default.Status)})
		}
		routes = append(routes, rs)
	}
	return build(routes, ups)
}

// FromAPI returns the map of a running gateway from its runtime API's
// answers (GET /api/v1/upstreams and GET /api/v1/routes), coloured by the
// live state they report. The API does not give a static answer's or an
// optional route's default's status, so those leaves read "static" and
// "default".
func FromAPI(upstreams []gateway.UpstreamView, routes []gateway.RouteView) *Graph {
	ups := make(map[string]upstreamSpec, len(upstreams))
	for _, u := range upstreams {
		s := upstreamSpec{state: u.Live.Breaker.State}
		for _, in := range u.Instances {
			s.instances = append(s.instances, instanceSpec{url: in.URL, state: instanceState(in.Healthy, in.Ejected)})
		}
		ups[u.Name] = s
	}
	specs := make([]routeSpec, 0, len(routes))
	for _, r := range routes {
		rs := routeSpec{name: r.Name, upstream: r.Upstream, async: r.Async, optional: r.Optional}
		for _, f := range r.Fallback {
			switch name, ok := strings.CutPrefix(f, "upstream:"); {
			case ok:
				rs.steps = append(rs.steps, step{upstream: name})
			case f == "stale_cache":
				rs.steps = append(rs.steps, step{kind: KindStaleCache, label: "stale cache"})
			default:
				rs.steps = append(rs.steps, step{kind: KindStatic, label: f})
			}
		}
		if r.Optional {
			rs.steps = append(rs.steps, step{kind: KindDefault, label: "default"})
		}
		specs = append(specs, rs)
	}
	return build(specs, ups)
}

// build draws routes, in match order, and upstreams, by name.
func build(routes []routeSpec, ups map[string]upstreamSpec) *Graph {
	names := slices.Sorted(maps.Keys(ups))
	upstreamID := make(map[string]string, len(names))
	for i, name := range names {
		upstreamID[name] = fmt.Sprintf("u%d", i+1)
	}
	// Routes first: the map reads left to right from what clients call.
	g := &Graph{}
	for i, r := range routes {
		g.route(fmt.Sprintf("r%d", i+1), r, upstreamID)
	}
	for _, name := range names {
		id, u := upstreamID[name], ups[name]
		g.Nodes = append(g.Nodes, Node{ID: id, Kind: KindUpstream, Name: name, State: u.state})
		for j, in := range u.instances {
			iid := fmt.Sprintf("%si%d", id, j+1)
			g.Nodes = append(g.Nodes, Node{ID: iid, Kind: KindInstance, Name: in.url, State: in.state})
			g.Edges = append(g.Edges, Edge{From: id, To: iid, Kind: EdgeInstance})
		}
	}
	return g
}

// route adds r as node id, its edge to its upstream, and its fallback chain
// with a leaf node for each step that is not an upstream.
func (g *Graph) route(id string, r routeSpec, upstreamID map[string]string) {
	g.Nodes = append(g.Nodes, Node{ID: id, Kind: KindRoute, Name: r.name, Async: r.async, Optional: r.optional})
	if u, ok := upstreamID[r.upstream]; ok {
		g.Edges = append(g.Edges, Edge{From: id, To: u, Kind: EdgeUpstream})
	}
	for j, s := range r.steps {
		if s.upstream != "" {
			if u, ok := upstreamID[s.upstream]; ok {
				g.Edges = append(g.Edges, Edge{From: id, To: u, Kind: EdgeFallback, Step: j + 1})
			}
			continue
		}
		leafID := fmt.Sprintf("%sf%d", id, j+1)
		g.Nodes = append(g.Nodes, Node{ID: leafID, Kind: s.kind, Name: s.label})
		g.Edges = append(g.Edges, Edge{From: id, To: leafID, Kind: EdgeFallback, Step: j + 1})
	}
}

// Colour sets the State of every upstream and instance that st reports:
// the breaker's state for an upstream, healthy, unhealthy or ejected for an
// instance (matched by URL). What st does not name keeps no state.
func (g *Graph) Colour(st gateway.Status) {
	byName := make(map[string]string)
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.Kind == KindUpstream {
			byName[n.ID] = n.Name
			if u, ok := st.Upstreams[n.Name]; ok {
				n.State = u.Breaker.State
			}
		}
	}
	owner := make(map[string]string) // instance ID → upstream name
	for _, e := range g.Edges {
		if e.Kind == EdgeInstance {
			owner[e.To] = byName[e.From]
		}
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.Kind != KindInstance {
			continue
		}
		for _, in := range st.Upstreams[owner[n.ID]].Instances {
			if in.URL == n.Name {
				n.State = instanceState(in.Healthy, in.Ejected)
			}
		}
	}
}

func instanceState(healthy, ejected bool) string {
	switch {
	case ejected:
		return "ejected"
	case !healthy:
		return "unhealthy"
	}
	return "healthy"
}

// health sorts a state into the three colours of the map.
func health(state string) string {
	switch state {
	case "closed", "healthy":
		return "ok"
	case "half_open", "metrics_only", "disabled":
		return "degraded"
	case "open", "forced_open", "unhealthy", "ejected":
		return "down"
	}
	return ""
}

// fills are the colours of health's classes, shared by Mermaid and DOT.
var fills = map[string]string{"ok": "#c8e6c9", "degraded": "#fff3c4", "down": "#ffcdd2"}
