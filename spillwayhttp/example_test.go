package spillwayhttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// flakyServer answers 503 to its first request and 200 afterwards.
func flakyServer() *httptest.Server {
	var n atomic.Int64
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "catalog")
	}))
}

// The README's client: the brief's policies per host, in one line.
func Example() {
	flaky := flakyServer()
	defer flaky.Close()

	client := &http.Client{Transport: spillwayhttp.MustNew(spillwayhttp.Config{})}
	defer client.CloseIdleConnections()
	resp, err := client.Get(flaky.URL) // the 503 is retried
	if err != nil {
		log.Fatalf("catalog failed: %s", spillway.ReasonOf(err)) // breaker_open, deadline_exceeded, ...
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}

// Each downstream can get policies of its own: here a tighter breaker and
// timeouts for one host, and the defaults for the others.
func ExampleConfig_newDownstream() {
	flaky := flakyServer()
	defer flaky.Close()
	slowHost := "reports.internal:443"

	tr := spillwayhttp.MustNew(spillwayhttp.Config{
		NewDownstream: func(key string, obs spillway.Observer) (*spillwayhttp.Downstream, error) {
			if key != slowHost {
				return spillwayhttp.DefaultDownstream(key, obs)
			}
			return &spillwayhttp.Downstream{
				Breaker:  breaker.MustNew(breaker.Config{Name: key, MinCalls: 10, Observer: obs}),
				Retry:    retry.MustNew(retry.Config{Name: key, MaxAttempts: 2, Observer: obs}),
				Bulkhead: bulkhead.MustNew(bulkhead.Config{Name: key, MaxConcurrent: 10, Observer: obs}),
				Timeouts: spillwayhttp.Timeouts{Attempt: 20 * time.Second, Total: time.Minute},
			}, nil
		},
	})
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(flaky.URL)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	ds, _ := tr.Downstream(flaky.Listener.Addr().String())
	fmt.Println(resp.StatusCode, ds.Breaker.State())
	// Output: 200 closed
}

// A server honours its clients' time budget, up to 10 seconds of its own.
func ExampleDeadline() {
	h := spillwayhttp.Deadline(10*time.Second, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dl, _ := r.Context().Deadline()
		fmt.Println("budget at most 1.5s:", time.Until(dl) <= 1500*time.Millisecond)
	}))
	req := httptest.NewRequest(http.MethodGet, "/orders", nil)
	req.Header.Set(spillwayhttp.TimeoutHeader, "1500")
	h.ServeHTTP(httptest.NewRecorder(), req)
	// Output: budget at most 1.5s: true
}

// A server sheds the load beyond what its bulkhead admits (one request
// here, to show a refusal).
func ExampleProtect() {
	bh := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 1})
	h := spillwayhttp.Protect(bh, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}), spillwayhttp.ProtectName("checkout"))

	p, _ := bh.TryAcquire() // another request holds the only slot
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	p.Release(nil)

	fmt.Println(rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Spillway-Reason"))
	fmt.Println(rec.Body)
	// Output:
	// 503 1 bulkhead_full
	// {"error":{"reason":"bulkhead_full","upstream":"checkout","message":"too many concurrent requests","retry_after_seconds":1}}
}

// A gateway answers for a failed upstream call.
func ExampleWriteError() {
	br := breaker.MustNew(breaker.Config{Name: "catalog"})
	br.ForceOpen()
	_, err := br.Acquire(context.Background())
	rec := httptest.NewRecorder()
	spillwayhttp.WriteError(rec, err, "catalog")
	fmt.Println(rec.Code, rec.Header().Get(spillwayhttp.ReasonHeader))
	rec.Body.WriteTo(os.Stdout)
	// Output:
	// 503 breaker_open
	// {"error":{"reason":"breaker_open","upstream":"catalog","message":"the circuit breaker is open: the upstream is failing"}}
}

// A 503 that outlived the retries comes back as a response, not an error:
// ReasonOf and ErrorOf say why the Transport stopped retrying it.
func ExampleReasonOf() {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	tr := spillwayhttp.MustNew(spillwayhttp.Config{
		NewDownstream: func(key string, obs spillway.Observer) (*spillwayhttp.Downstream, error) {
			rp, err := retry.New(retry.Config{Name: key, Initial: time.Millisecond, Observer: obs})
			return &spillwayhttp.Downstream{Retry: rp}, err
		},
	})
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(down.URL)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, spillwayhttp.ReasonOf(resp), errors.Is(spillwayhttp.ErrorOf(resp), retry.ErrExhausted))
	// Output: 503 upstream_error true
}
