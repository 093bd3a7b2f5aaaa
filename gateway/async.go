package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/async"
)

// The async routes live in package async. The gateway constructs it
// (async.New) and knows it through jobs on the request path and
// *async.Routes for its life cycle (Sync, Ready, Close, status and
// metrics); package async knows the gateway only through
// async.Upstreams, which deliveries implements.

// jobs is what the gateway's request path knows of async handling
// (*async.Routes): store a request of an async route as a job, and answer
// a job's status.
type jobs interface {
	Accept(w http.ResponseWriter, r *http.Request, rc *config.Route, maxBody int64) async.Answer
	JobStatus(w http.ResponseWriter, r *http.Request) async.Answer
}

// StoreStatus, StreamStatus and ReplicaStatus are the state of the queue's
// store in Status (see package async).
type (
	StoreStatus   = async.StoreStatus
	StreamStatus  = async.StreamStatus
	ReplicaStatus = async.ReplicaStatus
	// QueueStatus is an async route's queue in Status.
	QueueStatus = async.QueueStatus
)

// defaultWorkerGrace is Options.WorkerGrace's default.
const defaultWorkerGrace = 5 * time.Second

// answered records an async answer on x, for the access log and metrics.
func answered(x *exchange, a async.Answer) {
	x.reason = a.Reason
	switch a.Outcome {
	case async.Accepted:
		x.outcome = outcomeAccepted
	case async.Answered:
		x.outcome = outcomeSuccess
	case async.Canceled:
		x.outcome = outcomeCanceled
	default:
		x.outcome = outcomeError
	}
}

// checkQueue refuses cfg's async routes and shared rate limits when the
// gateway has no queue.
func (g *Gateway) checkQueue(cfg *config.Config) error {
	if g.opts.Queue != nil || g.opts.check {
		return nil
	}
	for _, r := range cfg.Routes {
		if r.Async != nil {
			return fmt.Errorf("gateway: route %q is async but the gateway has no queue (Options.Queue; spillway serve opens one when the file has an async route or a shared rate limit at start)", r.Name)
		}
		if r.RateLimit != nil && r.RateLimit.Shared {
			return fmt.Errorf("gateway: route %q: rate_limit.shared needs the queue's NATS cluster but the gateway has no queue (Options.Queue; spillway serve opens one when the file has an async route or a shared rate limit at start)", r.Name)
		}
	}
	return nil
}

// deliveries is the gateway as package async sees it (async.Upstreams).
type deliveries struct{ g *Gateway }

// Deliver sends a job's request along its async route, as ServeHTTP
// proxies a request (forwardJob), through the upstream's delivery
// transport: its breaker, bulkhead, time limits and pool, no retry policy.
func (d deliveries) Deliver(ctx context.Context, name string, req *http.Request) (*http.Response, error) {
	rt := d.g.table.Load().byName[name]
	if rt == nil || rt.cfg.Async == nil || rt.up == nil {
		return nil, async.ErrNoRoute
	}
	forwardJob(req, rt)
	// The exchange is the request's context (it answers exchangeOf).
	x := &exchange{ctx: ctx, route: rt, up: rt.up, totalKey: rt.totalKey}
	req = req.WithContext(x)
	x.in = req
	return rt.up.delivery.RoundTrip(req)
}

// Breaker returns the state of the breaker of route name's upstream.
func (d deliveries) Breaker(name string) (breaker.Snapshot, bool) {
	rt := d.g.table.Load().byName[name]
	if rt == nil || rt.up == nil {
		return breaker.Snapshot{}, false
	}
	return rt.up.breaker.Snapshot(), true
}

// forwardJob rewrites a job's request, as its client sent it, for rt's
// upstream as rewrite does a proxied one: strip_prefix, the headers only
// a proxy may set (untrustedHeader) removed, X-Forwarded-* and X-Real-IP
// from the client's address, host and scheme, the upstream's host (the
// picker sets the instance's).
func forwardJob(req *http.Request, rt *route) {
	u, h := req.URL, req.Header
	scheme := u.Scheme
	u.Scheme, u.Host = "http", rt.up.name
	applyStripPrefix(u, rt.cfg)
	stripUntrusted(h)
	if ip, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		h.Set("X-Forwarded-For", ip)
		setRealIP(h)
	}
	if req.Host != "" {
		h.Set("X-Forwarded-Host", req.Host)
	}
	if scheme != "" {
		h.Set("X-Forwarded-Proto", scheme)
	}
	req.Host, req.RemoteAddr = "", ""
}

var (
	_ async.Upstreams = deliveries{}
	_ jobs            = (*async.Routes)(nil)
)
