package spillwayhttp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
	"github.com/spillway-dev/spillway/throttle"
)

// onlyReader hides a reader's type, so that http.NewRequest sets no GetBody.
type onlyReader struct{ io.Reader }

func TestPOSTWithoutIdempotencyKeyIsNotRetried(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Retry: fastRetry(t, retry.Config{NoBudget: true})})}
	resp, err := c.Post(s.URL, "text/plain", strings.NewReader("order"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 (the last response, returned)", resp.StatusCode)
	}
	if got := s.attempts.Load(); got != 1 {
		t.Errorf("server saw %d attempts of a POST without Idempotency-Key, want 1", got)
	}
}

func TestPOSTWithIdempotencyKeyIsRetriedWithTheSameBody(t *testing.T) {
	const payload = `{"order":42}`
	for _, tc := range []struct {
		name string
		body func() io.Reader
	}{
		{"GetBody", func() io.Reader { return strings.NewReader(payload) }},
		{"buffered", func() io.Reader { return onlyReader{strings.NewReader(payload)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var bodies []string
			s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, string(b))
				mu.Unlock()
				if n == 1 {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			})
			c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Retry: fastRetry(t, retry.Config{NoBudget: true})})}
			req, _ := http.NewRequest(http.MethodPost, s.URL, tc.body())
			if (req.GetBody != nil) != (tc.name == "GetBody") {
				t.Fatalf("GetBody set: %v", req.GetBody != nil)
			}
			req.Header.Set("Idempotency-Key", "k-1")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d, want 200", resp.StatusCode)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != 2 || bodies[0] != payload || bodies[1] != payload {
				t.Errorf("server saw bodies %q, want the payload twice", bodies)
			}
		})
	}
}

func TestBodyOverReplayLimitIsStreamedOnceAndNotRetried(t *testing.T) {
	payload := strings.Repeat("x", 100)
	var got string
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{MaxReplayBody: 8},
		&spillwayhttp.Downstream{Retry: fastRetry(t, retry.Config{NoBudget: true})})}
	req, _ := http.NewRequest(http.MethodPut, s.URL, onlyReader{strings.NewReader(payload)})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := s.attempts.Load(); n != 1 {
		t.Errorf("server saw %d attempts, want 1", n)
	}
	if got != payload {
		t.Errorf("server got %d bytes, want the whole %d", len(got), len(payload))
	}
}

func TestRetriesOn503ThenSucceeds(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	br := newBreaker(t, breaker.Config{})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Breaker: br, Retry: fastRetry(t, retry.Config{NoBudget: true})})}
	code, body := get(t, c, s.URL)
	if code != http.StatusOK || body != "ok" {
		t.Errorf("got %d %q, want 200 ok", code, body)
	}
	if n := s.attempts.Load(); n != 3 {
		t.Errorf("server saw %d attempts, want 3", n)
	}
	if snap := br.Snapshot(); snap.Calls != 3 || snap.Failures != 2 {
		t.Errorf("breaker counted %d calls, %d failures; want 3, 2", snap.Calls, snap.Failures)
	}
}

func TestClassification(t *testing.T) {
	for _, tc := range []struct {
		status            int
		attempts, failure int
	}{
		{http.StatusNotFound, 1, 0},
		{http.StatusBadRequest, 1, 0},
		{http.StatusConflict, 1, 0},
		{http.StatusRequestTimeout, 3, 3},
		{http.StatusTooManyRequests, 3, 3},
		{http.StatusInternalServerError, 3, 3},
		{http.StatusBadGateway, 3, 3},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { w.WriteHeader(tc.status) })
			br := newBreaker(t, breaker.Config{MinCalls: 1000, WindowSize: 1000})
			c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Breaker: br, Retry: fastRetry(t, retry.Config{NoBudget: true})})}
			code, _ := get(t, c, s.URL)
			if code != tc.status {
				t.Errorf("status %d, want %d", code, tc.status)
			}
			if n := s.attempts.Load(); n != int64(tc.attempts) {
				t.Errorf("server saw %d attempts, want %d", n, tc.attempts)
			}
			if snap := br.Snapshot(); snap.Failures != tc.failure || snap.Calls != tc.attempts {
				t.Errorf("breaker counted %d calls, %d failures; want %d, %d", snap.Calls, snap.Failures, tc.attempts, tc.failure)
			}
		})
	}
}

