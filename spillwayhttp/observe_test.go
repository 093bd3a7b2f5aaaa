package spillwayhttp_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/internal/observetest"
	"github.com/spillway-dev/spillway/spillwayhttp"
	"github.com/spillway-dev/spillway/spillwayprom"
)

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
	var rec observetest.Recorder
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

	rec.Expect(t, "http")
	observetest.ExpectGauges(t, reg, srv.Listener.Addr().String())
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

// A Key that returns "" (a lookup that missed) names the downstream by the
// host, as the default Key does: the policies and gauges always have a name,
// so a registering Observer does not fail the request.
func TestEmptyKeyIsTheHost(t *testing.T) {
	srv := newServer(t, func(http.ResponseWriter, *http.Request, int64) {})
	metrics, err := spillwayprom.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]string{"catalog.internal": "catalog"}
	tr := transport(t, spillwayhttp.Config{Observer: metrics,
		Key: func(r *http.Request) string { return services[r.URL.Hostname()] }}, nil)
	if code, _ := get(t, &http.Client{Transport: tr}, srv.URL); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if _, ok := tr.Downstream(host); !ok {
		t.Fatalf("downstreams %v, want one keyed %q", tr.Downstreams(), host)
	}
}
