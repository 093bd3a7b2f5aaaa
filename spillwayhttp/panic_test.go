package spillwayhttp_test

import (
	"errors"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// panicky panics on its first RoundTrip and answers 200 after.
type panicky struct{ calls int }

func (p *panicky) RoundTrip(r *http.Request) (*http.Response, error) {
	p.calls++
	if p.calls == 1 {
		panic("base transport bug")
	}
	return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

// TestPanickingBaseReleasesItsPermits: a Base that panics releases the
// attempt's bulkhead slot and the breaker's half-open probe before the panic
// goes on (issue 10: with a bulkhead of 1, every later request answered
// bulkhead_full, and the only probe was held for good).
func TestPanickingBaseReleasesItsPermits(t *testing.T) {
	clock := spillway.NewManualClock(0)
	br := newBreaker(t, breaker.Config{Name: "d", ConsecutiveFailures: 1, OpenFor: time.Second, MaxOpenFor: time.Second,
		HalfOpenProbes: 1, ProbeTimeout: time.Hour, Clock: clock})
	bh := newBulkhead(t, bulkhead.Config{Name: "d", MaxConcurrent: 1})
	// Trip the breaker and let it turn half-open: the next call is its
	// only probe.
	p, err := br.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	p.Release(errors.New("down"))
	clock.Advance(2 * time.Second)
	if s := br.State(); s != breaker.HalfOpen {
		t.Fatalf("breaker %v, want half_open", s)
	}

	base := &panicky{}
	tr := transport(t, spillwayhttp.Config{Base: base}, &spillwayhttp.Downstream{Breaker: br, Bulkhead: bh})
	req, _ := http.NewRequest(http.MethodGet, "http://d.test/", nil)
	func() {
		defer func() {
			if r := recover(); r != "base transport bug" {
				t.Fatalf("recovered %v, want the base's panic to go on", r)
			}
		}()
		_, _ = tr.RoundTrip(req)
	}()
	if n := bh.InFlight(); n != 0 {
		t.Errorf("after the panic the bulkhead holds %d slots, want 0", n)
	}
	// The probe was released as a failure (a panic is one, as in the root
	// Pipeline): the breaker opened again, and admits a new probe once its
	// open time has passed — a leaked probe would keep it shut.
	clock.Advance(2 * time.Second)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("the request after the panic: %v (the probe or the slot leaked)", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
}

// TestGoexitInBaseReleasesItsPermits: a Base that calls runtime.Goexit
// releases the attempt's bulkhead slot as a panic does.
func TestGoexitInBaseReleasesItsPermits(t *testing.T) {
	bh := newBulkhead(t, bulkhead.Config{Name: "d", MaxConcurrent: 1})
	base := roundTripperFunc(func(*http.Request) (*http.Response, error) { runtime.Goexit(); return nil, nil })
	tr := transport(t, spillwayhttp.Config{Base: base}, &spillwayhttp.Downstream{Bulkhead: bh})
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodGet, "http://d.test/", nil)
		_, _ = tr.RoundTrip(req)
	}()
	<-done
	if n := bh.InFlight(); n != 0 {
		t.Errorf("after Goexit the bulkhead holds %d slots, want 0", n)
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
