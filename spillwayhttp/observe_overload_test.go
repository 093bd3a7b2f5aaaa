package spillwayhttp_test

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/internal/observetest"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/spillwayhttp"
	"github.com/spillway-dev/spillway/spillwayprom"
	"github.com/spillway-dev/spillway/throttle"
)

// hedgeHeader carries spillwayhttp.HedgeOf of an attempt to the server.
const hedgeHeader = "X-Test-Hedge"

// TestObserverInstrumentsTheOverloadPolicies is issue 16's one line: a
// custom NewDownstream that adds a rate limiter and a throttle as Guards
// and a hedging policy loses none of their events through the transport,
// and Config.Observer exports their gauges without a Register call.
func TestObserverInstrumentsTheOverloadPolicies(t *testing.T) {
	// The hedged GET's primary hangs until its hedge wins, and the hedge
	// answers only once the primary is at the server (past its guards):
	// the order in which they arrive, a matter of scheduling, does not
	// decide the race. Base tells them apart by HedgeOf.
	primaryIn := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		switch {
		case r.URL.Path == "/fail":
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.URL.Path == "/hang" && r.Header.Get(hedgeHeader) == "0":
			close(primaryIn)
			<-r.Context().Done()
		case r.URL.Path == "/hang":
			select {
			case <-primaryIn:
				io.WriteString(w, "ok")
			case <-r.Context().Done():
			}
		default:
			io.WriteString(w, "ok")
		}
	})
	base := spillwayhttp.NewBaseTransport(spillwayhttp.DefaultTimeouts)
	t.Cleanup(base.CloseIdleConnections)
	reg := prometheus.NewPedanticRegistry()
	metrics, err := spillwayprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	var rec observetest.Recorder
	var refuse atomic.Bool
	clock := spillway.NewManualClock(time.Second) // the bucket never refills
	tr := transport(t, spillwayhttp.Config{
		Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			r.Header.Set(hedgeHeader, strconv.Itoa(spillwayhttp.HedgeOf(r.Context())))
			return base.RoundTrip(r)
		}),
		Observer: spillway.Observers{metrics, &rec},
		NewDownstream: func(key string, obs spillway.Observer) (*spillwayhttp.Downstream, error) {
			d, err := spillwayhttp.DefaultDownstream(key, obs)
			if err != nil {
				return nil, err
			}
			d.Retry = nil
			d.Guards = []spillway.Guard{
				ratelimit.MustNew(ratelimit.Config{Name: key, Limit: 1, Burst: 4, Clock: clock, Observer: obs}),
				throttle.MustNew(throttle.Config{Name: key, Clock: clock, Observer: obs, Rand: func() float64 {
					if refuse.Load() {
						return 0
					}
					return 0.999
				}}),
			}
			d.Hedge = hedge.MustNew(hedge.Config{Name: key, Delay: time.Millisecond, Observer: obs})
			return d, nil
		},
	}, nil)
	c := &http.Client{Transport: tr}
	// Only the GET of /hang is hedged: a POST never is (Hedgeable). A GET
	// slower than the 1ms delay would send a hedge, which takes a token.
	post := func(path string) (*http.Response, error) {
		resp, err := c.Post(srv.URL+path, "", nil)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}

	// A 503 makes the throttle's probability 1/2; it refuses the next call.
	if resp, err := post("/fail"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/fail: %v", err)
	}
	refuse.Store(true)
	if _, err := post("/"); !errors.Is(err, throttle.ErrThrottled) {
		t.Fatalf("throttled call: %v", err)
	}
	refuse.Store(false)
	// A hedged GET takes the last two tokens; the next call is rate limited.
	if code, body := get(t, c, srv.URL+"/hang"); code != http.StatusOK || body != "ok" {
		t.Fatalf("hedged call: %d %q", code, body)
	}
	if _, err := post("/"); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("rate-limited call: %v", err)
	}

	rec.ExpectEvents(t, "http attempt ", "ratelimit rejection throttled", "throttle rejection throttled",
		"hedge hedge ", "hedge hedge_won ")
	key := srv.Listener.Addr().String()
	// The throttle's window: the 503, its refusal and the hedge's answer
	// (the primary, cut short, is not counted): (3 − 2·1) / (3 + 1).
	for _, c := range []struct {
		family string
		label  []string
		want   float64
	}{
		{"spillway_hedge_delay_seconds", nil, 0.001},
		{"spillway_hedges_total", []string{"outcome", "sent"}, 1},
		{"spillway_hedges_total", []string{"outcome", "won"}, 1},
		{"spillway_rate_limit_tokens", nil, 0},
		{"spillway_rejected_total", []string{"reason", "throttled"}, 2},
		{"spillway_throttle_rejection_probability", nil, 0.25},
	} {
		labels := append([]string{"name", key}, c.label...)
		if got := observetest.Value(t, reg, c.family, labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.family, labels, got, c.want)
		}
	}
}
