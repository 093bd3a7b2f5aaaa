package cookbook_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// An HTTP client whose requests go through spillwayhttp's Transport: each
// host gets its policies on its first request, from NewDownstream. The
// catalog keeps the defaults (with short backoffs for the example); payments
// gets tighter ones: two attempts, a breaker that judges from 4 calls,
// shorter time limits. Idempotent requests are retried, a POST is not; a 5xx
// that survives the retries is returned as a response, and ErrorOf says why;
// a dead host opens its breaker, whose rejections are errors with the reason
// breaker_open, while the catalog's, which judges from 20 calls, stays closed.
func Example_httpClient() {
	catalog := startCatalog()
	defer catalog.Close()
	payments := httptest.NewServer(http.NotFoundHandler())
	payments.Close() // a dead host: every connection is refused
	// The Transport's key for payments: its URL's host:port.
	paymentsHost := payments.Listener.Addr().String()

	tr := spillwayhttp.MustNew(spillwayhttp.Config{
		NewDownstream: func(key string, obs spillway.Observer) (*spillwayhttp.Downstream, error) {
			d, err := spillwayhttp.DefaultDownstream(key, obs) // the brief's policies, named key
			if err != nil {
				return nil, err
			}
			// Short backoffs for the example; keep the default 100ms in production.
			if d.Retry, err = d.Retry.With(func(c *retry.Config) { c.Initial = time.Millisecond }); err != nil {
				return nil, err
			}
			if key == paymentsHost { // tighter: fewer attempts, a breaker that judges sooner, shorter limits
				if d.Retry, err = d.Retry.With(func(c *retry.Config) { c.MaxAttempts = 2 }); err != nil {
					return nil, err
				}
				if err := d.Breaker.Update(func(c *breaker.Config) { c.MinCalls, c.WindowSize = 4, 10 }); err != nil {
					return nil, err
				}
				d.Timeouts.Attempt, d.Timeouts.Total = time.Second, 3*time.Second
			}
			return d, nil
		},
	})
	client := &http.Client{Transport: tr}
	defer client.CloseIdleConnections()

	send := func(method, url string) {
		before := catalog.calls.Load()
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			// No response: a transport error after the retries, or a rejection.
			fmt.Printf("%s %s: error (%s)\n", method, req.URL.Path, spillway.ReasonOf(err))
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		fmt.Printf("%s %s: %d, server calls %d", method, req.URL.Path, resp.StatusCode, catalog.calls.Load()-before)
		if err := spillwayhttp.ErrorOf(resp); err != nil {
			// A failing response: why it came back instead of being retried.
			fmt.Printf(" (%s, retries exhausted: %t)", spillwayhttp.ReasonOf(resp), errors.Is(err, retry.ErrExhausted))
		}
		fmt.Println()
	}

	catalog.failNext.Store(2) // two transient failures: retried
	send(http.MethodGet, catalog.URL+"/lamps")
	catalog.failNext.Store(1 << 20) // an outage
	send(http.MethodGet, catalog.URL+"/chairs")
	send(http.MethodPost, catalog.URL+"/orders") // not idempotent: never retried
	for range 3 {
		send(http.MethodGet, payments.URL+"/balance")
	}
	cat, _ := tr.Downstream(catalog.Listener.Addr().String())
	pay, _ := tr.Downstream(paymentsHost)
	fmt.Println("breakers: catalog", cat.Breaker.State(), "payments", pay.Breaker.State())
	// Output:
	// GET /lamps: 200, server calls 3
	// GET /chairs: 503, server calls 3 (upstream_error, retries exhausted: true)
	// POST /orders: 503, server calls 1 (upstream_error, retries exhausted: false)
	// GET /balance: error (upstream_error)
	// GET /balance: error (upstream_error)
	// GET /balance: error (breaker_open)
	// breakers: catalog closed payments open
}

// catalog is the example's HTTP server: it fails the next failNext requests
// with 503 and answers the others.
type catalog struct {
	*httptest.Server
	failNext, calls atomic.Int64
}

func startCatalog() *catalog {
	c := &catalog{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.calls.Add(1)
		if c.failNext.Add(-1) >= 0 {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		c.failNext.Store(0)
		_, _ = io.WriteString(w, "ok")
	}))
	return c
}
