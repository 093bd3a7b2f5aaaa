package spillwayhttp_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// TestErrorOfAFailingResponse: a 5xx that RoundTrip returns (resp, nil) says
// why no retry followed (issue 11 item 5); a success says nothing.
func TestErrorOfAFailingResponse(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	// A floor of 0.1 retry a second over 10 s and no ratio: one retry.
	stingy := retry.MustNewBudget(retry.BudgetConfig{Ratio: -1, MinPerSecond: 0.1, Window: 10 * time.Second})
	for _, tc := range []struct {
		name, method, path string
		retry              *retry.Policy
		// Client.Timeout replaces resp.Body: ErrorOf must not depend on it.
		timeout    time.Duration
		wantStatus int
		want       spillway.Reason
		wantIs     error
	}{
		{"success", http.MethodGet, "/ok", fastRetry(t, retry.Config{NoBudget: true}), 0, http.StatusOK, "", nil},
		{"attempts ran out", http.MethodGet, "/fail", fastRetry(t, retry.Config{NoBudget: true}), 0,
			http.StatusServiceUnavailable, spillway.ReasonUpstreamError, retry.ErrExhausted},
		{"attempts ran out, client timeout", http.MethodGet, "/fail", fastRetry(t, retry.Config{NoBudget: true}), time.Minute,
			http.StatusServiceUnavailable, spillway.ReasonUpstreamError, retry.ErrExhausted},
		{"budget refused", http.MethodGet, "/fail", fastRetry(t, retry.Config{MaxAttempts: 5, Budget: stingy}), 0,
			http.StatusServiceUnavailable, spillway.ReasonBudgetExhausted, retry.ErrBudgetExhausted},
		{"not idempotent", http.MethodPost, "/fail", fastRetry(t, retry.Config{NoBudget: true}), 0,
			http.StatusServiceUnavailable, spillway.ReasonUpstreamError, nil},
		{"no retry policy", http.MethodGet, "/fail", nil, 0,
			http.StatusServiceUnavailable, spillway.ReasonUpstreamError, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Retry: tc.retry})
			c := &http.Client{Transport: tr, Timeout: tc.timeout}
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, strings.NewReader("x"))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			why := spillwayhttp.ErrorOf(resp)
			if got := spillwayhttp.ReasonOf(resp); got != tc.want {
				t.Errorf("ReasonOf = %q (ErrorOf %v), want %q", got, why, tc.want)
			}
			if tc.wantIs != nil && !errors.Is(why, tc.wantIs) {
				t.Errorf("ErrorOf = %v, want it to match %v", why, tc.wantIs)
			}
			var se *spillwayhttp.StatusError
			if tc.want != "" && (!errors.As(why, &se) || se.StatusCode != tc.wantStatus) {
				t.Errorf("ErrorOf = %v, want it to carry the response's *StatusError", why)
			}
		})
	}
}

// A response that did not come from a Transport has no reason.
func TestErrorOfForeignResponse(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://example.invalid/", nil)
	for _, resp := range []*http.Response{nil, {StatusCode: 503}, {StatusCode: 503, Request: req}} {
		if err := spillwayhttp.ErrorOf(resp); err != nil {
			t.Errorf("ErrorOf(%v) = %v, want nil", resp, err)
		}
	}
}
