package spillwayhttp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/hedge"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// hedgedTransport sends every request to a downstream that hedges after
// 10ms, with a breaker and a bulkhead of its own.
func hedgedTransport(t *testing.T) (*spillwayhttp.Transport, *hedge.Policy, *breaker.Breaker, *bulkhead.Bulkhead) {
	h := hedge.MustNew(hedge.Config{Delay: 10 * time.Millisecond})
	br := breaker.MustNew(breaker.Config{ConsecutiveFailures: 1})
	bh := bulkhead.MustNew(bulkhead.Config{MaxConcurrent: 4})
	tr := spillwayhttp.MustNew(spillwayhttp.Config{BulkheadSpansBody: true,
		NewDownstream: func(string, spillway.Observer) (*spillwayhttp.Downstream, error) {
			return &spillwayhttp.Downstream{Hedge: h, Breaker: br, Bulkhead: bh}, nil
		}})
	t.Cleanup(tr.CloseIdleConnections)
	return tr, h, br, bh
}

// TestASlowGETIsHedged: the first attempt hangs until it is cancelled; the
// hedge's response is returned, its body readable after the race, the primary's request
// cancelled, and neither the breaker nor the bulkhead keeps a trace of the
// loser.
func TestASlowGETIsHedged(t *testing.T) {
	primaryGone := make(chan error, 1)
	rest := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			<-r.Context().Done()
			primaryGone <- r.Context().Err()
			return
		}
		// The hedge's body comes in two parts, the second once the client
		// holds the response: the race is over by then.
		io.WriteString(w, "from ")
		w.(http.Flusher).Flush()
		select {
		case <-rest:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "the hedge")
	})
	tr, h, br, bh := hedgedTransport(t)
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	close(rest)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "from the hedge" {
		t.Fatalf("body %q, %v; want the hedge's", b, err)
	}
	if err := <-primaryGone; !errors.Is(err, context.Canceled) {
		t.Errorf("the primary's request ended with %v, want cancelled", err)
	}
	if h.Sent() != 1 || h.Won() != 1 {
		t.Errorf("hedges sent %d, won %d; want 1, 1", h.Sent(), h.Won())
	}
	if br.State() != breaker.Closed {
		t.Errorf("breaker %v: the lost race counted as a failure", br.State())
	}
	deadline := time.Now().Add(5 * time.Second)
	for bh.InFlight() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if bh.InFlight() != 0 {
		t.Errorf("%d bulkhead slots still held", bh.InFlight())
	}
}

// TestAPOSTIsNeverHedged: a slow POST is sent once, whatever the delay.
func TestAPOSTIsNeverHedged(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		time.Sleep(50 * time.Millisecond) // the slow downstream
		io.WriteString(w, "done")
	})
	tr, h, _, _ := hedgedTransport(t)
	resp, err := (&http.Client{Transport: tr}).Post(srv.URL, "text/plain", bytes.NewReader([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if srv.attempts.Load() != 1 || h.Sent() != 0 {
		t.Fatalf("%d requests reached the server, %d hedges sent; want 1 and none", srv.attempts.Load(), h.Sent())
	}
}

func TestHedgeable(t *testing.T) {
	for m, want := range map[string]bool{"GET": true, "HEAD": true, "OPTIONS": true, "": true, "PUT": false, "DELETE": false, "POST": false} {
		if got := spillwayhttp.Hedgeable(&http.Request{Method: m}); got != want {
			t.Errorf("Hedgeable(%s) = %v, want %v", m, got, want)
		}
	}
}
