package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/spillway-dev/spillway/gateway/async"
	"github.com/spillway-dev/spillway/queue"
)

// Paging of GET /api/v1/dead-letters.
const (
	defaultPage = 50
	maxPage     = 500
)

// DeadLetterItem is one dead letter in a list: its job, the request's
// method and path, and how it died.
type DeadLetterItem struct {
	ID         string    `json:"id"`
	Route      string    `json:"route"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Attempts   int       `json:"attempts"`
	LastStatus int       `json:"last_status,omitempty"`
	LastReason string    `json:"last_reason,omitempty"`
	Died       time.Time `json:"died"`
	Enqueued   time.Time `json:"enqueued"`
	Seq        uint64    `json:"seq"`
}

// DeadLetterPage is the answer of GET /api/v1/dead-letters: Next is the
// after= cursor of the following page, "" on the last one.
type DeadLetterPage struct {
	Items []DeadLetterItem `json:"items"`
	Next  string           `json:"next"`
}

// DeadLetterDetail is the answer of GET /api/v1/dead-letters/{id}: the
// list's fields and the stored request. Body is the request body as a
// string when it is valid UTF-8 (BodyEncoding "utf-8"), else its standard
// base64 encoding with padding (BodyEncoding "base64").
type DeadLetterDetail struct {
	DeadLetterItem
	Query        string              `json:"query,omitempty"`
	Headers      map[string][]string `json:"headers"`
	Body         string              `json:"body"`
	BodyEncoding string              `json:"body_encoding"`
}

// queue returns the gateway's queue, or answers 501.
func (a *api) queue(w http.ResponseWriter) *queue.Queue {
	q := a.g.Queue()
	if q == nil {
		writeError(w, http.StatusNotImplemented, "this gateway has no queue: no route is async")
	}
	return q
}

// pathID reads and checks the {id} of the path, or answers 400.
func pathID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !async.ValidJobID(id) {
		writeError(w, http.StatusBadRequest, "a job id is 32 lowercase hexadecimal digits, got "+strconv.Quote(id))
		return "", false
	}
	return id, true
}

// routeParam reads ?route=, or answers 400 when it is malformed, or
// missing and required.
func routeParam(w http.ResponseWriter, r *http.Request, required bool) (string, bool) {
	route := r.URL.Query().Get("route")
	switch {
	case route == "" && required:
		writeError(w, http.StatusBadRequest, "route is required: ?route=NAME (one route at a time)")
		return "", false
	case route != "" && !validRoute(route):
		writeError(w, http.StatusBadRequest, "route: "+strconv.Quote(route)+" is not a route name")
		return "", false
	}
	return route, true
}

func validRoute(s string) bool {
	if len(s) > 128 {
		return false
	}
	for _, c := range s {
		if c != '_' && c != '-' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// queueFailed answers a queue error: 404 for ErrNotFound, 504 when the
// store did not answer a change in time (it may have been made), 503 when
// the store is unavailable, full or closed, else 500.
func queueFailed(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		writeError(w, http.StatusNotFound, "no job or dead letter has this id")
	case errors.Is(err, queue.ErrUncertain):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusGatewayTimeout, "the queue did not answer in time, the change may have been made: "+queue.ReasonOf(err))
	case errors.Is(err, queue.ErrUnavailable), errors.Is(err, queue.ErrFull), errors.Is(err, queue.ErrClosed),
		errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the queue is unavailable: "+queue.ReasonOf(err))
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// queueAndID returns the gateway's queue and the {id} of the path, or
// answers the error (501 without a queue, 400 for a malformed id) and false.
func (a *api) queueAndID(w http.ResponseWriter, r *http.Request) (*queue.Queue, string, bool) {
	q := a.queue(w)
	if q == nil {
		return nil, "", false
	}
	id, ok := pathID(w, r)
	return q, id, ok
}

func (a *api) job(w http.ResponseWriter, r *http.Request) {
	q, id, ok := a.queueAndID(w, r)
	if !ok {
		return
	}
	st, err := q.Status(r.Context(), id)
	if err != nil {
		queueFailed(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func item(dl queue.DeadLetter, sr *async.StoredRequest) DeadLetterItem {
	it := DeadLetterItem{ID: dl.ID, Route: dl.Queue, Attempts: dl.Attempts, LastStatus: dl.LastStatus,
		LastReason: dl.LastReason, Died: dl.Died, Enqueued: dl.Enqueued, Seq: dl.Seq}
	if sr != nil {
		it.Method, it.Path = sr.Method, sr.Path
	}
	return it
}

func (a *api) deadLetters(w http.ResponseWriter, r *http.Request) {
	q := a.queue(w)
	if q == nil {
		return
	}
	route, ok := routeParam(w, r, false)
	if !ok {
		return
	}
	var after uint64
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "after: "+strconv.Quote(v)+" is not a cursor (the next of a previous page)")
			return
		}
		after = n
	}
	limit := defaultPage
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			writeError(w, http.StatusBadRequest, "limit: "+strconv.Quote(v)+" is not a number from 1 to "+strconv.Itoa(maxPage))
			return
		}
		limit = n
	}
	page, next, err := q.DeadLetters(r.Context(), route, after, limit)
	if err != nil {
		queueFailed(w, err)
		return
	}
	out := DeadLetterPage{Items: make([]DeadLetterItem, 0, len(page))}
	for _, dl := range page {
		sr, _ := async.DecodeStoredRequest(dl.Data)
		out.Items = append(out.Items, item(dl, sr))
	}
	if next != 0 {
		out.Next = strconv.FormatUint(next, 10)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) deadLetter(w http.ResponseWriter, r *http.Request) {
	q, id, ok := a.queueAndID(w, r)
	if !ok {
		return
	}
	dl, err := q.DeadLetterByID(r.Context(), id)
	if err != nil {
		queueFailed(w, err)
		return
	}
	sr, err := async.DecodeStoredRequest(dl.Data)
	if err != nil {
		// Not a gateway job (another producer on the same store): its data
		// is shown as the body.
		sr = &async.StoredRequest{Body: dl.Data}
	}
	d := DeadLetterDetail{DeadLetterItem: item(dl, sr), Query: sr.RawQuery, Headers: sr.Header, BodyEncoding: "utf-8"}
	if d.Headers == nil {
		d.Headers = map[string][]string{}
	}
	if utf8.Valid(sr.Body) {
		d.Body = string(sr.Body)
	} else {
		d.Body, d.BodyEncoding = base64.StdEncoding.EncodeToString(sr.Body), "base64"
	}
	writeJSON(w, http.StatusOK, d)
}

// oneDeadLetter answers a call on one dead letter ({id} in the path): do
// acts on it, and the answer is {"<verb>":1,"id":"<id>"}.
func (a *api) oneDeadLetter(verb string, do func(q *queue.Queue, ctx context.Context, id string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, id, ok := a.queueAndID(w, r)
		if !ok {
			return
		}
		if err := do(q, r.Context(), id); err != nil {
			queueFailed(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{verb: 1, "id": id})
	}
}

// routeDeadLetters answers a call on every dead letter of one route (the
// required ?route=): do acts on them, and the answer is {"<verb>":n}.
func (a *api) routeDeadLetters(verb string, do func(q *queue.Queue, ctx context.Context, route string) (int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := a.queue(w)
		if q == nil {
			return
		}
		route, ok := routeParam(w, r, true)
		if !ok {
			return
		}
		n, err := do(q, r.Context(), route)
		if err != nil {
			queueFailed(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{verb: n})
	}
}
