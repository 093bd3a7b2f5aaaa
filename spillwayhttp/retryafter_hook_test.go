package spillwayhttp_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// TestConfigRetryAfterReadsTheHint: a Config.RetryAfter of one's own reads
// the hint of a failing response (here a header in milliseconds), and the
// retry waits for it.
func TestConfigRetryAfterReadsTheHint(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			w.Header().Set("X-Wait-Ms", "250")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	var delay time.Duration
	obs := spillway.ObserverFunc(func(e spillway.Event) {
		if e.Kind == spillway.EventRetry {
			delay = e.Delay
		}
	})
	rp := retry.MustNew(retry.Config{Initial: time.Millisecond, Max: 10 * time.Second, NoBudget: true, Observer: obs})
	cfg := spillwayhttp.Config{RetryAfter: func(resp *http.Response) (time.Duration, bool) {
		ms, err := strconv.Atoi(resp.Header.Get("X-Wait-Ms"))
		return time.Duration(ms) * time.Millisecond, err == nil
	}}
	c := &http.Client{Transport: transport(t, cfg, &spillwayhttp.Downstream{Retry: rp})}
	start := time.Now()
	code, _ := get(t, c, s.URL)
	elapsed := time.Since(start)
	if code != http.StatusOK || s.attempts.Load() != 2 {
		t.Fatalf("status %d after %d attempts, want 200 after 2", code, s.attempts.Load())
	}
	if delay < 250*time.Millisecond || elapsed < 250*time.Millisecond {
		t.Errorf("retried after a delay of %v (%v elapsed), want >= 250ms", delay, elapsed)
	}
}
