package spillwayhttp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// TestTransportSetsThePriorityHeader: an attempt carries the class of its
// request's context in Spillway-Priority, unless the class is the default
// or the request writes the header itself; the request's own Header is
// left alone.
func TestTransportSetsThePriorityHeader(t *testing.T) {
	got := make(chan []string, 1)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) { got <- r.Header[spillwayhttp.PriorityHeader] })
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, nil)}
	for _, tc := range []struct {
		name   string
		ctx    spillway.Priority
		header string // the request's own, "" for none
		want   string // "" for no header
	}{
		{"sheddable", spillway.PrioritySheddable, "", "sheddable"},
		{"critical", spillway.PriorityCritical, "", "critical"},
		{"default sends none", spillway.PriorityDefault, "", ""},
		{"the request's own header wins", spillway.PriorityCritical, "sheddable", "sheddable"},
	} {
		req, _ := http.NewRequestWithContext(spillway.WithPriority(context.Background(), tc.ctx), "GET", s.URL, nil)
		if tc.header != "" {
			req.Header.Set(spillwayhttp.PriorityHeader, tc.header)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		v := <-got
		if (tc.want == "" && v != nil) || (tc.want != "" && (len(v) != 1 || v[0] != tc.want)) {
			t.Errorf("%s: the attempt's %s is %q, want %q", tc.name, spillwayhttp.PriorityHeader, v, tc.want)
		}
		if tc.header == "" && req.Header.Get(spillwayhttp.PriorityHeader) != "" {
			t.Errorf("%s: RoundTrip changed the request's own Header", tc.name)
		}
	}
}

// TestPriorityCarriesTheClassAlongTheChain: a service behind
// spillwayhttp.Priority sees its client's class in its context, and its
// own calls through a Transport pass it on.
func TestPriorityCarriesTheClassAlongTheChain(t *testing.T) {
	got := make(chan string, 1)
	next := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		got <- r.Header.Get(spillwayhttp.PriorityHeader)
	})
	c := &http.Client{Transport: transport(t, spillwayhttp.Config{}, nil)}
	seen := make(chan spillway.Priority, 1)
	mid := httptest.NewServer(spillwayhttp.Priority(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- spillway.PriorityOf(r.Context())
		req, _ := http.NewRequestWithContext(r.Context(), "GET", next.URL, nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	})))
	defer mid.Close()
	for _, tc := range []struct{ sent, want string }{{"sheddable", "sheddable"}, {"critical", "critical"}, {"default", ""}, {"bogus", ""}} {
		req, _ := http.NewRequest("GET", mid.URL, nil)
		req.Header.Set(spillwayhttp.PriorityHeader, tc.sent)
		resp, err := mid.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if v := <-got; v != tc.want {
			t.Errorf("sent %q: the next service got %q, want %q", tc.sent, v, tc.want)
		}
		if want, _ := spillway.ParsePriority(tc.sent); <-seen != want {
			t.Errorf("sent %q: the handler's context does not have %v", tc.sent, want)
		}
	}
	mid.Client().CloseIdleConnections()
}

// A service reads its client's class into the request's context, where
// its load shedders and its own calls through a Transport find it.
func ExamplePriority() {
	h := spillwayhttp.Priority(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(spillway.PriorityOf(r.Context()))
	}))
	req := httptest.NewRequest("GET", "/recommendations", nil)
	req.Header.Set(spillwayhttp.PriorityHeader, "sheddable")
	h.ServeHTTP(httptest.NewRecorder(), req)
	// Output: sheddable
}
