package cookbook_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
	"github.com/spillway-dev/spillway/spillwayprom"
	"github.com/spillway-dev/spillway/spillwayslog"
)

// One Observer field instruments an HTTP client: every downstream the
// Transport makes reports its events to it (attempts, retries, rejections,
// breaker transitions) and has its breaker, bulkhead and retry budget
// registered for their gauges. spillway.Observers fans the events out to
// Prometheus metrics, slog lines (spillwayslog: a breaker's transition is a
// Warn line) and spillway.Hooks, which run a function on the decisions that
// call for action (here: an alert when a breaker opens).
func Example_observability() {
	orders := startCatalog() // recipe 1's server
	defer orders.Close()

	reg := prometheus.NewRegistry()
	metrics, err := spillwayprom.New(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: withoutTime}))
	hooks := &spillway.Hooks{
		OnOpen: func(e spillway.Event) { fmt.Printf("alert: the circuit of %s opened\n", e.Name) },
		OnRetry: func(e spillway.Event) {
			fmt.Printf("retrying %s after attempt %d: %v\n", e.Name, e.Attempt, e.Err)
		},
	}

	// Name the downstreams by service: their names label the metrics.
	services := map[string]string{orders.Listener.Addr().String(): "orders"}
	client := &http.Client{Transport: spillwayhttp.MustNew(spillwayhttp.Config{
		Key: func(r *http.Request) string {
			if s, ok := services[r.URL.Host]; ok {
				return s
			}
			return r.URL.Host // never "": a policy needs a name to be registered
		},
		Observer: spillway.Observers{metrics, spillwayslog.New(logger, spillwayslog.Options{}), hooks},
		NewDownstream: func(key string, obs spillway.Observer) (*spillwayhttp.Downstream, error) {
			d, err := spillwayhttp.DefaultDownstream(key, obs) // obs: the Observers above
			if err != nil {
				return nil, err
			}
			// Quicker than the defaults, for the example.
			if d.Retry, err = d.Retry.With(func(c *retry.Config) { c.Initial = time.Millisecond }); err != nil {
				return nil, err
			}
			return d, d.Breaker.Update(func(c *breaker.Config) { c.MinCalls, c.WindowSize = 4, 4 })
		},
	})}
	defer client.CloseIdleConnections()

	get := func(path string) {
		resp, err := client.Get(orders.URL + path)
		if err != nil {
			fmt.Printf("GET %s: error (%s)\n", path, spillway.ReasonOf(err))
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		fmt.Printf("GET %s: %d\n", path, resp.StatusCode)
	}
	orders.failNext.Store(2)
	get("/orders/1")
	orders.failNext.Store(1 << 20) // an outage
	get("/orders/2")
	get("/orders/3")

	// What /metrics serves: the series that are not 0, the histogram by its count.
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "spillway_") && !strings.HasSuffix(line, " 0\n") &&
			!strings.Contains(line, "_bucket") && !strings.Contains(line, "_sum") {
			fmt.Print(line)
		}
	}
	// Output:
	// retrying orders after attempt 1: spillwayhttp: response status 503 Service Unavailable
	// retrying orders after attempt 2: spillwayhttp: response status 503 Service Unavailable
	// GET /orders/1: 200
	// level=WARN msg="circuit breaker state changed" policy=breaker name=orders from=closed to=open
	// alert: the circuit of orders opened
	// retrying orders after attempt 1: spillwayhttp: response status 503 Service Unavailable
	// GET /orders/2: error (breaker_open)
	// GET /orders/3: error (breaker_open)
	// spillway_bulkhead_limit{name="orders"} 100
	// spillway_circuit_failure_rate{name="orders"} 0.75
	// spillway_circuit_state{name="orders",state="open"} 1
	// spillway_circuit_transitions_total{from="closed",name="orders",to="open"} 1
	// spillway_rejected_total{name="orders",reason="breaker_open"} 2
	// spillway_retries_total{name="orders"} 3
	// spillway_retry_budget_remaining{name="orders"} 97.6
	// spillway_upstream_attempt_duration_seconds_count{name="orders"} 4
	// spillway_upstream_attempts_total{name="orders",result="failure"} 3
	// spillway_upstream_attempts_total{name="orders",result="success"} 1
}

// withoutTime drops the time of slog lines, for a deterministic output.
func withoutTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		return slog.Attr{}
	}
	return a
}
