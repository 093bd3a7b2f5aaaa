package spillwayprom_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/spillwayprom"
)

// Metrics exposed for Prometheus: one Metrics observes the policies of the
// downstream "catalog", exports their gauges, and a promhttp handler serves
// it. Here the handler runs on a loopback test server and the example prints
// the circuit breaker's series after the breaker tripped.
func ExampleNew() {
	reg := prometheus.NewRegistry()
	metrics, err := spillwayprom.New(reg)
	if err != nil {
		panic(err)
	}

	br := breaker.MustNew(breaker.Config{Name: "catalog", MinCalls: 2, WindowSize: 2, Observer: metrics})
	bh := bulkhead.MustNew(bulkhead.Config{Name: "catalog", MaxConcurrent: 10, Observer: metrics})
	if err := metrics.Register(br, bh); err != nil {
		panic(err)
	}
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Breaker: br, Bulkhead: bh})

	for range 3 {
		_ = pl.Run(context.Background(), func(context.Context) error { return errors.New("catalog is down") })
	}

	// In a program: http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})).
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if line := lines.Text(); strings.HasPrefix(line, "spillway_circuit_") || strings.HasPrefix(line, "spillway_rejected") {
			fmt.Println(line)
		}
	}
	// Output:
	// spillway_circuit_failure_rate{name="catalog"} 1
	// spillway_circuit_state{name="catalog",state="closed"} 0
	// spillway_circuit_state{name="catalog",state="disabled"} 0
	// spillway_circuit_state{name="catalog",state="forced_open"} 0
	// spillway_circuit_state{name="catalog",state="half_open"} 0
	// spillway_circuit_state{name="catalog",state="metrics_only"} 0
	// spillway_circuit_state{name="catalog",state="open"} 1
	// spillway_circuit_transitions_total{from="closed",name="catalog",to="open"} 1
	// spillway_rejected_total{name="catalog",reason="breaker_open"} 1
}