func TestRetriesBoundedByBudgetDuringOutage(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { w.WriteHeader(http.StatusServiceUnavailable) })
	budget := retry.MustNewBudget(retry.BudgetConfig{Ratio: 0.2, MinPerSecond: 1, Window: 10 * time.Second})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Retry: fastRetry(t, retry.Config{Budget: budget})})}
	const requests = 200
	for range requests {
		code, _ := get(t, c, s.URL)
		if code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", code)
		}
	}
	// Ratio × requests + floor (1/s × 10s), plus the budget's documented
	// slack of 15 requests × Ratio.
	bound := int64(requests + 0.2*requests + 10 + 3)
	n := s.attempts.Load()
	if n > bound {
		t.Errorf("server saw %d attempts for %d requests, want <= %d (budget)", n, requests, bound)
	}
	if n <= requests {
		t.Errorf("server saw %d attempts: no retry at all", n)
	}
	t.Logf("%d requests, %d attempts (MaxAttempts alone would allow %d)", requests, n, 3*requests)
}

func TestRetryAfterIsHonoured(t *testing.T) {
	// A Config.RetryAfter of one's own reads another hint: here a header
	// in milliseconds.
	waitMs := spillwayhttp.Config{RetryAfter: func(resp *http.Response) (time.Duration, bool) {
		ms, err := strconv.Atoi(resp.Header.Get("X-Wait-Ms"))
		return time.Duration(ms) * time.Millisecond, err == nil
	}}
	for _, tc := range []struct {
		name, header string
		value        func() string
		cfg          spillwayhttp.Config
	}{
		{"seconds", "Retry-After", func() string { return "1" }, spillwayhttp.Config{}},
		{"http-date", "Retry-After", func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, spillwayhttp.Config{}},
		{"Config.RetryAfter", "X-Wait-Ms", func() string { return "1000" }, waitMs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				if n == 1 {
					w.Header().Set(tc.header, tc.value())
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
			c := &http.Client{Transport: transport(t, tc.cfg, &spillwayhttp.Downstream{Retry: rp})}
			start := time.Now()
			code, _ := get(t, c, s.URL)
			elapsed := time.Since(start)
			if code != http.StatusOK || s.attempts.Load() != 2 {
				t.Fatalf("status %d after %d attempts, want 200 after 2", code, s.attempts.Load())
			}
			if delay < 900*time.Millisecond || elapsed < 900*time.Millisecond {
				t.Errorf("retried after a delay of %v (%v elapsed), want >= ~1s", delay, elapsed)
			}
		})
	}
}

func TestRetryAfterIsCappedAtBackoffMax(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Retry: fastRetry(t, retry.Config{NoBudget: true})})}
	// An uncapped hour could not fit the 10s deadline: the retry policy
	// would give up and return the 429.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200 after a capped wait", resp.StatusCode)
	}
}

func TestConnectionsReusedAcrossRetriedCalls(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n%2 == 1 {
			http.Error(w, strings.Repeat("unavailable ", 100), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	tr := transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Retry: fastRetry(t, retry.Config{NoBudget: true})})
	c := &http.Client{Transport: tr}
	const calls = 1000
	for range calls {
		if code, _ := get(t, c, s.URL); code != http.StatusOK {
			t.Fatalf("status %d, want 200", code)
		}
	}
	if n := s.attempts.Load(); n != 2*calls {
		t.Fatalf("server saw %d attempts, want %d", n, 2*calls)
	}
	if n := s.newConns(); n > 2 {
		t.Errorf("server saw %d connections for %d retried calls, want <= 2", n, calls)
	}
	eventually(t, "every connection idle", func() bool { return s.open() == 0 })
	tr.CloseIdleConnections()
	eventually(t, "every connection closed", s.closedAll)
}

