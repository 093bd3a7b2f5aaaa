package async

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/internal/reply"
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

// Answer is what Accept or JobStatus answered, for the gateway's access
// log and metrics.
type Answer struct {
	Outcome Outcome
	// Reason is the Spillway-Reason of an answer other than Accepted and
	// Answered.
	Reason string
}

// Outcome is the kind of an Answer.
type Outcome uint8

// The outcomes of Accept and JobStatus.
const (
	Accepted Outcome = iota // 202: the request is stored as a job
	Answered                // 200: a job's status
	Refused                 // an error answer: nothing stored, or the store failed
	Canceled                // the client stopped sending its body: nothing stored
)

// refuse writes an error answer made before the store was asked.
func refuse(w http.ResponseWriter, status int, reason, msg string) Answer {
	reply.Error(w, status, reason, msg)
	return Answer{Outcome: Refused, Reason: reason}
}

// Accept stores r as a job of its async route rc and answers 202; or 400
// for an unusable Idempotency-Key, 413 when the body is larger than
// async.max_body or maxBody (server.max_body, 0: none), 409 when the key
// belongs to another request, 503 when the store refused the job, 504
// when it did not answer in time.
func (rs *Routes) Accept(w http.ResponseWriter, r *http.Request, rc *config.Route, maxBody int64) Answer {
	m, refused := jobKey(w, r, rc.Async)
	if refused != nil {
		return *refused
	}
	limit := rc.Async.MaxBody
	if maxBody > 0 && maxBody < limit {
		limit = maxBody
	}
	if r.ContentLength > limit {
		return refuse(w, http.StatusRequestEntityTooLarge, reply.BodyTooLarge, "the request body is too large")
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
		return refuse(w, http.StatusRequestEntityTooLarge, reply.BodyTooLarge, "the request body is too large")
	case err != nil:
		// The client stopped sending its body: nothing is stored.
		reply.Error(w, http.StatusBadRequest, reply.BadRequest, "the request body could not be read")
		return Answer{Outcome: Canceled, Reason: reply.BadRequest}
	}
	if m.Key != "" {
		m.Fingerprint = fingerprint(r, b[bodyAt:])
	}
	m.Data = b
	id, dup, err := rs.q.Enqueue(r.Context(), rc.Name, m)
	if err != nil {
		return enqueueError(w, rc.Upstream, err)
	}
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
	return Answer{Outcome: Accepted}
}

// jobKey reads the request's Idempotency-Key and, when the route scopes
// keys (async.key_scope), the client identity: the message to enqueue, or
// the 400 answered. A key is at most queue.MaxKeyLen bytes of visible
// ASCII, and one per request.
func jobKey(w http.ResponseWriter, r *http.Request, a *config.Async) (queue.Message, *Answer) {
	keys := r.Header[IdempotencyKeyHeader]
	if len(keys) == 0 {
		return queue.Message{}, nil
	}
	if len(keys) > 1 || !queue.ValidKey(keys[0]) {
		ans := refuse(w, http.StatusBadRequest, queue.ReasonKeyInvalid,
			"the Idempotency-Key must be one header of 1 to "+strconv.Itoa(queue.MaxKeyLen)+" bytes of visible ASCII; nothing was stored")
		return queue.Message{}, &ans
	}
	m := queue.Message{Key: keys[0]}
	if a.KeyScopeHeader != "" {
		m.Scope = r.Header.Get(a.KeyScopeHeader)
		if m.Scope == "" {
			ans := refuse(w, http.StatusBadRequest, ReasonKeyUnscoped,
				"this route scopes Idempotency-Key by the "+a.KeyScopeHeader+" header, which the request lacks; nothing was stored")
			return queue.Message{}, &ans
		}
	}
	return m, nil
}

// enqueueError answers a failed Enqueue: 409 for a key that belongs to
// another request (without that request's job id), 400 for an invalid key,
// else the store's failure (queueError).
func enqueueError(w http.ResponseWriter, upstream string, err error) Answer {
	switch reason := queue.ReasonOf(err); reason {
	case queue.ReasonKeyReused:
		return refuse(w, http.StatusConflict, reason, "this Idempotency-Key was used within the dedupe window for another request "+
			"(its method, path, query, headers or body differ); nothing was stored: use a new key for a new request")
	case queue.ReasonKeyInvalid:
		return refuse(w, http.StatusBadRequest, reason, "the Idempotency-Key is not usable; nothing was stored")
	}
	return queueError(w, upstream, err)
}

// queueError answers a store failure with the brief's JSON error body and
// Retry-After: 1: 503 queue_full or queue_unavailable (the job was not
// stored), 504 queue_timeout (no answer in time: it may have been stored).
// upstream is the route's upstream, "" for a job status.
func queueError(w http.ResponseWriter, upstream string, err error) Answer {
	reason := queue.ReasonOf(err)
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
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Spillway-Reason", reason)
	h.Set("Retry-After", "1")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"error":{"reason":"`+reason+`","upstream":"`+upstream+`","message":"`+msg+`","retry_after_seconds":1}}`)
	return Answer{Outcome: Refused, Reason: reason}
}

// JobStatus answers GET|HEAD JobsPath<id> with the job's queue.Status as
// JSON.
func (rs *Routes) JobStatus(w http.ResponseWriter, r *http.Request) Answer {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return refuse(w, http.StatusMethodNotAllowed, ReasonMethodNotAllowed, "a job's status is read with GET or HEAD")
	}
	id := strings.TrimPrefix(r.URL.Path, JobsPath)
	if !ValidJobID(id) {
		return refuse(w, http.StatusBadRequest, reply.BadRequest, "a job id is 32 lowercase hexadecimal digits")
	}
	st, err := rs.q.Status(r.Context(), id)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return refuse(w, http.StatusNotFound, ReasonJobNotFound, "no job has this id, or its status has expired")
	case err != nil:
		return queueError(w, "", err)
	}
	b, _ := json.Marshal(st)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(append(b, '\n'))
	}
	return Answer{Outcome: Answered}
}
