package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	fsbreaker "github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"

	"github.com/spillway-dev/spillway/spillwayhttp"
)

// The HTTP transport comparison: GET requests over keep-alive connections to
// an httptest server on loopback, through
//
//	bare         a tuned *http.Transport alone (spillwayhttp.NewBaseTransport)
//	spillway     spillwayhttp.Transport over the same base, every policy on:
//	             breaker, retry with its budget, bulkhead, connect/attempt/total
//	             timeouts (the defaults of the brief)
//	failsafe-go  failsafehttp.NewRoundTripper over the same base with a retry
//	             policy (failsafehttp's HTTP-aware builder), a circuit breaker
//	             and a bulkhead
//
// each serial and under b.RunParallel. The target: spillway's
// throughput ≥ 0.95× bare, and no allocation per request beyond bare's on the
// success path (a GET has no body to replay). Run with
//
//	go test -run='^$' -bench=HTTP -benchmem -count=6 . | tee http.txt
//	benchstat http.txt
//
// The ratio to bare is bare's sec/op divided by the contender's.

// httpBody is the answer of the benchmark server: small, so that the
// transports' own cost is not hidden behind copying.
var httpBody = []byte(`{"items":[1,2,3]}`)

func newHTTPServer(b *testing.B) *httptest.Server {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(httpBody)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// httpContenders returns the three round trippers, each over a base
// transport of its own so that none shares another's connection pool.
func httpContenders(b *testing.B) []struct {
	name string
	rt   func(b *testing.B) http.RoundTripper
} {
	return []struct {
		name string
		rt   func(b *testing.B) http.RoundTripper
	}{
		{"bare", func(b *testing.B) http.RoundTripper {
			return baseTransport(b)
		}},
		{"bare-cancelable", func(b *testing.B) http.RoundTripper {
			return cancelableRT{baseTransport(b)}
		}},
		{"spillway", func(b *testing.B) http.RoundTripper {
			t, err := spillwayhttp.New(spillwayhttp.Config{Base: baseTransport(b)})
			if err != nil {
				b.Fatal(err)
			}
			return t
		}},
		{"failsafe-go", func(b *testing.B) http.RoundTripper {
			rp := failsafehttp.NewRetryPolicyBuilder().
				WithMaxAttempts(3).
				WithBackoff(100*time.Millisecond, 5*time.Second).
				Build()
			cb := fsbreaker.NewBuilder[*http.Response]().
				HandleIf(func(r *http.Response, err error) bool {
					return err != nil || r.StatusCode >= 500 || r.StatusCode == 408 || r.StatusCode == 429
				}).
				WithFailureThresholdRatio(10, 20).
				WithDelay(30 * time.Second).
				Build()
			bh := fsbulkhead.New[*http.Response](100)
			return failsafehttp.NewRoundTripper(baseTransport(b), rp, cb, bh)
		}},
	}
}

// cancelableRT is the least any wrapper must do to cut an attempt short and
// tell the server its time budget without touching the caller's request: a
// cancelable context per request, a request copy with a cloned header, and a
// body that ends the context when closed. It is the floor that separates the
// cost of those mechanics from the cost of the policies.
type cancelableRT struct{ base http.RoundTripper }

func (c cancelableRT) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	out := req.WithContext(ctx)
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header, 1)
	}
	out.Header["Spillway-Timeout-Ms"] = timeoutHeaderValue
	resp, err := c.base.RoundTrip(out)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

var timeoutHeaderValue = []string{"5000"}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func baseTransport(b *testing.B) *http.Transport {
	t := spillwayhttp.NewBaseTransport(spillwayhttp.Timeouts{})
	b.Cleanup(t.CloseIdleConnections)
	return t
}

// roundTrip sends req through rt and reads and closes the body, as a caller
// that wants its connection reused does.
func roundTrip(rt http.RoundTripper, req *http.Request) error {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func BenchmarkHTTP(b *testing.B) {
	srv := newHTTPServer(b)
	for _, c := range httpContenders(b) {
		b.Run(c.name, func(b *testing.B) {
			rt := c.rt(b)
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/items", nil)
			if err != nil {
				b.Fatal(err)
			}
			// The first request opens the connection outside the measurement.
			if err := roundTrip(rt, req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := roundTrip(rt, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHTTPParallel(b *testing.B) {
	srv := newHTTPServer(b)
	for _, c := range httpContenders(b) {
		b.Run(c.name, func(b *testing.B) {
			rt := c.rt(b)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, err := http.NewRequest(http.MethodGet, srv.URL+"/items", nil)
				if err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					if err := roundTrip(rt, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
