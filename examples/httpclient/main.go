// Command httpclient calls a flaky HTTP server through spillwayhttp.Transport
// and prints what the policies did. The server runs in-process on 127.0.0.1
// and follows a script: GET /orders/N answers 503 on its first N%3 attempts
// and then 200; a POST answers 503 to its first attempt, which is retried only
// with an Idempotency-Key; and the last requests meet an outage that opens the
// breaker.
//
//	go run ./examples/httpclient
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

func main() {
	orders := flag.Int("orders", 6, "GET requests before the outage")
	outage := flag.Int("outage", 5, "GET requests during the outage")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *orders, *outage); err != nil {
		fmt.Fprintln(os.Stderr, "httpclient:", err)
		os.Exit(1)
	}
}

// flaky is the scripted server. It counts the attempts of each path, the
// truth against which the client's view is printed.
type flaky struct {
	down atomic.Bool

	mu       sync.Mutex
	attempts map[string]int
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	f.attempts[key]++
	n := f.attempts[key]
	f.mu.Unlock()

	fails := 0
	if r.Method == http.MethodPost {
		fails = 1
	} else if id, ok := strings.CutPrefix(r.URL.Path, "/orders/"); ok {
		fails, _ = strconv.Atoi(id)
		fails %= 3
	}
	if f.down.Load() || n <= fails {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

func (f *flaky) attemptsOf(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[key]
}

// downstream returns the example's policies: the brief's shapes with short
// times, so that the program runs in a blink, and a breaker that judges the
// last 10 attempts and opens at 75 % failures — the flaky phase stays below,
// the outage trips it. Breaker transitions are printed to out.
func downstream(out io.Writer) (*spillwayhttp.Downstream, error) {
	br, err := breaker.New(breaker.Config{
		Name: "orders", MinCalls: 10, WindowSize: 10, FailureRate: 0.75, OpenFor: time.Minute,
		Observer: spillway.ObserverFunc(func(e spillway.Event) {
			if e.Kind == spillway.EventTransition {
				fmt.Fprintf(out, "  breaker %s -> %s\n", e.From, e.To)
			}
		}),
	})
	if err != nil {
		return nil, err
	}
	rp, err := retry.New(retry.Config{Name: "orders", Initial: time.Millisecond, Max: 10 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	bh, err := bulkhead.New(bulkhead.Config{Name: "orders", MaxConcurrent: 10})
	if err != nil {
		return nil, err
	}
	return &spillwayhttp.Downstream{
		Breaker:  br,
		Retry:    rp,
		Bulkhead: bh,
		Timeouts: spillwayhttp.Timeouts{Attempt: time.Second, Total: 5 * time.Second},
	}, nil
}

// run starts the flaky server, sends orders GET requests, two POSTs (without
// and with an Idempotency-Key), then outage GET requests while the server is
// down, printing each outcome beside the attempts the server saw, and stops
// everything.
func run(ctx context.Context, out io.Writer, orders, outage int) error {
	server := &flaky{attempts: make(map[string]int)}
	srv := httptest.NewServer(server)
	defer srv.Close()

	d, err := downstream(out)
	if err != nil {
		return err
	}
	tr, err := spillwayhttp.New(spillwayhttp.Config{
		NewDownstream: func(string, spillway.Observer) (*spillwayhttp.Downstream, error) { return d, nil },
	})
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	send := func(method, path, idempotencyKey string) error {
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(`{"sku":"b-42"}`))
		if err != nil {
			return err
		}
		if idempotencyKey != "" {
			req.Header.Set(spillwayhttp.IdempotencyKeyHeader, idempotencyKey)
		}
		label := method + " " + path
		if idempotencyKey != "" {
			label += " (Idempotency-Key)"
		}
		resp, err := client.Do(req)
		attempts := server.attemptsOf(method + " " + path)
		if err != nil {
			fmt.Fprintf(out, "%s: error %s, server attempts %d\n", label, spillway.ReasonOf(err), attempts)
			return ctx.Err()
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Fprintf(out, "%s: %s, server attempts %d\n", label, resp.Status, attempts)
		return nil
	}

	for i := 1; i <= orders; i++ {
		if err := send(http.MethodGet, "/orders/"+strconv.Itoa(i), ""); err != nil {
			return err
		}
	}
	if err := send(http.MethodPost, "/orders", ""); err != nil {
		return err
	}
	if err := send(http.MethodPost, "/orders/new", "k-1"); err != nil {
		return err
	}
	server.down.Store(true)
	for i := 1; i <= outage; i++ {
		if err := send(http.MethodGet, "/stock/"+strconv.Itoa(i), ""); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "breaker %s\n", d.Breaker.State())
	return nil
}
