package spillwayhttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

func TestDeadline(t *testing.T) {
	for _, tc := range []struct {
		name     string
		header   string
		max      time.Duration
		parent   time.Duration // an existing deadline, 0 for none
		want     time.Duration // 0: no deadline
		noHeader bool
	}{
		{name: "header under max", header: "1500", max: 10 * time.Second, want: 1500 * time.Millisecond},
		{name: "header capped by max", header: "60000", max: 2 * time.Second, want: 2 * time.Second},
		{name: "no max", header: "700", want: 700 * time.Millisecond},
		{name: "absent uses max", noHeader: true, max: 3 * time.Second, want: 3 * time.Second},
		{name: "absent, no max", noHeader: true},
		{name: "malformed text", header: "soon", max: 3 * time.Second, want: 3 * time.Second},
		{name: "malformed negative", header: "-5", max: 3 * time.Second, want: 3 * time.Second},
		{name: "malformed plus", header: "+5", max: 3 * time.Second, want: 3 * time.Second},
		{name: "malformed zero", header: "0", max: 3 * time.Second, want: 3 * time.Second},
		{name: "malformed fraction", header: "1.5", want: 0},
		{name: "huge saturates", header: "99999999999999999999999", max: time.Second, want: time.Second},
		{name: "never extends", header: "5000", max: 10 * time.Second, parent: time.Second, want: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dl time.Time
			var has bool
			h := spillwayhttp.Deadline(tc.max, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				dl, has = r.Context().Deadline()
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if !tc.noHeader {
				req.Header.Set(spillwayhttp.TimeoutHeader, tc.header)
			}
			before := time.Now()
			if tc.parent > 0 {
				ctx, cancel := context.WithTimeout(req.Context(), tc.parent)
				defer cancel()
				req = req.WithContext(ctx)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			after := time.Now()
			if tc.want == 0 {
				if has {
					t.Errorf("deadline %v, want none", dl)
				}
				return
			}
			if !has || dl.Before(before.Add(tc.want)) || dl.After(after.Add(tc.want)) {
				t.Errorf("deadline in %v, want %v", dl.Sub(before), tc.want)
			}
		})
	}
}

func TestDeadlineEndToEnd(t *testing.T) {
	// A client with a 2s budget calls a server capped at 10s: the handler
	// sees (at most) the client's budget.
	var left time.Duration
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		spillwayhttp.Deadline(10*time.Second, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			dl, _ := r.Context().Deadline()
			left = time.Until(dl)
		})).ServeHTTP(w, r)
	})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{})}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if left <= 0 || left > 2*time.Second {
		t.Errorf("handler had %v left, want (0, 2s]", left)
	}
}

func TestProtect(t *testing.T) {
	bh := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1})
	entered, release := make(chan struct{}), make(chan struct{})
	h := spillwayhttp.Protect(bh, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}), spillwayhttp.ProtectName("checkout"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	<-entered
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	close(release)
	<-done

	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
	for k, want := range map[string]string{
		"Retry-After":     "1",
		"Spillway-Reason": "bulkhead_full",
		"Content-Type":    "application/json",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	const want = `{"error":{"reason":"bulkhead_full","upstream":"checkout","message":"too many concurrent requests","retry_after_seconds":1}}`
	if got := rec.Body.String(); got != want {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}
	if bh.InFlight() != 0 {
		t.Errorf("%d permits held after the requests", bh.InFlight())
	}
}

func TestWriteError(t *testing.T) {
	open := &spillway.Error{Code: spillway.ReasonBreakerOpen, Policy: "breaker", Name: "catalog", RetryAfter: 11500 * time.Millisecond, Err: breaker.ErrOpen}
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		reason     string
		retryAfter string
		body       string
	}{
		{"breaker open", open, 503, "breaker_open", "12",
			`{"error":{"reason":"breaker_open","upstream":"catalog","message":"the circuit breaker is open: the upstream is failing","retry_after_seconds":12}}`},
		{"deadline", context.DeadlineExceeded, 504, "deadline_exceeded", "",
			`{"error":{"reason":"deadline_exceeded","upstream":"catalog","message":"the upstream did not answer in time"}}`},
		{"throttled", spillway.WithRetryAfter(&spillway.Error{Code: spillway.ReasonThrottled}, 2*time.Second), 429, "throttled", "2",
			`{"error":{"reason":"throttled","upstream":"catalog","message":"too many requests","retry_after_seconds":2}}`},
		{"plain error", errors.New("dial tcp 10.0.0.7:80: refused"), 503, "upstream_error", "",
			`{"error":{"reason":"upstream_error","upstream":"catalog","message":"the upstream failed"}}`},
		{"nil", nil, 503, "upstream_error", "",
			`{"error":{"reason":"upstream_error","upstream":"catalog","message":"the upstream failed"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			spillwayhttp.WriteError(rec, tc.err, "catalog")
			if rec.Code != tc.status || rec.Header().Get("Spillway-Reason") != tc.reason || rec.Header().Get("Retry-After") != tc.retryAfter {
				t.Errorf("got %d, reason %q, Retry-After %q; want %d, %q, %q", rec.Code,
					rec.Header().Get("Spillway-Reason"), rec.Header().Get("Retry-After"), tc.status, tc.reason, tc.retryAfter)
			}
			if rec.Body.String() != tc.body {
				t.Errorf("body\n%s\nwant\n%s", rec.Body.String(), tc.body)
			}
		})
	}
}
