package spillwayhttp

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/bulkhead"
)

// ReasonHeader is the response header that names the reason of an error
// answer made locally (see spillway.Reason).
const ReasonHeader = "Spillway-Reason"

// DefaultProtectRetryAfter is the Retry-After of Protect's refusals unless
// ProtectRetryAfter changes it: 1s. A bulkhead frees a slot as soon as any
// request in flight ends, so a full one is a matter of moments; a small
// hint brings clients back soon (they add their own jitter).
const DefaultProtectRetryAfter = time.Second

// ProtectOption changes a setting of Protect.
type ProtectOption func(*protectConfig)

type protectConfig struct {
	name       string
	retryAfter time.Duration
}

// ProtectName sets the "upstream" of Protect's error body: the name of what
// the bulkhead protects (the service itself, or a route). Default "".
func ProtectName(name string) ProtectOption {
	return func(c *protectConfig) { c.name = name }
}

// ProtectRetryAfter sets the Retry-After of Protect's refusals, rounded up to
// whole seconds; 0 or less omits it. Default DefaultProtectRetryAfter.
func ProtectRetryAfter(d time.Duration) ProtectOption {
	return func(c *protectConfig) { c.retryAfter = d }
}

// Protect is server middleware that runs next under the bulkhead b: a request
// that b refuses (full, its queue full or its wait too long) is answered at
// once by WriteError — status 503, Retry-After: 1, Spillway-Reason:
// bulkhead_full and the brief's JSON body — and never reaches next. A request
// whose client goes away while it waits in b's queue gets the same answer
// with the reason canceled. The slot is held while next runs and released
// when it returns (or panics).
func Protect(b *bulkhead.Bulkhead, next http.Handler, opts ...ProtectOption) http.Handler {
	cfg := protectConfig{retryAfter: DefaultProtectRetryAfter}
	for _, o := range opts {
		o(&cfg)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := b.Acquire(r.Context())
		if err != nil {
			if cfg.retryAfter > 0 && spillway.ReasonOf(err) == spillway.ReasonBulkheadFull {
				err = spillway.WithRetryAfter(err, cfg.retryAfter)
			}
			WriteError(w, err, cfg.name)
			return
		}
		defer p.Release(nil)
		next.ServeHTTP(w, r)
	})
}

// errorBody is the brief's JSON error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Reason            spillway.Reason `json:"reason"`
	Upstream          string          `json:"upstream"`
	Message           string          `json:"message"`
	RetryAfterSeconds int64           `json:"retry_after_seconds,omitempty"`
}

// messages are the error bodies' messages, one per reason. They are fixed
// sentences, not err.Error(), which may name internal hosts or addresses.
var messages = map[spillway.Reason]string{
	spillway.ReasonBreakerOpen:       "the circuit breaker is open: the upstream is failing",
	spillway.ReasonBulkheadFull:      "too many concurrent requests",
	spillway.ReasonBudgetExhausted:   "the retry budget is exhausted: the upstream is failing",
	spillway.ReasonDeadlineExceeded:  "the upstream did not answer in time",
	spillway.ReasonNoHealthyInstance: "no healthy instance of the upstream",
	spillway.ReasonUpstreamError:     "the upstream failed",
	spillway.ReasonThrottled:         "too many requests",
	spillway.ReasonCanceled:          "the request was canceled",
}

// StatusOf returns the status code of the error answer for reason: 504 for
// deadline_exceeded, 429 for throttled, 503 for every other reason.
func StatusOf(reason spillway.Reason) int {
	switch reason {
	case spillway.ReasonDeadlineExceeded:
		return http.StatusGatewayTimeout
	case spillway.ReasonThrottled:
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}

// WriteError writes the brief's error answer for err on behalf of upstream:
// the status of StatusOf(spillway.ReasonOf(err)), the header
// Spillway-Reason, Retry-After in whole seconds (rounded up) when err carries
// a delay (spillway.RetryAfterOf: an open breaker's remaining open time, a
// hint attached with spillway.WithRetryAfter), Content-Type
// application/json and the body
//
//	{"error":{"reason":"breaker_open","upstream":"catalog","message":"...","retry_after_seconds":12}}
//
// without a trailing newline. retry_after_seconds is left out when no delay
// is known. The message is a fixed sentence per reason, never err's text,
// which could reveal internal addresses. A nil err is answered as
// upstream_error. Nothing must have been written to w before.
func WriteError(w http.ResponseWriter, err error, upstream string) {
	reason := spillway.ReasonOf(err)
	if reason == "" {
		reason = spillway.ReasonUpstreamError
	}
	d := errorDetail{Reason: reason, Upstream: upstream, Message: messages[reason]}
	if d.Message == "" {
		d.Message = string(reason)
	}
	if ra, ok := spillway.RetryAfterOf(err); ok && ra > 0 {
		d.RetryAfterSeconds = int64(math.Ceil(ra.Seconds()))
	}
	body, merr := json.Marshal(errorBody{Error: d})
	if merr != nil {
		// A struct of strings and an integer always marshals.
		panic(merr)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(ReasonHeader, string(reason))
	if d.RetryAfterSeconds > 0 {
		h.Set("Retry-After", strconv.FormatInt(d.RetryAfterSeconds, 10))
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(StatusOf(reason))
	_, _ = w.Write(body)
}
