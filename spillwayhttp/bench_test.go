package spillwayhttp_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/spillway-dev/spillway/spillwayhttp"
)

// benchGet sends GETs through rt to a loopback server answering "ok".
func benchGet(b *testing.B, rt http.RoundTripper) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer s.Close()
	c := &http.Client{Transport: rt}
	defer c.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := c.Get(s.URL)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkBareTransport is the floor: the tuned base transport alone.
func BenchmarkBareTransport(b *testing.B) {
	benchGet(b, spillwayhttp.NewBaseTransport(spillwayhttp.DefaultTimeouts))
}

// BenchmarkTransport is a GET through every default policy: breaker, retry
// with budget, bulkhead, attempt and total timeouts, body idle timer and the
// deadline header.
func BenchmarkTransport(b *testing.B) {
	benchGet(b, spillwayhttp.MustNew(spillwayhttp.Config{}))
}

// BenchmarkTransportParallel is BenchmarkTransport from GOMAXPROCS
// goroutines at once.
func BenchmarkTransportParallel(b *testing.B) {
	benchParallel(b, spillwayhttp.MustNew(spillwayhttp.Config{}))
}

// BenchmarkBareTransportParallel is the floor of BenchmarkTransportParallel.
func BenchmarkBareTransportParallel(b *testing.B) {
	benchParallel(b, spillwayhttp.NewBaseTransport(spillwayhttp.DefaultTimeouts))
}

func benchParallel(b *testing.B, rt http.RoundTripper) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer s.Close()
	c := &http.Client{Transport: rt}
	defer c.CloseIdleConnections()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(s.URL)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
