// Command prometheus runs a few calls a second through Spillway's policies
// against a simulated downstream that fails now and then and has an outage in
// the middle of the run, and exposes the policies' metrics for Prometheus on
// /metrics (spillwayprom, the brief's metric names with a name label).
//
//	go run ./examples/prometheus -addr 127.0.0.1:9464 -duration 60s
//	curl -s 127.0.0.1:9464/metrics | grep spillway_
//
// It exits after -duration or on Ctrl-C, and prints what the policies did.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayprom"
	"github.com/spillway-dev/spillway/timeout"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:0", "address of the /metrics listener (port 0: any free port)")
	flag.DurationVar(&cfg.duration, "duration", 30*time.Second, "how long to drive load before exiting")
	flag.DurationVar(&cfg.interval, "interval", 20*time.Millisecond, "time between two calls")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "prometheus:", err)
		os.Exit(1)
	}
}

type config struct {
	addr     string        // listen address of /metrics
	duration time.Duration // how long to drive load
	interval time.Duration // time between two calls
}

// name is the downstream's name: the name label of every series.
const name = "inventory"

// errUnavailable is the simulated downstream's failure.
var errUnavailable = errors.New("inventory unavailable")

// downstream simulates a dependency: every fourth call fails, and every call
// fails while down is set.
type downstream struct {
	calls atomic.Int64
	down  atomic.Bool
}

func (d *downstream) call(context.Context) (int, error) {
	n := d.calls.Add(1)
	if d.down.Load() || n%4 == 0 {
		return 0, errUnavailable
	}
	return 42, nil
}

// run serves /metrics on cfg.addr, prints its URL, drives calls through the
// policies until cfg.duration has passed or ctx is done, with an outage in
// the middle third of the run, then prints a summary and shuts the listener
// down.
func run(ctx context.Context, out io.Writer, cfg config) error {
	if cfg.interval <= 0 {
		cfg.interval = 20 * time.Millisecond
	}
	reg := prometheus.NewRegistry()
	metrics, err := spillwayprom.New(reg)
	if err != nil {
		return err
	}
	var transitions atomic.Int64
	obs := spillway.Observers{metrics, spillway.ObserverFunc(func(e spillway.Event) {
		if e.Kind == spillway.EventTransition {
			transitions.Add(1)
		}
	})}

	br, err := breaker.New(breaker.Config{Name: name, MinCalls: 10, WindowSize: 20, OpenFor: 500 * time.Millisecond, Observer: obs})
	if err != nil {
		return err
	}
	bh, err := bulkhead.New(bulkhead.Config{Name: name, MaxConcurrent: 10, Observer: obs})
	if err != nil {
		return err
	}
	budget, err := retry.NewBudget(retry.BudgetConfig{})
	if err != nil {
		return err
	}
	rp, err := retry.New(retry.Config{Name: name, Initial: time.Millisecond, Max: 10 * time.Millisecond, Budget: budget, Observer: obs})
	if err != nil {
		return err
	}
	attempt, err := timeout.New(timeout.Config{Name: name, Duration: 100 * time.Millisecond, Observer: obs})
	if err != nil {
		return err
	}
	metrics.RegisterBreaker(br)
	metrics.RegisterBulkhead(name, bh)
	metrics.RegisterBudget(name, budget)
	pipeline := spillway.MustNewPipeline(spillway.Policies[int]{
		Retry:    rp,
		Guards:   []spillway.Guard{br, bh},
		Attempt:  attempt,
		Observer: obs,
		Name:     name,
	})

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(out, "metrics on http://%s/metrics\n", ln.Addr())

	var d downstream
	var ok, failed, rejected int
	start := time.Now()
	tick := time.NewTicker(cfg.interval)
	defer tick.Stop()
	for time.Since(start) < cfg.duration {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		elapsed := time.Since(start)
		d.down.Store(elapsed > cfg.duration/3 && elapsed < 2*cfg.duration/3)
		_, err := pipeline.Execute(ctx, d.call)
		switch {
		case err == nil:
			ok++
		case spillway.IsRejection(err):
			rejected++
		default:
			failed++
		}
	}

	fmt.Fprintf(out, "calls: %d ok, %d failed, %d rejected without calling\n", ok, failed, rejected)
	fmt.Fprintf(out, "downstream calls: %d; breaker transitions: %d; breaker now %s\n", d.calls.Load(), transitions.Load(), br.State())

	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
