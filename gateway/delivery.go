package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/queue"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// Headers of a delivered job.
const (
	JobIDHeader          = "Spillway-Job-Id"
	AttemptHeader        = "Spillway-Attempt"
	IdempotencyKeyHeader = "Idempotency-Key"
)

// The values of the label result of spillway_queue_deliveries_total: the
// outcome of one delivery attempt, "dead" for a failed attempt that
// exhausted max_attempts (rejected jobs are dead-lettered at once and
// counted as rejected).
const (
	deliveryDelivered = "delivered"
	deliveryFailed    = "failed"
	deliveryRejected  = "rejected"
	deliveryDead      = "dead"
	deliveryPaused    = "paused"
)

var deliveryResults = []string{deliveryDelivered, deliveryFailed, deliveryRejected, deliveryDead, deliveryPaused}

// maxDrain is how much of a delivery's response body is read before the
// body is closed: enough to reuse the connection after a short answer.
const maxDrain = 64 << 10

// defaultWorkerGrace is Options.WorkerGrace's default.
const defaultWorkerGrace = 5 * time.Second

// reasonReloading: the route of a job is being replaced; its delivery
// waits for the new table.
const reasonReloading = "route_reloading"

// asyncWorker is the queue worker of one async route.
type asyncWorker struct {
	policy queue.Policy
	w      *queue.Worker
}

// policyOf maps a route's async settings to the queue's policy.
func policyOf(a *config.Async) queue.Policy {
	mult := a.Backoff.Multiplier
	if a.Backoff.Type == "constant" {
		mult = 1
	}
	return queue.Policy{
		MaxAttempts: a.MaxAttempts,
		Backoff:     queue.Backoff{Initial: a.Backoff.Initial, Max: a.Backoff.Max, Multiplier: mult, Jitter: a.Backoff.Jitter},
		Retention:   a.Retention, Concurrency: a.Concurrency, Ordered: a.Ordered,
	}
}

// checkQueue refuses a table with async routes when the gateway has no queue.
func (g *Gateway) checkQueue(t *table) error {
	if g.opts.Queue != nil || g.opts.check {
		return nil
	}
	for _, r := range t.routes {
		if r.cfg.Async != nil {
			return fmt.Errorf("gateway: route %q is async but the gateway has no queue (Options.Queue; spillway serve opens one when the file has an async route at start)", r.cfg.Name)
		}
	}
	return nil
}

// syncWorkers makes the running workers those of t's async routes: a worker
// whose route is gone or whose policy changed is stopped (waiting up to the
// grace for its deliveries in flight), a new route gets one. g.mu is held.
// It returns the routes whose worker could not start; Ready is false while
// there is any.
func (g *Gateway) syncWorkers(t *table) error {
	want := map[string]queue.Policy{}
	for _, r := range t.routes {
		if r.cfg.Async != nil {
			want[r.cfg.Name] = policyOf(r.cfg.Async)
		}
	}
	var stale []*asyncWorker
	for name, w := range g.workers {
		if p, ok := want[name]; !ok || p != w.policy {
			stale = append(stale, w)
			delete(g.workers, name)
		}
	}
	g.stopWorkers(stale)
	var errs []error
	for name, p := range want {
		if _, ok := g.workers[name]; ok {
			continue
		}
		for _, res := range deliveryResults {
			g.metrics.deliveries.WithLabelValues(name, res)
		}
		g.metrics.deadDropped.WithLabelValues(name)
		w, err := g.opts.Queue.Consume(name, p, g.deliverer(name), queue.WorkerOptions{Gate: g.gate(name), OnResult: g.onResult,
			OnDeadLetterDropped: g.onDeadLetterDropped})
		if err != nil {
			errs = append(errs, fmt.Errorf("gateway: route %q: starting its queue worker: %w", name, err))
			continue
		}
		g.workers[name] = &asyncWorker{policy: p, w: w}
	}
	g.workerless.Store(int64(len(want) - len(g.workers)))
	return errors.Join(errs...)
}

// stopWorkers stops ws together, waiting up to the grace in all.
func (g *Gateway) stopWorkers(ws []*asyncWorker) {
	if len(ws) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.opts.WorkerGrace)
	defer cancel()
	done := make(chan struct{}, len(ws))
	for _, w := range ws {
		go func() {
			if err := w.w.Stop(ctx); err != nil {
				g.opts.Logger.Warn("gateway: stopping a queue worker", "error", err)
			}
			done <- struct{}{}
		}()
	}
	for range ws {
		<-done
	}
}

// gate pauses a route's worker while its upstream's breaker is open: the
// rest of the open time up to maxPause (one second for a forced-open
// breaker), so that no
// attempt is burnt while it cannot succeed.
// maxPause bounds a pause of delivery: the gate looks at the breaker again
// at least this often, and a paused job comes back at least this soon.
const maxPause = 5 * time.Second

func (g *Gateway) gate(name string) func() time.Duration {
	return func() time.Duration {
		rt := g.table.Load().byName[name]
		if rt == nil || rt.up == nil {
			return time.Second
		}
		snap := rt.up.breaker.Snapshot()
		switch {
		case snap.RetryAfter > 0:
			return min(snap.RetryAfter, maxPause)
		case snap.State == breaker.ForcedOpen:
			return time.Second
		}
		return 0
	}
}

func (g *Gateway) onResult(name string, r queue.Result, dead bool) {
	res := deliveryFailed
	switch {
	case r.Outcome == queue.Delivered:
		res = deliveryDelivered
	case r.Outcome == queue.Rejected:
		res = deliveryRejected
	case r.Outcome == queue.Paused:
		res = deliveryPaused
	case dead:
		res = deliveryDead
	}
	g.metrics.deliveries.WithLabelValues(name, res).Inc()
}

