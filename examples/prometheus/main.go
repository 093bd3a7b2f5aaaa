// Command prometheus sends a few HTTP requests a second through a
// spillwayhttp.Transport to a simulated downstream that fails now and then
// and has an outage in the middle of the run, and exposes the policies'
// metrics for Prometheus on /metrics (spillwayprom, the brief's metric names
// with a name label). One field instruments the client: the Transport's
// Config.Observer reaches every downstream's policies and registers their
// gauges as the downstream is made.
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
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
	"github.com/spillway-dev/spillway/spillwayprom"
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

// downstream simulates a dependency as an http.RoundTripper: every fourth
// request gets a 503, and every request does while down is set.
type downstream struct {
	calls atomic.Int64
	down  atomic.Bool
}

func (d *downstream) RoundTrip(req *http.Request) (*http.Response, error) {
	code := http.StatusOK
	if n := d.calls.Add(1); d.down.Load() || n%4 == 0 {
		code = http.StatusServiceUnavailable
	}
	return &http.Response{StatusCode: code, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

// policies is the Transport's NewDownstream: the default policies of key,
// reporting to obs (the Transport's Observer), with a breaker and retries
// sized for a short run and 10 concurrent calls.
func policies(key string, obs spillway.Observer) (*spillwayhttp.Downstream, error) {
	d, err := spillwayhttp.DefaultDownstream(key, obs)
	if err != nil {
		return nil, err
	}
	if d.Breaker, err = breaker.New(breaker.Config{Name: key, MinCalls: 10, WindowSize: 20, OpenFor: 500 * time.Millisecond, Observer: obs}); err != nil {
		return nil, err
	}
	if d.Retry, err = retry.New(retry.Config{Name: key, Initial: time.Millisecond, Max: 10 * time.Millisecond, Observer: obs}); err != nil {
		return nil, err
	}
	d.Timeouts.Attempt = 100 * time.Millisecond
	return d, d.Bulkhead.Resize(10, 0)
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

	var d downstream
	// The one line that instruments the client: Observer.
	tr, err := spillwayhttp.New(spillwayhttp.Config{
		Base:          &d,
		Key:           func(*http.Request) string { return name },
		NewDownstream: policies,
		Observer:      obs,
	})
	if err != nil {
		return err
	}
	client := &http.Client{Transport: tr}

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
		switch code, err := get(ctx, client); {
		case err == nil && code == http.StatusOK:
			ok++
		case spillway.IsRejection(err):
			rejected++
		default:
			failed++
		}
	}

	fmt.Fprintf(out, "calls: %d ok, %d failed, %d rejected without calling\n", ok, failed, rejected)
	ds, _ := tr.Downstream(name)
	fmt.Fprintf(out, "downstream calls: %d; breaker transitions: %d; breaker now %s\n", d.calls.Load(), transitions.Load(), ds.Breaker.State())

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

// get sends one request to the downstream and returns its status: a 503
// after the retries left, or an error (a rejection without calling).
func get(ctx context.Context, client *http.Client) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+name+"/items", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
