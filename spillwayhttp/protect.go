package spillwayhttp

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

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
	msg := messages[reason]
	if msg == "" {
		msg = string(reason)
	}
	var retryAfter int64
	if ra, ok := spillway.RetryAfterOf(err); ok && ra > 0 {
		retryAfter = int64(math.Ceil(ra.Seconds()))
	}
	bp := errorBodies.Get().(*[]byte)
	body := appendErrorBody((*bp)[:0], reason, upstream, msg, retryAfter)
	// The values share one array, as in http.Header.Clone, each capped so
	// that appending to one never overwrites the next; the keys are
	// canonical.
	v := make([]string, 4)
	v[0], v[1], v[2] = "application/json", string(reason), strconv.Itoa(len(body))
	h := w.Header()
	h["Content-Type"], h[ReasonHeader], h["Content-Length"] = v[0:1:1], v[1:2:2], v[2:3:3]
	if retryAfter > 0 {
		v[3] = strconv.FormatInt(retryAfter, 10)
		h["Retry-After"] = v[3:4:4]
	}
	w.WriteHeader(StatusOf(reason))
	_, _ = w.Write(body)
	*bp = body
	errorBodies.Put(bp)
}

// errorBodies lends WriteError the buffers it encodes its bodies in: an
// error answer is the fast path of a failing downstream, served at the rate
// of a Go server's own answers.
var errorBodies = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// appendErrorBody appends the brief's error body, as encoding/json would
// marshal it from
//
//	{Error: {Reason, Upstream, Message string; RetryAfterSeconds int64 `json:",omitempty"`}}
//
// (HTML characters escaped), without its reflection.
func appendErrorBody(b []byte, reason spillway.Reason, upstream, msg string, retryAfter int64) []byte {
	b = append(b, `{"error":{"reason":`...)
	b = appendJSONString(b, string(reason))
	b = append(b, `,"upstream":`...)
	b = appendJSONString(b, upstream)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	if retryAfter != 0 {
		b = append(b, `,"retry_after_seconds":`...)
		b = strconv.AppendInt(b, retryAfter, 10)
	}
	return append(b, "}}"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as encoding/json marshals a string: quotes,
// backslashes and control characters escaped (\b, \f, \n, \r, \t
// short), <, > and & escaped for HTML, U+2028 and U+2029 escaped, invalid
// UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
