// Package depmap draws a gateway configuration's dependency map — routes,
// the upstreams they proxy to, those upstreams' instances, and each route's
// fallback chain — as Mermaid, Graphviz DOT or JSON, optionally coloured by
// the live state a running gateway reports (`spillway map`).
//
// Node identifiers are generated (r1, u2, u2i1, r1f3), never taken from the
// configuration: a name only ever appears inside a label, escaped for the
// format, so no name can break the syntax of the map or inject markup into
// what renders it.
package depmap

import (
	"fmt"
	"slices"

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

// Build returns the map of cfg, a configuration loaded and checked.
func Build(cfg *config.Config) *Graph {
	names := make([]string, 0, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		names = append(names, name)
	}
	slices.Sort(names)
	upstreamID := make(map[string]string, len(names))
	for i, name := range names {
		upstreamID[name] = fmt.Sprintf("u%d", i+1)
	}
	// Routes first: the map reads left to right from what clients call.
	g := &Graph{}
	for i, r := range cfg.Routes {
		g.route(fmt.Sprintf("r%d", i+1), r, upstreamID)
	}
	for _, name := range names {
		id := upstreamID[name]
		g.Nodes = append(g.Nodes, Node{ID: id, Kind: KindUpstream, Name: name})
		for j, url := range cfg.Upstreams[name].Instances {
			iid := fmt.Sprintf("%si%d", id, j+1)
			g.Nodes = append(g.Nodes, Node{ID: iid, Kind: KindInstance, Name: url})
			g.Edges = append(g.Edges, Edge{From: id, To: iid, Kind: EdgeInstance})
		}
	}
	return g
}

// route adds r as node id, its edge to its upstream, and its fallback chain
// with a leaf node for each step that is not an upstream.
func (g *Graph) route(id string, r *config.Route, upstreamID map[string]string) {
	g.Nodes = append(g.Nodes, Node{ID: id, Kind: KindRoute, Name: r.Name, Async: r.Async != nil, Optional: r.Optional})
	if u, ok := upstreamID[r.Upstream]; ok {
		g.Edges = append(g.Edges, Edge{From: id, To: u, Kind: EdgeUpstream})
	}
	leaf := func(step int, kind, name string) {
		leafID := fmt.Sprintf("%sf%d", id, step)
		g.Nodes = append(g.Nodes, Node{ID: leafID, Kind: kind, Name: name})
		g.Edges = append(g.Edges, Edge{From: id, To: leafID, Kind: EdgeFallback, Step: step})
	}
	for j, f := range r.Fallback {
		switch {
		case f.Upstream != "":
			g.Edges = append(g.Edges, Edge{From: id, To: upstreamID[f.Upstream], Kind: EdgeFallback, Step: j + 1})
		case f.StaleCache != nil:
			leaf(j+1, KindStaleCache, "stale cache")
		case f.Static != nil:
			leaf(j+1, KindStatic, fmt.Sprintf("static %d", f.Static.Status))
		}
	}
	if r.Optional && r.Default != nil {
		leaf(len(r.Fallback)+1, KindDefault, fmt.Sprintf("default %d", r.Default.Status))
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
