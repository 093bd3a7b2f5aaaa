package spillwayhttp

import (
	"net/http"
	"strconv"
	"time"

	"github.com/spillway-dev/spillway"
)

// IdempotencyKeyHeader is the request header that makes any request, a POST
// included, safe to retry by DefaultRetryable: the server is expected to
// perform a request carrying a key it has seen before only once.
const IdempotencyKeyHeader = "Idempotency-Key"

// StatusError is how an attempt that received a response classified as a
// Failure is reported to the breaker and to the retry policy: the breaker
// counts it, the retry policy reads its Retry-After hint (attached with
// spillway.WithRetryAfter). The Transport never returns it as RoundTrip's
// error: the caller gets the response itself, and ErrorOf(resp) says why it
// came back (this error, or the retry policy's wrapping it). It is visible
// to a breaker's Classify and to a retry.Config.Retryable.
type StatusError struct {
	// StatusCode is the response's status code.
	StatusCode int
}

func (e *StatusError) Error() string {
	return "spillwayhttp: response status " + strconv.Itoa(e.StatusCode) + " " + http.StatusText(e.StatusCode)
}

// DefaultClassify is the classification a Transport uses unless
// Config.Classify replaces it: a transport error (err != nil), a 5xx, a 408
// (Request Timeout) and a 429 (Too Many Requests) are failures; every other
// response, other 4xx included, is a success — a client's mistake says nothing
// about the downstream's health.
func DefaultClassify(resp *http.Response, err error) spillway.Outcome {
	if err != nil || failingStatus(resp.StatusCode) {
		return spillway.Failure
	}
	return spillway.Success
}

// DefaultRetryable is the retry rule a Transport uses unless Config.Retryable
// replaces it: only an idempotent request (GET, HEAD, OPTIONS, PUT, DELETE,
// TRACE, or any request with an Idempotency-Key header), and only after a
// transport error or a 5xx, 408 or 429 response.
func DefaultRetryable(req *http.Request, resp *http.Response, err error) bool {
	if !Idempotent(req) {
		return false
	}
	return err != nil || failingStatus(resp.StatusCode)
}

// Idempotent reports whether req may be sent twice without harm: its method
// is GET, HEAD, OPTIONS, PUT, DELETE or TRACE (RFC 9110 §9.2.2; "" means GET),
// or it carries an Idempotency-Key header.
func Idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return req.Header.Get(IdempotencyKeyHeader) != ""
}

func failingStatus(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// DefaultRetryAfter is the default Config.RetryAfter: resp's Retry-After
// header, read by ParseRetryAfter.
func DefaultRetryAfter(resp *http.Response) (time.Duration, bool) {
	return ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
}

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3), relative to now. A date in the past means 0; a value
// that is neither is ignored (ok false); a huge delay saturates.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return secondsToDuration(secs), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// secondsToDuration converts whole seconds to a Duration, saturating instead
// of overflowing (a retry policy caps the hint at its Max anyway).
func secondsToDuration(secs int64) time.Duration {
	const maxSecs = int64(1<<63-1) / int64(time.Second)
	if secs > maxSecs {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(secs) * time.Second
}
