package e2e

import (
	"errors"
	"fmt"
	"io"

	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/retry"
)

// routes is the upstream's handler set:
//
//	/ok      answers 200 "ok"
//	/big     answers 200 with a 64 KiB body and its Content-Length
//	/hangup  closes the connection without answering (a crash mid-request)
func routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(bigBody)))
		_, _ = w.Write(bigBody)
	})
	mux.HandleFunc("/hangup", func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		_ = conn.Close()
	})
	return mux
}

var bigBody = []byte(strings.Repeat("0123456789abcdef", 4096))

// fixture is one test's upstream, proxy and client.
type fixture struct {
	up *upstream
	px *proxy
	c  *client
}

// newFixture starts the three pieces. When the test ends, after every piece
// has been stopped, it checks that no goroutine started during the test is
// left; leaks lists the goroutines to tolerate (toxiproxy's own, see
// toxiproxyLimitDataLeak).
func newFixture(t *testing.T, s settings, leaks ...goleak.Option) *fixture {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, append(leaks, before)...) })
	up := newUpstream(t, routes())
	px := newProxy(t, up.srv.Listener.Addr().String())
	return &fixture{up: up, px: px, c: newClient(t, newDownstream(t, s))}
}

// attempts waits until the upstream has seen want requests, then checks that
// the client made exactly want attempts: the client is done, so no attempt of
// its can still be on its way, and the two counts must agree.
func (f *fixture) attempts(t *testing.T, want int64) {
	t.Helper()
	eventually(t, fmt.Sprintf("the upstream to see %d attempts", want), func() bool { return f.up.attempts.Load() >= want })
	if got := f.up.attempts.Load(); got != want {
		t.Errorf("upstream saw %d attempts, want %d", got, want)
	}
	if got := f.c.base.attempts.Load(); got != want {
		t.Errorf("client made %d attempts, want %d", got, want)
	}
}

func wantReason(t *testing.T, err error, want spillway.Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want reason %s", want)
	}
	if got := spillway.ReasonOf(err); got != want {
		t.Fatalf("ReasonOf(%v) = %s, want %s", err, got, want)
	}
}

// Latency above the attempt timeout: every attempt times out, is counted as a
// breaker failure and is retried, up to max_attempts.
func TestLatencyAttemptTimeout(t *testing.T) {
	f := newFixture(t, settings{attempt: 100 * time.Millisecond})
	f.px.toxic(t, `{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":1000}}`)

	_, _, err := f.c.do(t, http.MethodGet, f.px.url("/ok"))
	wantReason(t, err, spillway.ReasonDeadlineExceeded)
	f.attempts(t, 3)
	if s := f.c.down.Breaker.Snapshot(); s.Failures != 3 {
		t.Errorf("breaker recorded %d failures, want 3 (one per timed-out attempt): %+v", s.Failures, s)
	}
}

// Latency below the attempt timeout costs time, not attempts.
func TestLatencyWithinAttemptTimeout(t *testing.T) {
	f := newFixture(t, settings{attempt: time.Second})
	f.px.toxic(t, `{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":50}}`)

	resp, body, err := f.c.do(t, http.MethodGet, f.px.url("/ok"))
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("GET = %v %q %v, want 200 ok", resp, body, err)
	}
	f.attempts(t, 1)
}

// reset_peer tears the connection down with a RST as soon as the response
// starts: a transport error, a failure that is retried for an idempotent
// request and never for a POST without an Idempotency-Key. Every attempt
// dials a fresh connection (the reset one is gone), so net/http's own retry
// of requests on reused connections cannot add attempts.
func TestResetPeer(t *testing.T) {
	cases := []struct {
		name   string
		method string
		header []string
		want   int64
	}{
		{"GET is retried", http.MethodGet, nil, 3},
		{"PUT is retried", http.MethodPut, nil, 3},
		{"POST is not retried", http.MethodPost, nil, 1},
		{"POST with Idempotency-Key is retried", http.MethodPost, []string{"Idempotency-Key", "k-1"}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, settings{})
			f.px.toxic(t, `{"name":"reset","type":"reset_peer","stream":"downstream","attributes":{"timeout":0}}`)

			_, _, err := f.c.do(t, tc.method, f.px.url("/ok"), tc.header...)
			wantReason(t, err, spillway.ReasonUpstreamError)
			f.attempts(t, tc.want)
			if d := f.c.base.dials.Load(); d != tc.want {
				t.Errorf("dialled %d connections, want %d (one per attempt)", d, tc.want)
			}
		})
	}
}

