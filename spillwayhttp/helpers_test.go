package spillwayhttp_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is an httptest server on loopback that counts the attempts it
// serves and the connections it sees.
type server struct {
	*httptest.Server
	attempts atomic.Int64
	mu       sync.Mutex
	conns    map[net.Conn]http.ConnState
	opened   int
}

// newServer starts h behind an attempt counter; h gets the attempt's number
// (from 1).
func newServer(t testing.TB, h func(w http.ResponseWriter, r *http.Request, n int64)) *server {
	t.Helper()
	s := &server{conns: map[net.Conn]http.ConnState{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r, s.attempts.Add(1))
	}))
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if st == http.StateNew {
			s.opened++
		}
		s.conns[c] = st
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// open returns how many connections are neither idle nor closed.
func (s *server) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.conns {
		if st != http.StateIdle && st != http.StateClosed && st != http.StateHijacked {
			n++
		}
	}
	return n
}

func (s *server) closedAll() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.conns {
		if st != http.StateClosed {
			return false
		}
	}
	return true
}

func (s *server) newConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fastRetry is a retry policy whose backoff is a millisecond at most.
func fastRetry(t testing.TB, cfg retry.Config) *retry.Policy {
	t.Helper()
	if cfg.Initial == 0 {
		cfg.Initial = 100 * time.Microsecond
	}
	if cfg.Max == 0 {
		cfg.Max = time.Millisecond
	}
	return retry.MustNew(cfg)
}

// transport returns a Transport whose every downstream is ds (made by
// mk), closing its idle connections at the end of the test.
func transport(t testing.TB, cfg spillwayhttp.Config, ds *spillwayhttp.Downstream) *spillwayhttp.Transport {
	t.Helper()
	if ds != nil {
		cfg.NewDownstream = func(string, spillway.Observer) (*spillwayhttp.Downstream, error) { return ds, nil }
	}
	tr := spillwayhttp.MustNew(cfg)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// get sends a GET through c and returns the status and the whole body.
func get(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp.StatusCode, string(b)
}

func newBreaker(t testing.TB, cfg breaker.Config) *breaker.Breaker {
	t.Helper()
	return breaker.MustNew(cfg)
}

func newBulkhead(t testing.TB, cfg bulkhead.Config) *bulkhead.Bulkhead {
	t.Helper()
	return bulkhead.MustNew(cfg)
}