// onDeadLetterDropped counts a dead letter dropped by one of this
// process's workers. It may be another route's (the oldest of the stream
// go first), even one a reload removed.
func (g *Gateway) onDeadLetterDropped(route, _ string) {
	g.metrics.deadDropped.WithLabelValues(route).Inc()
}

// deliverer is the queue handler of the async route name: it sends each job
// to the route's current upstream (reloads may replace it) through its
// breaker, bulkhead, time limits and instance pool, without its retry
// policy: the queue retries.
func (g *Gateway) deliverer(name string) queue.Handler {
	return func(ctx context.Context, j *queue.Job) queue.Result {
		rt := g.table.Load().byName[name]
		if rt == nil || rt.cfg.Async == nil || rt.up == nil {
			return queue.Result{Outcome: queue.Paused, Reason: reasonReloading, RetryAfter: time.Second}
		}
		sr, err := DecodeStoredRequest(j.Data)
		if err != nil {
			return queue.Result{Outcome: queue.Rejected, Reason: "bad_job"}
		}
		// The exchange is the request's context (it answers exchangeOf).
		x := &exchange{ctx: ctx, route: rt, up: rt.up, totalKey: rt.totalKey}
		req, err := deliveryRequest(x, rt, sr, j)
		if err != nil {
			return queue.Result{Outcome: queue.Rejected, Reason: "bad_job"}
		}
		x.in = req
		resp, err := rt.up.delivery.RoundTrip(req)
		return deliveryResult(ctx, rt.up, resp, err)
	}
}

// deliveryRequest rebuilds the stored request for the route's upstream, as
// the proxy's rewrite does: strip_prefix, the headers only a proxy may set
// (untrustedHeader) removed, X-Forwarded-* and X-Real-IP from the stored
// request, the instance's Host; and the job's headers.
func deliveryRequest(ctx context.Context, rt *route, sr *StoredRequest, j *queue.Job) (*http.Request, error) {
	p, err := url.PathUnescape(sr.Path)
	if err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: "http", Host: rt.up.name, Path: p, RawPath: sr.Path, RawQuery: sr.RawQuery}
	if u.EscapedPath() == u.Path {
		u.RawPath = ""
	}
	applyStripPrefix(u, rt.cfg)
	h := sr.Header
	stripUntrusted(h)
	if h.Get(IdempotencyKeyHeader) == "" {
		h.Set(IdempotencyKeyHeader, j.ID)
	}
	h.Set(JobIDHeader, j.ID)
	h.Set(AttemptHeader, strconv.Itoa(j.Attempt))
	if ip, _, err := net.SplitHostPort(sr.RemoteAddr); err == nil {
		h.Set("X-Forwarded-For", ip)
		setRealIP(h)
	}
	if sr.Host != "" {
		h.Set("X-Forwarded-Host", sr.Host)
	}
	if sr.Scheme != "" {
		h.Set("X-Forwarded-Proto", sr.Scheme)
	}
	body := sr.Body
	req := &http.Request{
		Method: sr.Method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		ContentLength: int64(len(body)), Body: http.NoBody,
	}
	if len(body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return req.WithContext(ctx), nil
}

// deliveryResult maps a delivery attempt to the queue's verdict: 2xx and
// 3xx delivered; 408, 425, 429, 5xx, transport errors and time limits
// failed (retried after the backoff, or the upstream's Retry-After if
// longer); any other 4xx rejected (dead-lettered at once); a local
// rejection (breaker open, bulkhead full, no healthy instance) paused, the
// attempt not counted.
func deliveryResult(ctx context.Context, up *upstream, resp *http.Response, err error) queue.Result {
	if err != nil {
		switch {
		case spillway.IsRejection(err):
			ra, ok := spillway.RetryAfterOf(err)
			if !ok || ra <= 0 {
				ra = time.Second
			}
			// The store keeps the delay, across a restart too: a paused
			// job must not wait out a long open time that a restart or a
			// manual reset ends. While the breaker stays open the gate
			// fetches nothing anyway.
			ra = min(ra, maxPause)
			return queue.Result{Outcome: queue.Paused, Reason: string(spillway.ReasonOf(err)), RetryAfter: ra}
		case ctx.Err() != nil:
			// The worker is stopping: the job is left for redelivery.
			return queue.Result{Outcome: queue.Paused, Reason: string(spillway.ReasonCanceled), RetryAfter: time.Second}
		}
		reason := string(spillway.ReasonOf(err))
		if reason == "" {
			reason = string(spillway.ReasonUpstreamError)
		}
		return queue.Result{Outcome: queue.Failed, Reason: reason}
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	_ = resp.Body.Close()
	s := resp.StatusCode
	switch {
	case s < 400:
		return queue.Result{Outcome: queue.Delivered, Status: s}
	case s == http.StatusRequestTimeout, s == http.StatusTooEarly, s == http.StatusTooManyRequests, s >= 500:
		reason := string(spillway.ReasonUpstreamError)
		if s == http.StatusTooManyRequests {
			reason = string(spillway.ReasonThrottled)
		}
		ra, _ := spillwayhttp.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		if max := up.cfg.Retry.RetryAfterMax; ra > max {
			ra = max
		}
		return queue.Result{Outcome: queue.Failed, Status: s, Reason: reason, RetryAfter: ra}
	}
	return queue.Result{Outcome: queue.Rejected, Status: s, Reason: "upstream_rejected"}
}