// The timeout toxic is a black hole: the connection is accepted (the proxy
// even connects to the upstream) but no byte goes through, so only the
// attempt timeout ends each attempt; the request never reaches a handler.
func TestBlackHole(t *testing.T) {
	f := newFixture(t, settings{attempt: 100 * time.Millisecond})
	f.px.toxic(t, `{"name":"hole","type":"timeout","stream":"upstream","attributes":{"timeout":0}}`)

	_, _, err := f.c.do(t, http.MethodGet, f.px.url("/ok"))
	wantReason(t, err, spillway.ReasonDeadlineExceeded)
	if got := f.c.base.attempts.Load(); got != 3 {
		t.Errorf("client made %d attempts, want 3", got)
	}
	if got := f.up.attempts.Load(); got != 0 {
		t.Errorf("upstream handled %d requests, want 0: nothing goes through a black hole", got)
	}
	eventually(t, "the proxy to connect to the upstream", func() bool {
		opened, _, _ := f.up.connections()
		return opened >= 1
	})
}

// slow_close holds a closing connection open for a while before the client
// sees the close. A response that arrives is unaffected; an upstream that
// hangs up without answering is seen at once without the toxic (a transport
// error, retried) and, with it, only through the attempt timeout.
func TestSlowClose(t *testing.T) {
	const toxic = `{"name":"slowclose","type":"slow_close","stream":"downstream","attributes":{"delay":400}}`

	t.Run("answered requests are unaffected", func(t *testing.T) {
		f := newFixture(t, settings{attempt: time.Second})
		f.px.toxic(t, toxic)
		for range 5 {
			resp, body, err := f.c.do(t, http.MethodGet, f.px.url("/ok"))
			if err != nil || resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("GET = %v %q %v, want 200 ok", resp, body, err)
			}
		}
		f.attempts(t, 5)
	})
	t.Run("hang-up without the toxic is a transport error", func(t *testing.T) {
		f := newFixture(t, settings{attempt: time.Second})
		_, _, err := f.c.do(t, http.MethodGet, f.px.url("/hangup"))
		wantReason(t, err, spillway.ReasonUpstreamError)
		f.attempts(t, 3)
	})
	t.Run("slow hang-up is cut by the attempt timeout", func(t *testing.T) {
		f := newFixture(t, settings{attempt: 100 * time.Millisecond})
		f.px.toxic(t, toxic)
		_, _, err := f.c.do(t, http.MethodGet, f.px.url("/hangup"))
		wantReason(t, err, spillway.ReasonDeadlineExceeded)
		f.attempts(t, 3)
	})
}

// limit_data closes the connection after a number of bytes. Cut inside the
// headers, the attempt fails before a response exists and is retried. Cut
// inside the body, the response (status and headers) was already returned to
// the caller: the transport cannot take it back, so the caller's body read
// fails with io.ErrUnexpectedEOF and nothing is retried. Retrying a truncated
// body is the caller's decision, made with the whole request in hand.
func TestLimitData(t *testing.T) {
	t.Run("cut inside the headers is retried", func(t *testing.T) {
		f := newFixture(t, settings{}, toxiproxyLimitDataLeak...)
		f.px.toxic(t, `{"name":"limit","type":"limit_data","stream":"downstream","attributes":{"bytes":10}}`)
		_, _, err := f.c.do(t, http.MethodGet, f.px.url("/big"))
		wantReason(t, err, spillway.ReasonUpstreamError)
		f.attempts(t, 3)
	})
	t.Run("cut inside the body fails the caller's read", func(t *testing.T) {
		f := newFixture(t, settings{}, toxiproxyLimitDataLeak...)
		f.px.toxic(t, `{"name":"limit","type":"limit_data","stream":"downstream","attributes":{"bytes":4096}}`)
		resp, body, err := f.c.do(t, http.MethodGet, f.px.url("/big"))
		if resp == nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET = %v, %v; want the 200 response", resp, err)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("body read error = %v, want io.ErrUnexpectedEOF", err)
		}
		if len(body) == 0 || len(body) >= len(bigBody) {
			t.Errorf("read %d body bytes, want a truncated body", len(body))
		}
		f.attempts(t, 1)
	})
}

