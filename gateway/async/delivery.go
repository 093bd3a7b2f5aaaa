package async

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

// reasonReloading: the route of a job is being replaced; its delivery
// waits for the new table.
const reasonReloading = "route_reloading"

// worker is the queue worker of one async route.
type worker struct {
	policy queue.Policy
	w      *queue.Worker
}

// QueuePolicy maps a route's async settings to the queue's policy of its
// worker.
func QueuePolicy(a *config.Async) queue.Policy {
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

// Sync makes the running workers those of cfg's async routes: a worker
// whose route is gone or whose policy changed is stopped (waiting up to
// the grace for its deliveries in flight), a new route gets one. It
// returns the routes whose worker could not start; Ready is false while
// there is any. The gateway calls it once cfg's table is in use.
func (rs *Routes) Sync(cfg *config.Config) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	want := map[string]queue.Policy{}
	delivered := map[string]time.Duration{}
	for _, r := range cfg.Routes {
		if r.Async != nil {
			want[r.Name] = QueuePolicy(r.Async)
			if u := cfg.Upstreams[r.Upstream]; u != nil {
				delivered[r.Name] = u.Retry.RetryAfterMax
			}
		}
	}
	rs.delivered.Store(&delivered)
	var stale []*worker
	for name, w := range rs.workers {
		if p, ok := want[name]; !ok || p != w.policy {
			stale = append(stale, w)
			delete(rs.workers, name)
		}
	}
	rs.stopWorkers(stale)
	var errs []error
	for name, p := range want {
		if _, ok := rs.workers[name]; ok {
			continue
		}
		for _, res := range deliveryResults {
			rs.opts.Deliveries.WithLabelValues(name, res)
		}
		rs.opts.DeadDropped.WithLabelValues(name)
		w, err := rs.q.Consume(name, p, rs.deliverer(name), queue.WorkerOptions{Gate: rs.gate(name), OnResult: rs.onResult,
			OnDeadLetterDropped: rs.onDeadLetterDropped})
		if err != nil {
			errs = append(errs, fmt.Errorf("gateway: route %q: starting its queue worker: %w", name, err))
			continue
		}
		rs.workers[name] = &worker{policy: p, w: w}
	}
	rs.workerless.Store(int64(len(want) - len(rs.workers)))
	return errors.Join(errs...)
}

// stopWorkers stops ws together, waiting up to the grace in all.
func (rs *Routes) stopWorkers(ws []*worker) {
	if len(ws) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rs.opts.WorkerGrace)
	defer cancel()
	done := make(chan struct{}, len(ws))
	for _, w := range ws {
		go func() {
			if err := w.w.Stop(ctx); err != nil {
				rs.opts.Logger.Warn("gateway: stopping a queue worker", "error", err)
			}
			done <- struct{}{}
		}()
	}
	for range ws {
		<-done
	}
}

// maxPause bounds a pause of delivery: the gate looks at the breaker again
// at least this often, and a paused job comes back at least this soon.
const maxPause = 5 * time.Second

// gate pauses a route's worker while its upstream's breaker is open: the
// rest of the open time up to maxPause (one second for a forced-open
// breaker, or while a reload replaces the route), so that no attempt is
// burnt while it cannot succeed.
func (rs *Routes) gate(name string) func() time.Duration {
	return func() time.Duration {
		snap, ok := rs.up.Breaker(name)
		switch {
		case !ok:
			return time.Second
		case snap.RetryAfter > 0:
			return min(snap.RetryAfter, maxPause)
		case snap.State == breaker.ForcedOpen:
			return time.Second
		}
		return 0
	}
}

func (rs *Routes) onResult(name string, r queue.Result, dead bool) {
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
	rs.opts.Deliveries.WithLabelValues(name, res).Inc()
}

// onDeadLetterDropped counts a dead letter dropped by one of this
// process's workers. It may be another route's (the oldest of the stream
// go first), even one a reload removed.
func (rs *Routes) onDeadLetterDropped(route, _ string) {
	rs.opts.DeadDropped.WithLabelValues(route).Inc()
}

// deliverer is the queue handler of the async route name: it sends each
// job through Upstreams.Deliver to the route's current upstream (reloads
// may replace it).
func (rs *Routes) deliverer(name string) queue.Handler {
	paused := queue.Result{Outcome: queue.Paused, Reason: reasonReloading, RetryAfter: time.Second}
	return func(ctx context.Context, j *queue.Job) queue.Result {
		retryAfterMax, ok := (*rs.delivered.Load())[name]
		if !ok {
			return paused
		}
		sr, err := DecodeStoredRequest(j.Data)
		if err != nil {
			return queue.Result{Outcome: queue.Rejected, Reason: "bad_job"}
		}
		req, err := deliveryRequest(sr, j)
		if err != nil {
			return queue.Result{Outcome: queue.Rejected, Reason: "bad_job"}
		}
		resp, err := rs.up.Deliver(ctx, name, req)
		if errors.Is(err, ErrNoRoute) {
			return paused
		}
		return deliveryResult(ctx, retryAfterMax, resp, err)
	}
}

// deliveryRequest rebuilds the stored request as its client sent it, with
// the job's headers: Upstreams.Deliver rewrites it for the route's
// upstream.
func deliveryRequest(sr *StoredRequest, j *queue.Job) (*http.Request, error) {
	p, err := url.PathUnescape(sr.Path)
	if err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: sr.Scheme, Path: p, RawPath: sr.Path, RawQuery: sr.RawQuery}
	if u.EscapedPath() == u.Path {
		u.RawPath = ""
	}
	h := sr.Header
	if h.Get(IdempotencyKeyHeader) == "" {
		h.Set(IdempotencyKeyHeader, j.ID)
	}
	h.Set(JobIDHeader, j.ID)
	h.Set(AttemptHeader, strconv.Itoa(j.Attempt))
	body := sr.Body
	req := &http.Request{
		Method: sr.Method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h,
		ContentLength: int64(len(body)), Body: http.NoBody, Host: sr.Host, RemoteAddr: sr.RemoteAddr,
	}
	if len(body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return req, nil
}

// deliveryResult maps a delivery attempt to the queue's verdict: 2xx and
// 3xx delivered; 408, 425, 429, 5xx, transport errors and time limits
// failed (retried after the backoff, or the upstream's Retry-After if
// longer, up to retryAfterMax: the upstream's retry_after_max); any other 4xx rejected (dead-lettered at once); a local
// rejection (breaker open, bulkhead full, no healthy instance) paused, the
// attempt not counted.
func deliveryResult(ctx context.Context, retryAfterMax time.Duration, resp *http.Response, err error) queue.Result {
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
		ra = min(ra, retryAfterMax)
		return queue.Result{Outcome: queue.Failed, Status: s, Reason: reason, RetryAfter: ra}
	}
	return queue.Result{Outcome: queue.Rejected, Status: s, Reason: "upstream_rejected"}
}
