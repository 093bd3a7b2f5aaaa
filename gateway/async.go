package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
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
	// ReasonKeyUnscoped: 400, an async route scopes Idempotency-Key by a
	// header (async.key_scope) that the request lacks.
	ReasonKeyUnscoped = "idempotency_key_unscoped"
)

// queueProbeTimeout bounds the store lookups made for metrics, status and
// readiness, which must answer even when the store does not.
const queueProbeTimeout = time.Second

// ValidJobID reports whether id has the shape of a job id: 32 lowercase
// hexadecimal digits (queue.ValidID).
func ValidJobID(id string) bool { return queue.ValidID(id) }

// accept stores r as a job of its async route and answers 202; or 400 for
// an unusable Idempotency-Key, 413 when the body is too large, 409 when
// the key belongs to another request, 503 when the store refused the job,
// 504 when it did not answer in time.
func (g *Gateway) accept(w http.ResponseWriter, x *exchange, r *http.Request, t *table) {
	rt := x.route
	m, ok := g.jobKey(w, x, r, rt.cfg.Async)
	if !ok {
		return
	}
	limit := rt.cfg.Async.MaxBody
	if s := t.cfg.Server.MaxBody; s > 0 && s < limit {
		limit = s
	}
	if r.ContentLength > limit {
		g.local(w, x, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "the request body is too large")
		return
	}
	bp := jobBuffers.Get().(*[]byte)
	b := encodeHead((*bp)[:0], r)
	bodyAt := len(b)
	b, err := appendRequestBody(b, r, limit)
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
	if m.Key != "" {
		m.Fingerprint = fingerprint(r, b[bodyAt:])
	}
	m.Data = b
	id, dup, err := g.opts.Queue.Enqueue(r.Context(), rt.cfg.Name, m)
	if err != nil {
		g.enqueueError(w, x, err)
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

// jobKey reads the request's Idempotency-Key and, when the route scopes
// keys (async.key_scope), the client identity: the message to enqueue, or
// a 400 answered and false. A key is at most queue.MaxKeyLen bytes of
// visible ASCII, and one per request.
func (g *Gateway) jobKey(w http.ResponseWriter, x *exchange, r *http.Request, a *config.Async) (queue.Message, bool) {
	keys := r.Header[IdempotencyKeyHeader]
	if len(keys) == 0 {
		return queue.Message{}, true
	}
	if len(keys) > 1 || !queue.ValidKey(keys[0]) {
		g.local(w, x, http.StatusBadRequest, queue.ReasonKeyInvalid,
			"the Idempotency-Key must be one header of 1 to "+strconv.Itoa(queue.MaxKeyLen)+" bytes of visible ASCII; nothing was stored")
		return queue.Message{}, false
	}
	m := queue.Message{Key: keys[0]}
	if a.KeyScopeHeader != "" {
		m.Scope = r.Header.Get(a.KeyScopeHeader)
		if m.Scope == "" {
			g.local(w, x, http.StatusBadRequest, ReasonKeyUnscoped,
				"this route scopes Idempotency-Key by the "+a.KeyScopeHeader+" header, which the request lacks; nothing was stored")
			return queue.Message{}, false
		}
	}
	return m, true
}

// enqueueError answers a failed Enqueue: 409 for a key that belongs to
// another request (without that request's job id), 400 for an invalid key,
// else the store's failure (queueError).
func (g *Gateway) enqueueError(w http.ResponseWriter, x *exchange, err error) {
	switch reason := queue.ReasonOf(err); reason {
	case queue.ReasonKeyReused:
		g.local(w, x, http.StatusConflict, reason, "this Idempotency-Key was used within the dedupe window for another request "+
			"(its method, path, query, headers or body differ); nothing was stored: use a new key for a new request")
	case queue.ReasonKeyInvalid:
		g.local(w, x, http.StatusBadRequest, reason, "the Idempotency-Key is not usable; nothing was stored")
	default:
		g.queueError(w, x, err)
	}
}

// queueError answers a store failure with the brief's JSON error body and
// Retry-After: 1: 503 queue_full or queue_unavailable (the job was not
// stored), 504 queue_timeout (no answer in time: it may have been stored).
func (g *Gateway) queueError(w http.ResponseWriter, x *exchange, err error) {
	reason := queue.ReasonOf(err)
	x.reason, x.outcome = reason, outcomeError
	status, msg := http.StatusServiceUnavailable, "the queue is unavailable: the request was not stored"
	switch reason {
	case queue.ReasonFull:
		msg = "the queue is full: the request was not stored"
	case queue.ReasonTimeout:
		// 504, not 503: the store is a dependency that did not answer in
		// time, and the request may have been done, which 503 would deny.
		status, msg = http.StatusGatewayTimeout, "the queue did not confirm in time: the request may have been stored. "+
			"Retry with the same Idempotency-Key (without one, a retry may store it twice)"
	}
	up := ""
	if x.route != nil && x.route.up != nil {
		up = x.route.up.name
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Spillway-Reason", reason)
	h.Set("Retry-After", "1")
	w.WriteHeader(status)
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
		PingInterval:       c.PingInterval,
		DeadLetterMaxBytes: c.DeadLetters.MaxBytes, DeadLetterMaxMessages: int64(c.DeadLetters.MaxMessages),
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
