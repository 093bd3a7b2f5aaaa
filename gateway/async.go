package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/queue"
)

// JobsPath is the public path prefix of the job status answers:
// GET /_spillway/jobs/<id>. It is reserved when the gateway has a queue.
const JobsPath = "/_spillway/jobs/"

// The reasons of the answers about jobs.
const (
	ReasonJobNotFound      = "job_not_found"      // 404: no job with that id, or its status expired
	ReasonMethodNotAllowed = "method_not_allowed" // 405: only GET and HEAD on JobsPath
)

// queueProbeTimeout bounds the store lookups made for metrics, status and
// readiness, which must answer even when the store does not.
const queueProbeTimeout = time.Second

// ValidJobID reports whether id has the shape of a job id: 32 lowercase
// hexadecimal digits (queue.ValidID).
func ValidJobID(id string) bool { return queue.ValidID(id) }

// accept stores r as a job of its async route and answers 202, or 413 when
// the body is too large, or 503 when the store did not acknowledge it.
func (g *Gateway) accept(w http.ResponseWriter, x *exchange, r *http.Request, t *table) {
	rt := x.route
	limit := rt.cfg.Async.MaxBody
	if s := t.cfg.Server.MaxBody; s > 0 && s < limit {
		limit = s
	}
	if r.ContentLength > limit {
		g.local(w, x, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "the request body is too large")
		return
	}
	bp := jobBuffers.Get().(*[]byte)
	b, err := encodeRequest((*bp)[:0], r, limit)
	defer func() {
		if cap(b) <= maxPooledJob {
			*bp = b[:0]
			jobBuffers.Put(bp)
		}
	}()
	switch {
	case errors.Is(err, errBodyTooLarge):
		g.local(w, x, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "the request body is too large")
		return
	case err != nil:
		// The client stopped sending its body: nothing is stored.
		g.local(w, x, http.StatusBadRequest, ReasonBadRequest, "the request body could not be read")
		x.outcome = outcomeCanceled
		return
	}
	id, dup, err := g.opts.Queue.Enqueue(r.Context(), rt.cfg.Name, queue.Message{Key: r.Header.Get("Idempotency-Key"), Data: b})
	if err != nil {
		g.queueError(w, x, err)
		return
	}
	x.outcome = outcomeAccepted
	h := w.Header()
	loc := JobsPath + id
	h.Set("Location", loc)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	out := make([]byte, 0, 128)
	out = append(out, `{"id":"`...)
	out = append(out, id...)
	out = append(out, `","status_url":"`...)
	out = append(out, loc...)
	out = append(out, '"')
	if dup {
		out = append(out, `,"duplicate":true`...)
	}
	out = append(out, "}\n"...)
	_, _ = w.Write(out)
}

// queueError answers a store failure: 503, Spillway-Reason queue_full or
// queue_unavailable, Retry-After: 1 and the brief's JSON error body.
func (g *Gateway) queueError(w http.ResponseWriter, x *exchange, err error) {
	reason := queue.ReasonOf(err)
	x.reason, x.outcome = reason, outcomeError
	msg := "the queue is unavailable: the request was not stored"
	if reason == queue.ReasonFull {
		msg = "the queue is full: the request was not stored"
	}
	up := ""
	if x.route != nil && x.route.up != nil {
		up = x.route.up.name
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Spillway-Reason", reason)
	h.Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = io.WriteString(w, `{"error":{"reason":"`+reason+`","upstream":"`+up+`","message":"`+msg+`","retry_after_seconds":1}}`)
}

// jobStatus answers GET|HEAD /_spillway/jobs/<id> with the job's
// queue.Status as JSON.
func (g *Gateway) jobStatus(w http.ResponseWriter, x *exchange, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		g.local(w, x, http.StatusMethodNotAllowed, ReasonMethodNotAllowed, "a job's status is read with GET or HEAD")
		return
	}
	id := strings.TrimPrefix(r.URL.Path, JobsPath)
	if !ValidJobID(id) {
		g.local(w, x, http.StatusBadRequest, ReasonBadRequest, "a job id is 32 lowercase hexadecimal digits")
		return
	}
	st, err := g.opts.Queue.Status(r.Context(), id)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		g.local(w, x, http.StatusNotFound, ReasonJobNotFound, "no job has this id, or its status has expired")
		return
	case err != nil:
		g.queueError(w, x, err)
		return
	}
	x.outcome = outcomeSuccess
	b, _ := json.Marshal(st)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(append(b, '\n'))
	}
}

// probeQueue reports whether the store answers: a status lookup of an id
// no job has, which costs the store one key-value read.
func probeQueue(q *queue.Queue) bool {
	ctx, cancel := context.WithTimeout(context.Background(), queueProbeTimeout)
	defer cancel()
	_, err := q.Status(ctx, "00000000000000000000000000000000")
	return err == nil || errors.Is(err, queue.ErrNotFound)
}

// QueueConfig maps the queue: section of a configuration to queue.Config
// (the fields correspond one to one; Logger is left for the caller).
func QueueConfig(c config.Queue) queue.Config {
	qc := queue.Config{
		Servers: c.Servers, Dir: c.Dir, MaxMemory: c.MaxMemory, MaxDisk: c.MaxDisk,
		SyncAlways: c.SyncAlways, SyncInterval: c.SyncInterval,
		CredsFile: c.Credentials, User: c.User, Password: c.Password, Token: c.Token,
		Replicas: c.Replicas, DedupeWindow: c.DedupeWindow, Timeout: c.Timeout, Prefix: c.Prefix,
		PingInterval: c.PingInterval,
	}
	if c.TLS != nil {
		qc.TLS = &queue.TLS{CA: c.TLS.CA, Cert: c.TLS.Cert, Key: c.TLS.Key}
	}
	return qc
}

// HasAsync reports whether cfg has an async route, which needs a queue.
func HasAsync(cfg *config.Config) bool {
	for _, r := range cfg.Routes {
		if r.Async != nil {
			return true
		}
	}
	return false
}
