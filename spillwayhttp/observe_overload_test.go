package spillwayhttp_test

import (
	"errors"
	"io"
	"net/http"
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
