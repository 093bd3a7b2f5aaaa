package spillwayhttp_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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

// memBase answers every request from memory: the Transport's own cost,
// without the network's.
type memBase struct{}

func (memBase) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, ContentLength: 2,
		Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
}

// BenchmarkTransportOverhead is a GET through every default policy to a
// base that answers from memory, body read to its end: what the policies,
// the attempt's context and its timer cost per request.
func BenchmarkTransportOverhead(b *testing.B) {
	tr := spillwayhttp.MustNew(spillwayhttp.Config{Base: memBase{}})
	req, _ := http.NewRequest(http.MethodGet, "http://mem.test/", nil)
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		resp.Body.Close()
	}
}