func TestBodyIdleTimeoutFires(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		io.WriteString(w, "hello")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	var timeouts sync.Map
	obs := spillway.ObserverFunc(func(e spillway.Event) {
		if e.Kind == spillway.EventTimeout {
			timeouts.Store(e.Duration, true)
		}
	})
	ds := &spillwayhttp.Downstream{Timeouts: spillwayhttp.Timeouts{BodyIdle: 100 * time.Millisecond}}
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{Observer: obs}, ds)}
	resp, err := c.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if string(b) != "hello" {
		t.Errorf("read %q before the timeout, want hello", b)
	}
	if spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("body read error %v (reason %q), want deadline_exceeded", err, spillway.ReasonOf(err))
	}
	if _, ok := timeouts.Load(100 * time.Millisecond); !ok {
		t.Error("no EventTimeout for the body idle limit")
	}
}

func TestTotalDeadlineDoesNotCancelABodyBeingRead(t *testing.T) {
	const chunks = 10
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		for i := range chunks {
			if i > 0 {
				time.Sleep(100 * time.Millisecond) // pacing the stream, not waiting for a state
			}
			io.WriteString(w, "chunk\n")
			w.(http.Flusher).Flush()
		}
	})
	ds := &spillwayhttp.Downstream{
		Retry:    fastRetry(t, retry.Config{NoBudget: true}),
		Timeouts: spillwayhttp.Timeouts{Attempt: 150 * time.Millisecond, Total: 200 * time.Millisecond, BodyIdle: time.Second},
	}
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, ds)}
	start := time.Now()
	code, body := get(t, c, s.URL)
	if code != http.StatusOK || body != strings.Repeat("chunk\n", chunks) {
		t.Errorf("got %d with %d bytes, want 200 with every chunk", code, len(body))
	}
	if el := time.Since(start); el < 800*time.Millisecond {
		t.Errorf("the stream took %v, so it did not outlast the total deadline", el)
	}
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "ok")
	})
	ds := &spillwayhttp.Downstream{
		Retry:    fastRetry(t, retry.Config{NoBudget: true}),
		Timeouts: spillwayhttp.Timeouts{Attempt: 100 * time.Millisecond},
	}
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, ds)}
	if code, body := get(t, c, s.URL); code != http.StatusOK || body != "ok" {
		t.Errorf("got %d %q, want 200 ok", code, body)
	}
}

func TestTotalTimeoutEndsRetries(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { <-r.Context().Done() })
	ds := &spillwayhttp.Downstream{
		Retry:    fastRetry(t, retry.Config{MaxAttempts: 100, NoBudget: true}),
		Timeouts: spillwayhttp.Timeouts{Attempt: 50 * time.Millisecond, Total: 120 * time.Millisecond},
	}
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, ds)}
	_, err := c.Get(s.URL)
	if spillway.ReasonOf(err) != spillway.ReasonDeadlineExceeded {
		t.Fatalf("error %v (reason %q), want deadline_exceeded", err, spillway.ReasonOf(err))
	}
	if n := s.attempts.Load(); n < 2 || n > 3 {
		t.Errorf("server saw %d attempts, want 2 or 3 (50ms each within 120ms)", n)
	}
}

func TestOpenBreakerRejectsWithoutCallingTheServer(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { w.WriteHeader(http.StatusInternalServerError) })
	br := newBreaker(t, breaker.Config{WindowSize: 4, MinCalls: 2})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Breaker: br})}
	for range 2 {
		if code, _ := get(t, c, s.URL); code != http.StatusInternalServerError {
			t.Fatalf("status %d, want 500", code)
		}
	}
	before := s.attempts.Load()
	if before != 2 || br.State() != breaker.Open {
		t.Fatalf("after %d attempts the breaker is %v, want open after 2", before, br.State())
	}
	_, err := c.Get(s.URL)
	if spillway.ReasonOf(err) != spillway.ReasonBreakerOpen || !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("error %v, want breaker_open", err)
	}
	if n := s.attempts.Load(); n != before {
		t.Errorf("server saw %d more attempts while the breaker was open", n-before)
	}
}

