package spillwayhttp_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/spillwayhttp"
	"github.com/spillway-dev/spillway/spillwayprom"
)

// recorder keeps the (policy, kind) of every event it observes.
type recorder struct {
	mu     sync.Mutex
	events map[string]int
}

func (r *recorder) Observe(e spillway.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		r.events = map[string]int{}
	}
	r.events[e.Policy+" "+e.Kind.String()+" "+string(e.Reason)]++
}

func (r *recorder) count(what string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[what]
}

// TestObserverInstrumentsACustomDownstream is the one line of issue 11
// item 1: Config.Observer reaches the policies of a custom NewDownstream
// that adjusts DefaultDownstream's, and their gauges are exported without a
// Register call.
func TestObserverInstrumentsACustomDownstream(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	reg := prometheus.NewPedanticRegistry()
	metrics, err := spillwayprom.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	tr := transport(t, spillwayhttp.Config{
		Observer:          spillway.Observers{metrics, &rec},
		BulkheadSpansBody: true,
		NewDownstream: func(key string, obs spillway.Observer) (*spillwayhttp.Downstream, error) {
			d, err := spillwayhttp.DefaultDownstream(key, obs)
			if err != nil {
				return nil, err
			}
			d.Breaker, err = breaker.New(breaker.Config{Name: key, WindowSize: 2, MinCalls: 2, Observer: obs})
			if err != nil {
				return nil, err
			}
			return d, d.Bulkhead.Resize(1, 0)
		},
	}, nil)
	c := &http.Client{Transport: tr}

	// A body held open keeps the one bulkhead slot: the next call is refused.
	held, err := c.Get(srv.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(srv.URL + "/ok"); spillway.ReasonOf(err) != spillway.ReasonBulkheadFull {
		t.Fatalf("second call: %v, want bulkhead_full", err)
	}
	_, _ = io.Copy(io.Discard, held.Body)
	held.Body.Close()
	// Two failed attempts open the breaker, which refuses the third.
	if _, err := c.Get(srv.URL + "/fail"); spillway.ReasonOf(err) != spillway.ReasonBreakerOpen {
		t.Fatalf("failing call: %v, want breaker_open", err)
	}

	for _, want := range []string{"http attempt ", "bulkhead rejection bulkhead_full", "retry retry ",
		"breaker transition ", "breaker rejection breaker_open"} {
		if rec.count(want) == 0 {
			t.Errorf("no %q event", want)
		}
	}
	key := srv.Listener.Addr().String()
	want := `
# HELP spillway_bulkhead_limit Concurrent calls the bulkhead admits.
# TYPE spillway_bulkhead_limit gauge
spillway_bulkhead_limit{name="` + key + `"} 1
# HELP spillway_circuit_state Circuit breaker state: 1 for the current state, 0 for the others.
# TYPE spillway_circuit_state gauge
spillway_circuit_state{name="` + key + `",state="closed"} 0
spillway_circuit_state{name="` + key + `",state="disabled"} 0
spillway_circuit_state{name="` + key + `",state="forced_open"} 0
spillway_circuit_state{name="` + key + `",state="half_open"} 0
spillway_circuit_state{name="` + key + `",state="metrics_only"} 0
spillway_circuit_state{name="` + key + `",state="open"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "spillway_bulkhead_limit", "spillway_circuit_state"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(metrics, "spillway_retry_budget_remaining"); n != 1 {
		t.Errorf("%d retry budget series, want 1", n)
	}
}

// Two Transports that each make their own policies under one name cannot
// both export them: the second one's registration fails its request, rather
// than its gauges silently replacing or hiding the first one's.
func TestObserverRegistrationConflictFailsTheRequest(t *testing.T) {
	srv := newServer(t, func(http.ResponseWriter, *http.Request, int64) {})
	metrics, err := spillwayprom.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	first := &http.Client{Transport: transport(t, spillwayhttp.Config{Observer: metrics}, nil)}
	second := &http.Client{Transport: transport(t, spillwayhttp.Config{Observer: metrics}, nil)}
	if code, _ := get(t, first, srv.URL); code != http.StatusOK {
		t.Fatalf("first transport: %d", code)
	}
	_, err = second.Get(srv.URL)
	if err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("second transport: %v, want the registration's error", err)
	}
}
