package spillwayhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/chaos"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
	"github.com/spillway-dev/spillway/timeout"
)

// okBase answers 200 without a network and counts its calls.
func okBase(calls *int) roundTripFunc {
	return func(r *http.Request) (*http.Response, error) {
		*calls++
		if r.Body != nil {
			r.Body.Close()
		}
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
	}
}

// TestChaosFaultIsRetried: an injected error on the first attempt is
// retried like a transport error, and the second attempt reaches the base.
func TestChaosFaultIsRetried(t *testing.T) {
	calls := 0
	first := true
	fault := chaos.Must(chaos.NewFault[*http.Response](chaos.Config{Enabled: true, Rate: 0.5, Rand: func() float64 {
		if first {
			first = false
			return 0
		}
		return 0.99
	}}, nil))
	ds := &spillwayhttp.Downstream{Retry: fastRetry(t, retry.Config{NoBudget: true}), Chaos: []spillway.Injector[*http.Response]{fault}}
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{Base: okBase(&calls)}, ds)}
	if status, body := get(t, c, "http://chaos.test/"); status != 200 || body != "ok" || calls != 1 {
		t.Fatalf("status %d %q after %d base calls, want 200 after one", status, body, calls)
	}
}

// TestChaosSubstituteResponseOpensTheBreaker: a substituted 503 is
// classified as a real one; the breaker opens without the base being
// called, and the request body is closed as the base would have.
func TestChaosSubstituteResponseOpensTheBreaker(t *testing.T) {
	calls := 0
	unavailable := chaos.Must(chaos.NewOutcome(chaos.Config{Enabled: true, Rate: 1}, func(context.Context) (*http.Response, error) {
		return &http.Response{StatusCode: 503, Body: io.NopCloser(strings.NewReader("injected"))}, nil
	}))
	br := newBreaker(t, breaker.Config{ConsecutiveFailures: 2})
	ds := &spillwayhttp.Downstream{Breaker: br, Chaos: []spillway.Injector[*http.Response]{unavailable}}
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{Base: okBase(&calls)}, ds)}
	for range 2 {
		body := &closeCounter{Reader: strings.NewReader("payload")}
		resp, err := c.Post("http://chaos.test/", "text/plain", body)
		if err != nil || resp.StatusCode != 503 {
			t.Fatalf("POST: %v, %v; want the substituted 503", resp, err)
		}
		resp.Body.Close()
		if body.closed != 1 {
			t.Fatalf("request body closed %d times, want once", body.closed)
		}
	}
	_, err := c.Get("http://chaos.test/")
	if !errors.Is(err, breaker.ErrOpen) || calls != 0 {
		t.Fatalf("third request: %v after %d base calls, want the breaker open and none", err, calls)
	}
}

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

// TestChaosLatencyUnderAttemptLimit: an injected latency runs under the
// attempt's limit, which cuts it short with the attempt timeout's error.
func TestChaosLatencyUnderAttemptLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		slow := chaos.Must(chaos.NewLatency[*http.Response](chaos.Config{Enabled: true, Rate: 1}, time.Hour))
		ds := &spillwayhttp.Downstream{Timeouts: spillwayhttp.Timeouts{Attempt: 50 * time.Millisecond},
			Chaos: []spillway.Injector[*http.Response]{slow}}
		c := &http.Client{Transport: transport(t, spillwayhttp.Config{Base: okBase(&calls)}, ds)}
		start := time.Now()
		_, err := c.Get("http://chaos.test/")
		if !errors.Is(err, timeout.ErrTimeout) || time.Since(start) != 50*time.Millisecond || calls != 0 {
			t.Fatalf("%v after %v and %d base calls, want the attempt timeout after 50ms", err, time.Since(start), calls)
		}
	})
}