// TestGuardsComeBeforeTheBreaker: a Downstream's Guards (a client-side
// throttle) see each attempt's outcome as classified (a 503 a failure, a
// 404 an accept) and refuse before the breaker is asked, without calling
// the server; the breaker ignores their refusals.
func TestGuardsComeBeforeTheBreaker(t *testing.T) {
	var status atomic.Int64
	status.Store(http.StatusServiceUnavailable)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { w.WriteHeader(int(status.Load())) })
	th := throttle.MustNew(throttle.Config{Rand: func() float64 { return 0 }})
	br := newBreaker(t, breaker.Config{WindowSize: 4, MinCalls: 4})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Guards: []spillway.Guard{th}, Breaker: br})}
	if code, _ := get(t, c, s.URL); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", code)
	}
	if reqs, accs := th.Counts(); reqs != 1 || accs != 0 {
		t.Fatalf("throttle counted %d requests, %d accepts after a 503, want 1, 0", reqs, accs)
	}
	_, err := c.Get(s.URL)
	if spillway.ReasonOf(err) != spillway.ReasonThrottled || !errors.Is(err, throttle.ErrThrottled) {
		t.Fatalf("error %v, want throttled", err)
	}
	if n := s.attempts.Load(); n != 1 {
		t.Errorf("server saw %d attempts, want 1: the throttled one was sent", n)
	}
	if snap := br.Snapshot(); snap.Calls != 1 || snap.Rejected != 0 {
		t.Errorf("breaker saw %d calls and %d rejections, want the 503 alone", snap.Calls, snap.Rejected)
	}
	status.Store(http.StatusNotFound)
	_ = th.Update(func(c *throttle.Config) { c.Rand = func() float64 { return 0.999 } })
	if code, _ := get(t, c, s.URL); code != http.StatusNotFound {
		t.Fatalf("status %d, want 404", code)
	}
	if reqs, accs := th.Counts(); reqs != 3 || accs != 1 {
		t.Errorf("throttle counted %d requests, %d accepts, want 3, 1: a 404 is an accept", reqs, accs)
	}
}

func TestFullBulkheadRejects(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		close(entered)
		<-release
	})
	bh := newBulkhead(t, bulkhead.Config{MaxConcurrent: 1})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Bulkhead: bh, Retry: fastRetry(t, retry.Config{NoBudget: true})})}
	done := make(chan error)
	go func() {
		resp, err := c.Get(s.URL)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-entered
	_, err := c.Get(s.URL)
	if spillway.ReasonOf(err) != spillway.ReasonBulkheadFull {
		t.Errorf("error %v, want bulkhead_full", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := s.attempts.Load(); n != 1 {
		t.Errorf("server saw %d attempts, want 1", n)
	}
	if bh.InFlight() != 0 {
		t.Errorf("bulkhead holds %d permits after the calls, want 0", bh.InFlight())
	}
}

func TestNoRetryAfterCallerContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		cancel()
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	br := newBreaker(t, breaker.Config{})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Breaker: br, Retry: fastRetry(t, retry.Config{NoBudget: true})})}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if n := s.attempts.Load(); n != 1 {
		t.Errorf("server saw %d attempts after the caller gave up, want 1", n)
	}
}

func TestOutgoingTimeoutHeader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ctx      time.Duration // the caller's deadline, 0 for none
		timeouts spillwayhttp.Timeouts
		min, max int64 // bounds of the header; max 0: no header
	}{
		{"caller deadline", 2 * time.Second, spillwayhttp.Timeouts{}, 1, 2000},
		{"attempt limit", 0, spillwayhttp.Timeouts{}, 1, 5000},
		{"total limit", 0, spillwayhttp.Timeouts{Attempt: -1, Total: 3 * time.Second}, 1, 3000},
		{"no limit", 0, spillwayhttp.Timeouts{Attempt: -1, Total: -1}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				got = r.Header.Values(spillwayhttp.TimeoutHeader)
			})
			c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Timeouts: tc.timeouts})}
			ctx := context.Background()
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
			req.Header.Set(spillwayhttp.TimeoutHeader, "999999") // stale: replaced
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if tc.max == 0 {
				if len(got) != 0 {
					t.Errorf("header %q, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("header values %q, want one", got)
			}
			ms, err := strconv.ParseInt(got[0], 10, 64)
			if err != nil || ms < tc.min || ms > tc.max {
				t.Errorf("header %q, want an integer in [%d, %d]", got[0], tc.min, tc.max)
			}
		})
	}
}

