package gateway

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway/config"
)

// route is a configured route resolved against the table's upstreams.
type route struct {
	cfg *config.Route
	up  *upstream // nil for an async-only route
	// totalKey names the Transport downstream of the route's total limit.
	totalKey string
	total    time.Duration
	chain    []step
	cache    *staleCache // the stale_cache step's cache, if any
	// hasReplica is set when the chain has an upstream step: request bodies
	// are then buffered so that the replica can be sent the same body.
	hasReplica bool
	metrics    routeMetrics
	// off is set while an optional route is disabled at run time
	// (Gateway.SetRoute): it answers its default.
	off atomic.Bool
	// faults are the faults its attempts draw (fault.go), nil when none:
	// the file's, and the runtime ones, replaced when they change.
	faults atomic.Pointer[faultSet]
	// limit is the route's rate limit (ratelimit.go), nil when none.
	limit *routeLimit
}

// step is one step of a fallback chain: exactly one field is set.
type step struct {
	replica *upstream
	cache   *staleCache
	static  *config.Static
}

// match returns the first route of t whose conditions r satisfies, nil
// when none does: the first declared, found through t's index.
func (t *table) match(r *http.Request) *route {
	return t.index.match(r)
}

// matches reports whether r satisfies every condition of m.
func matches(m *config.Match, r *http.Request) bool {
	if m.Host != "" && !strings.EqualFold(m.Host, hostOnly(r.Host)) {
		return false
	}
	if m.Path != "" && r.URL.Path != m.Path {
		return false
	}
	if m.PathPrefix != "" && !hasPathPrefix(r.URL.Path, m.PathPrefix) {
		return false
	}
	if len(m.Methods) > 0 && !slices.Contains(m.Methods, r.Method) {
		return false
	}
	for name, want := range m.Headers {
		if r.Header.Get(name) != want {
			return false
		}
	}
	return true
}

// hostOnly drops the port of a Host header (IPv6 literals keep no brackets).
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// hasPathPrefix is a segment-aware prefix test: /catalog matches /catalog
// and /catalog/x, never /catalogue. A prefix ending in / matches as a plain
// prefix.
func hasPathPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// stripPrefix removes prefix from p (a path that hasPathPrefix accepted),
// keeping it absolute.
func stripPrefix(p, prefix string) string {
	rest := strings.TrimPrefix(p, strings.TrimSuffix(prefix, "/"))
	if rest == "" || rest[0] != '/' {
		rest = "/" + rest
	}
	return rest
}

// hasDotSegment reports whether a path has a "." or ".." segment, which
// could make an upstream resolve it outside the route's prefix.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
