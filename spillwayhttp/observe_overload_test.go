package spillwayhttp_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/internal/observetest"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/spillwayhttp"
	"github.com/spillway-dev/spillway/spillwayprom"
	"github.com/spillway-dev/spillway/throttle"
)

// TestObserverInstrumentsTheOverloadPolicies is issue 16's one line: a
// custom NewDownstream that adds a rate limiter and a throttle as Guards
// and a hedging policy loses none of their events through the transport,
// and Config.Observer exports their gauges without a Register call.
func TestObserverInstrumentsTheOverloadPolicies(t *testing.T) {
	var hung atomic.Bool
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		switch {
		case r.URL.Path == "/fail":
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.URL.Path == "/hang" && hung.CompareAndSwap(false, true):
			<-r.Context().Done() // the primary, until its hedge wins
		default:
			io.WriteString(w, "ok")
		}
	})
	reg := prometheus.NewPedanticRegistry()
	metrics, err := spillwayprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	var rec observetest.Recorder
	var refuse atomic.Bool
	clock := spillway.NewManualClock(time.Second) // the bucket never refills
	tr := transport(t, spillwayhttp.Config{
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

	// A 503 makes the throttle's probability 1/2; it refuses the next call.
	if code, _ := get(t, c, srv.URL+"/fail"); code != http.StatusServiceUnavailable {
		t.Fatalf("/fail: %d", code)
	}
	refuse.Store(true)
	if _, err := c.Get(srv.URL); !errors.Is(err, throttle.ErrThrottled) {
		t.Fatalf("throttled call: %v", err)
	}
	refuse.Store(false)
	// A hedged GET takes the last two tokens; the next call is rate limited.
	if code, body := get(t, c, srv.URL+"/hang"); code != http.StatusOK || body != "ok" {
		t.Fatalf("hedged call: %d %q", code, body)
	}
	if _, err := c.Get(srv.URL); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("rate-limited call: %v", err)
	}

	rec.ExpectEvents(t, "http attempt ", "ratelimit rejection throttled", "throttle rejection throttled",
		"hedge hedge ", "hedge hedge_won ")
	key := srv.Listener.Addr().String()
	want := `
# HELP spillway_hedge_delay_seconds The delay after which the hedging policy hedges an unanswered attempt (absent until it has one).
# TYPE spillway_hedge_delay_seconds gauge
spillway_hedge_delay_seconds{name="KEY"} 0.001
# HELP spillway_hedges_total Hedges of slow attempts, by outcome: sent, won (answered first).
# TYPE spillway_hedges_total counter
spillway_hedges_total{name="KEY",outcome="sent"} 1
spillway_hedges_total{name="KEY",outcome="won"} 1
# HELP spillway_rate_limit_tokens Tokens the rate limiter's bucket holds now (negative while callers wait for tokens to come).
# TYPE spillway_rate_limit_tokens gauge
spillway_rate_limit_tokens{name="KEY"} 0
# HELP spillway_rejected_total Calls refused by a policy before the downstream was called, by reason.
# TYPE spillway_rejected_total counter
spillway_rejected_total{name="KEY",reason="throttled"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(strings.ReplaceAll(want, "KEY", key)),
		"spillway_hedge_delay_seconds", "spillway_hedges_total", "spillway_rate_limit_tokens", "spillway_rejected_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "spillway_throttle_rejection_probability"); err != nil || n != 1 {
		t.Errorf("%d throttle series (%v), want 1", n, err)
	}
}
