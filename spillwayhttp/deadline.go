package spillwayhttp

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// TimeoutHeader carries a request's remaining time budget, in whole
// milliseconds (a positive decimal integer, rounded down), from a client to a
// server. The Transport sets it on every attempt to the time it will wait for
// that attempt's response headers: the least of the attempt limit, what is
// left of the total limit and what is left of the request context's deadline.
// Deadline reads it on the server side.
const TimeoutHeader = "Spillway-Timeout-Ms"

// maxHeaderMillis is the largest TimeoutHeader value turned into a Duration
// without overflow (about 292 years); larger values saturate to it.
const maxHeaderMillis = int64(1<<63-1) / int64(time.Millisecond)

// Deadline is server middleware that gives each request's context the
// deadline its client announced in TimeoutHeader, capped by the server's own
// limit max:
//
//   - a valid header (a positive decimal integer of milliseconds) sets the
//     deadline to now + min(header, max);
//   - without a header, or with a malformed one (empty, signed, zero,
//     fractional, not a number), the deadline is now + max: a client's
//     mistake never removes the server's own limit, and is not an error;
//   - max <= 0 means the server sets no limit of its own: only a valid
//     header sets a deadline;
//   - a deadline already on the request context is never extended: the
//     earlier of the two applies.
//
// A handler that calls other services through a Transport passes
// r.Context() on, so the budget shrinks along the chain of calls, and gives
// up when it runs out.
func Deadline(max time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := headerTimeout(r.Header.Get(TimeoutHeader))
		switch {
		case ok && (max <= 0 || d < max):
		case max > 0:
			d = max
		default:
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// headerTimeout parses a TimeoutHeader value; ok is false when it is
// missing or malformed.
func headerTimeout(v string) (time.Duration, bool) {
	if v == "" || v[0] < '0' || v[0] > '9' {
		return 0, false
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		if ne, isNum := err.(*strconv.NumError); isNum && ne.Err == strconv.ErrRange {
			return time.Duration(maxHeaderMillis) * time.Millisecond, true
		}
		return 0, false
	}
	if ms <= 0 {
		return 0, false
	}
	return time.Duration(min(ms, maxHeaderMillis)) * time.Millisecond, true
}