// During a total outage (the proxy refuses every connection) retries stay
// within the budget: attempts ≤ requests × (1 + ratio) + floor, plus the
// budget's documented slack of 15 × ratio. The breaker is disabled so that
// the budget alone bounds them. Attempts are counted at the dialer: with the
// proxy down, a connection attempt is what the downstream would have seen.
func TestOutageRetriesBoundedByBudget(t *testing.T) {
	const (
		requests = 300
		ratio    = 0.2
		floor    = 10 // MinPerSecond 1 over the 10s window
	)
	f := newFixture(t, settings{noBreaker: true, budget: retry.BudgetConfig{Ratio: ratio, MinPerSecond: 1}})
	f.px.Stop()

	exhausted := 0
	for range requests {
		_, _, err := f.c.do(t, http.MethodGet, f.px.url("/ok"))
		if err == nil {
			t.Fatal("request succeeded during the outage")
		}
		if spillway.ReasonOf(err) == spillway.ReasonBudgetExhausted {
			exhausted++
		}
	}
	attempts := f.c.base.attempts.Load()
	dials := f.c.base.dials.Load()
	limit := int64(requests*(1+ratio) + floor + 15*ratio)
	t.Logf("%d requests: %d attempts, %d dials, %d refused by the budget", requests, attempts, dials, exhausted)
	if dials != attempts {
		t.Errorf("dials %d != attempts %d: every attempt should dial the refused proxy", dials, attempts)
	}
	if attempts > limit {
		t.Errorf("%d attempts for %d requests, want at most %d", attempts, requests, limit)
	}
	if attempts <= requests {
		t.Errorf("%d attempts for %d requests: the budget's floor and ratio should allow some retries", attempts, requests)
	}
	if exhausted == 0 {
		t.Error("no request ended with budget_exhausted")
	}
	if got := f.up.attempts.Load(); got != 0 {
		t.Errorf("upstream saw %d requests during the outage", got)
	}
}

// The breaker opens during an outage and then rejects without any attempt;
// when the proxy comes back it half-opens after OpenFor, a probe succeeds and
// it closes.
func TestBreakerOpensAndRecovers(t *testing.T) {
	f := newFixture(t, settings{
		maxAttempts: 1,
		breaker:     breaker.Config{MinCalls: 5, WindowSize: 10, HalfOpenProbes: 1, OpenBackoff: 1},
	})
	f.px.Stop()

	var err error
	for i := 0; spillway.ReasonOf(err) != spillway.ReasonBreakerOpen; i++ {
		if i == 50 {
			t.Fatalf("breaker still closed after 50 failed requests: %+v", f.c.down.Breaker.Snapshot())
		}
		_, _, err = f.c.do(t, http.MethodGet, f.px.url("/ok"))
	}
	// Each rejected request made no attempt and dialled nothing. (On a slow
	// machine OpenFor may pass within these requests: the loop stops there.)
	for range 20 {
		attempts, dials := f.c.base.attempts.Load(), f.c.base.dials.Load()
		_, _, err := f.c.do(t, http.MethodGet, f.px.url("/ok"))
		if spillway.ReasonOf(err) != spillway.ReasonBreakerOpen {
			break
		}
		if !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("err = %v, want breaker.ErrOpen", err)
		}
		if a, d := f.c.base.attempts.Load(), f.c.base.dials.Load(); a != attempts || d != dials {
			t.Fatalf("rejected request made attempts %d→%d, dials %d→%d", attempts, a, dials, d)
		}
	}

	if err := f.px.Start(); err != nil {
		t.Fatalf("re-enable proxy on %s: %v", f.px.addr, err)
	}
	eventually(t, "a request to succeed after recovery", func() bool {
		resp, _, err := f.c.do(t, http.MethodGet, f.px.url("/ok"))
		return err == nil && resp.StatusCode == http.StatusOK
	})
	if s := f.c.down.Breaker.State(); s != breaker.Closed {
		t.Errorf("breaker %s after a successful probe, want closed", s)
	}
	if f.up.attempts.Load() == 0 {
		t.Error("upstream saw no request after recovery")
	}
}