func TestRoundTripDoesNotModifyTheRequest(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, nil)}
	req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	req.Header.Set("X-Test", "1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(req.Header) != 1 || req.Header.Get(spillwayhttp.TimeoutHeader) != "" {
		t.Errorf("request headers changed: %v", req.Header)
	}
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestReuseHeaderSetsTheDeadlineInTheRequestsOwnHeaderOnTheFirstAttemptOnly(t *testing.T) {
	var attempts []http.Header
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		attempts = append(attempts, r.Header)
		r.Header.Set("X-Attempt", strconv.Itoa(len(attempts)))
		status := http.StatusServiceUnavailable
		if len(attempts) == 2 {
			status = http.StatusOK
		}
		return &http.Response{StatusCode: status, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	tr := transport(t, spillwayhttp.Config{Base: base, ReuseHeader: true},
		&spillwayhttp.Downstream{Retry: fastRetry(t, retry.Config{NoBudget: true})})
	req, _ := http.NewRequest(http.MethodGet, "http://upstream/", nil)
	req.Header.Set("X-Test", "1")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(attempts) != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d attempts, status %d; want 2, 200", len(attempts), resp.StatusCode)
	}
	// The first attempt's header is the request's own; the retry's a copy.
	if req.Header.Get(spillwayhttp.TimeoutHeader) == "" || req.Header.Get("X-Attempt") != "1" {
		t.Errorf("request header %v, want the first attempt's", req.Header)
	}
	if h := attempts[1]; h.Get("X-Test") != "1" || h.Get(spillwayhttp.TimeoutHeader) == "" || h.Get("X-Attempt") != "2" {
		t.Errorf("retry header %v, want a copy with its own deadline", h)
	}
}

func TestDownstreamsAreMadeOncePerKey(t *testing.T) {
	s1 := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {})
	s2 := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {})
	var mu sync.Mutex
	made := map[string]int{}
	tr := transport(t, spillwayhttp.Config{NewDownstream: func(key string, obs spillway.Observer) (*spillwayhttp.Downstream, error) {
		mu.Lock()
		made[key]++
		mu.Unlock()
		return spillwayhttp.DefaultDownstream(key, obs)
	}}, nil)
	c := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for range 20 {
		for _, u := range []string{s1.URL, s2.URL} {
			wg.Go(func() {
				resp, err := c.Get(u)
				if err == nil {
					resp.Body.Close()
				}
			})
		}
	}
	wg.Wait()
	if len(made) != 2 || made[s1.Listener.Addr().String()] != 1 || made[s2.Listener.Addr().String()] != 1 {
		t.Errorf("downstreams made: %v, want one per host", made)
	}
	if len(tr.Downstreams()) != 2 {
		t.Errorf("Downstreams() has %d entries, want 2", len(tr.Downstreams()))
	}
	if d, ok := tr.Downstream(s1.Listener.Addr().String()); !ok || d.Breaker == nil || d.Retry == nil || d.Bulkhead == nil {
		t.Errorf("Downstream(%q) = %v, %v; want the default policies", s1.Listener.Addr(), d, ok)
	}
}

func TestNewDownstreamErrorFailsTheRequest(t *testing.T) {
	boom := errors.New("boom")
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{NewDownstream: func(string, spillway.Observer) (*spillwayhttp.Downstream, error) { return nil, boom }}, nil)}
	body := &closeRecorder{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", body)
	if _, err := c.Do(req); !errors.Is(err, boom) {
		t.Errorf("error %v, want boom", err)
	}
	if !body.closed {
		t.Error("the request body was not closed")
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestTransportErrorsAreRetriedAndReported(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {})
	url := s.URL
	s.Close() // nothing listens any more: connection refused
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, &spillwayhttp.Downstream{Retry: fastRetry(t, retry.Config{NoBudget: true})})}
	_, err := c.Get(url)
	if !errors.Is(err, retry.ErrExhausted) || spillway.ReasonOf(err) != spillway.ReasonUpstreamError {
		t.Errorf("error %v (reason %q), want retries exhausted, upstream_error", err, spillway.ReasonOf(err))
	}
}

