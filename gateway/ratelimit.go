package gateway

import (
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/ratelimit"
)

// keyLimiter is what a route's rate limit asks for each request: may this
// key go now, and if not, in how long. *ratelimit.Keyed is the local one; a
// limit shared between the gateway's replicas (rate_limit.shared:) plugs in
// here with the same method.
type keyLimiter interface {
	AllowKey(key string) (ok bool, retryAfter time.Duration)
}

// routeLimit is a route's rate limit (rate_limit:): its buckets and how a
// request's key is read. A reload that keeps the key and max_keys keeps the
// routeLimit, its buckets updated in place.
type routeLimit struct {
	// cfg is the configuration in effect, for the runtime API; a reload
	// replaces it.
	cfg atomic.Pointer[config.RateLimit]
	// local holds the buckets of this process; limiter is what requests
	// ask (local itself until a shared limit wraps it).
	local   *ratelimit.Keyed
	limiter keyLimiter
	// header is the key's header (canonical), byIP keys by the client's
	// address; neither: one bucket for the route.
	header   string
	byIP     bool
	rejected atomic.Uint64
}

// newRouteLimit builds the rate limit of route rc.
func newRouteLimit(rc *config.Route) (*routeLimit, error) {
	rl := rc.RateLimit
	kc := rl.LimitConfig()
	kc.Name = rc.Name
	local, err := ratelimit.NewKeyed(kc)
	if err != nil {
		return nil, err
	}
	// A limit shared between replicas (rate_limit.shared:) wraps local
	// here, as limiter, falling back to it when the shared store is gone.
	l := &routeLimit{local: local, limiter: local, byIP: rl.Key == config.RateLimitClientIP}
	l.header, _ = rl.Header()
	l.cfg.Store(rl)
	return l, nil
}

// key returns the bucket r takes from: the client's address (the TCP
// peer's, never a header a client can write), the header's value ("" for
// the requests without it, which share one bucket), or "" for the route.
func (l *routeLimit) key(r *http.Request) string {
	switch {
	case l.byIP:
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			return host
		}
		return r.RemoteAddr
	case l.header != "":
		if v := r.Header[l.header]; len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// throttle answers r 429 throttled (gRPC: RESOURCE_EXHAUSTED) when its key
// is over the route's rate limit, and reports whether it did. It runs before
// anything else is done for the request: an async request refused here is
// never stored.
func (g *Gateway) throttle(w http.ResponseWriter, x *exchange, r *http.Request) bool {
	l := x.route.limit
	ok, wait := l.limiter.AllowKey(l.key(r))
	if ok {
		return false
	}
	l.rejected.Add(1)
	name := x.route.cfg.Name
	// spillway_rejected_total{upstream=the route's, reason="throttled"},
	// the sampled event and the request's span.
	x.up.metrics.Observe(spillway.Event{Kind: spillway.EventRejection, Context: x, Policy: "ratelimit", Name: name,
		Reason: spillway.ReasonThrottled})
	// The wait differs per refusal; this allocation is the refusal's only
	// one beyond the error answer's own.
	g.failed(w, x, &spillway.Error{Code: spillway.ReasonThrottled, Policy: "ratelimit", Name: name, Err: ratelimit.ErrLimited,
		RetryAfter: wait})
	return true
}

// applyRouteLimit returns the rate limit of route rc (index i of the
// file), nil when it has none: prev's (the running route's) when the key
// and max_keys are unchanged, its rate and burst changed in place when p
// commits, or a new one.
func applyRouteLimit(rc *config.Route, i int, prev *route, p *plan) (*routeLimit, error) {
	var was *routeLimit
	if prev != nil {
		was = prev.limit
	}
	rl := rc.RateLimit
	if rl == nil {
		return nil, nil
	}
	if was != nil {
		old := was.cfg.Load()
		switch {
		case reflect.DeepEqual(old, rl):
			return was, nil
		case old.Key == rl.Key && old.MaxKeys == rl.MaxKeys:
			// The buckets' shape is unchanged (a shared limit's settings
			// belong to this condition too): the rate changes in place.
			kc := rl.LimitConfig()
			p.commit(func() {
				// Checked by validate: the update cannot fail.
				_ = was.local.Update(func(c *ratelimit.Config) { c.Limit, c.Per, c.Burst = kc.Limit, kc.Per, kc.Burst })
				was.cfg.Store(rl)
			})
			p.applied(Change{Route: rc.Name, Part: "rate_limit", Detail: fmt.Sprintf("%s: applied in place, each key keeping its tokens",
				diffKeys("", *old, *rl))})
			return was, nil
		}
	}
	l, err := newRouteLimit(rc)
	if err != nil {
		return nil, &placedError{path: fmt.Sprintf("$.routes[%d].rate_limit", i), err: fmt.Errorf("gateway: route %q: rate_limit: %w", rc.Name, err)}
	}
	if was != nil {
		p.reset(Change{Route: rc.Name, Part: "rate_limit", Detail: diffKeys("", *was.cfg.Load(), *rl) + ": new buckets, every key's full"})
	}
	return l, nil
}

// RateLimitView is a route's rate limit in the runtime API: its settings
// as in the file and its live figures.
type RateLimitView struct {
	Rate    string `json:"rate"`
	Burst   int    `json:"burst"`
	Key     string `json:"key"`
	MaxKeys int    `json:"max_keys"`
	// TrackedKeys is the number of keys (clients) whose bucket this
	// process holds now; Rejected the requests refused since the limit was
	// made (a reload that keeps it keeps the count).
	TrackedKeys int    `json:"tracked_keys"`
	Rejected    uint64 `json:"rejected"`
}

// view returns l as the runtime API shows it.
func (l *routeLimit) view() *RateLimitView {
	c := l.cfg.Load()
	return &RateLimitView{Rate: c.Rate.String(), Burst: c.Burst, Key: c.Key, MaxKeys: c.MaxKeys,
		TrackedKeys: l.local.Len(), Rejected: l.rejected.Load()}
}