func TestBufferedBodyKeepsBytes(t *testing.T) {
	payload := bytes.Repeat([]byte{0, 1, 2, 255}, 1000)
	var got []byte
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { got, _ = io.ReadAll(r.Body) })
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, nil)}
	req, _ := http.NewRequest(http.MethodPut, s.URL, onlyReader{bytes.NewReader(payload)})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !bytes.Equal(got, payload) {
		t.Errorf("server got %d bytes, want the %d sent", len(got), len(payload))
	}
}

// TestBulkheadSpansBodyHoldsTheSlotUntilTheBodyIsDone: with
// BulkheadSpansBody a response being streamed counts as in flight until
// its body is read to the end or closed; without, the slot goes back at
// the headers.
func TestBulkheadSpansBodyHoldsTheSlotUntilTheBodyIsDone(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		_, _ = io.WriteString(w, strings.Repeat("x", 64<<10))
	})
	for _, span := range []bool{true, false} {
		bh := newBulkhead(t, bulkhead.Config{MaxConcurrent: 1})
		c := &http.Client{Transport: transport(t, spillwayhttp.Config{BulkheadSpansBody: span}, &spillwayhttp.Downstream{Bulkhead: bh})}
		resp, err := c.Get(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := bh.InFlight(), map[bool]int{true: 1, false: 0}[span]; got != want {
			t.Errorf("span %v: %d in flight with the body open, want %d", span, got, want)
		}
		second, err := c.Get(s.URL)
		if err == nil {
			second.Body.Close()
		}
		if span != (spillway.ReasonOf(err) == spillway.ReasonBulkheadFull) {
			t.Errorf("span %v: a second call while the body is open: %v", span, err)
		}
		// Read to the end, then closed: released once.
		_, _ = io.Copy(io.Discard, resp.Body)
		if bh.InFlight() != 0 {
			t.Errorf("span %v: %d in flight once the body was read, want 0", span, bh.InFlight())
		}
		resp.Body.Close()
		if bh.InFlight() != 0 {
			t.Errorf("span %v: %d in flight once the body was closed, want 0", span, bh.InFlight())
		}
		// Closed before its end: released too.
		resp, err = c.Get(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if bh.InFlight() != 0 {
			t.Errorf("span %v: %d in flight once a half-read body was closed, want 0", span, bh.InFlight())
		}
	}
}

// TestBulkheadSpansBodyRetryFreesTheSlotOfTheFailedResponse: the body of a
// retried 503 holds the only bulkhead slot; it is drained and closed before
// the backoff, so the retry is admitted, and when the retries stop the last
// failing response comes back intact, still holding its slot.
func TestBulkheadSpansBodyRetryFreesTheSlotOfTheFailedResponse(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = fmt.Fprintf(w, "attempt %d", n)
	})
	for _, tc := range []struct {
		attempts   int
		wantStatus int
		wantBody   string
	}{
		{3, 200, "attempt 3"},
		{2, 503, "attempt 2"},
	} {
		s.attempts.Store(0)
		bh := newBulkhead(t, bulkhead.Config{MaxConcurrent: 1})
		c := &http.Client{Transport: transport(t, spillwayhttp.Config{BulkheadSpansBody: true},
			&spillwayhttp.Downstream{Bulkhead: bh, Retry: fastRetry(t, retry.Config{MaxAttempts: tc.attempts, NoBudget: true})})}
		resp, err := c.Get(s.URL)
		if err != nil {
			t.Fatalf("%d attempts: %v (the failed response's slot was not freed before the retry)", tc.attempts, err)
		}
		if n := bh.InFlight(); n != 1 {
			t.Errorf("%d attempts: %d in flight with the body open, want 1", tc.attempts, n)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatus || string(b) != tc.wantBody || bh.InFlight() != 0 {
			t.Errorf("%d attempts: %d %q, %d in flight; want %d %q, 0", tc.attempts, resp.StatusCode, b, bh.InFlight(), tc.wantStatus, tc.wantBody)
		}
	}
}

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
