// Package seed is the seed's architecture as code: service B, a plain HTTP
// service, and service A, which calls B through the library (spillwayhttp
// with retry and breaker) and serves the last good answer per item when B
// fails. A's client carries two chaos policies, "b-slow" and "b-down",
// switched at run time, that make B look slow or down from A's side.
//
// The commands of examples/seed run them one per process, behind
// `spillway serve -c examples/seed/spillway.yaml`; `spillway demo` runs them
// in-process behind its gateway's route shop.
package seed

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/chaos"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// FallbackHeader is how A tells its caller (the gateway, the clients behind
// it) that an answer is its fallback's, not B's: its value is the step
// that served, LastGood. The gateway's own Spillway-Fallback says when the
// gateway served in A's place.
const FallbackHeader = "Seed-Fallback"

// LastGood names A's fallback step: the last answer B gave for the item.
const LastGood = "last-good"

// The chaos switches of A's client to B.
const (
	SwitchBSlow = "b-slow" // a latency on a share of A's calls to B
	SwitchBDown = "b-down" // every call to B fails before it is sent
)

// The defaults of AConfig.
const (
	DefaultAttempt   = 100 * time.Millisecond
	DefaultTotal     = 200 * time.Millisecond
	DefaultSlowDelay = 150 * time.Millisecond
	DefaultSlowRate  = 0.3
)

// maxLastGood bounds A's cache of last good answers: once full, new items
// get no entry (the demo's items are few; a real service would evict).
const maxLastGood = 10_000

// ServiceB is the downstream: GET /items/{id} answers the item as JSON,
// GET /healthz answers ok.
type ServiceB struct {
	requests atomic.Int64
	mux      *http.ServeMux
}

// NewServiceB returns service B.
func NewServiceB() *ServiceB {
	b := &ServiceB{mux: http.NewServeMux()}
	b.mux.HandleFunc("GET /items/{id}", b.item)
	b.mux.HandleFunc("GET /healthz", healthz)
	return b
}

func (b *ServiceB) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.mux.ServeHTTP(w, r) }

// Requests returns how many item requests B answered.
func (b *ServiceB) Requests() int64 { return b.requests.Load() }

func (b *ServiceB) item(w http.ResponseWriter, r *http.Request) {
	n := b.requests.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"service":"b","item":%q,"stock":%d}`, r.PathValue("id"), 100-n%100)
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ok"}`)
}

// AConfig configures service A.
type AConfig struct {
	// B is service B's base URL (http://127.0.0.1:8082).
	B string
	// Attempt and Total bound one call to B and all its attempts; keep
	// Total below the attempt timeout of the gateway in front of A, so that
	// A answers (with its fallback if need be) before the gateway gives up.
	// Default DefaultAttempt and DefaultTotal (100ms, 200ms).
	Attempt, Total time.Duration
	// SlowDelay and SlowRate are the b-slow switch's latency and share of
	// calls. Default DefaultSlowDelay (150ms, more than Attempt: those
	// attempts time out) on DefaultSlowRate (30 %) of the calls.
	SlowDelay time.Duration
	SlowRate  float64
}

// ServiceA answers GET /shop/items/{id} with B's item, through its client
// to B; when that fails (B down, slow past A's limits, A's breaker open) it
// serves the last good answer for the item, marked FallbackHeader, or the
// library's error answer when it has none.
type ServiceA struct {
	b         string
	transport *spillwayhttp.Transport
	client    *http.Client
	down      *breaker.Breaker
	pl        *spillway.Pipeline[[]byte]
	switches  map[string]*chaos.Policy[*http.Response]
	mux       *http.ServeMux

	mu   sync.Mutex
	last map[string][]byte // the last good answer per item
}

// NewServiceA returns service A calling B at cfg.B. Close it when done.
func NewServiceA(cfg AConfig) (*ServiceA, error) {
	if cfg.B == "" {
		return nil, errors.New("seed: service A needs B's URL")
	}
	cfg = cfg.withDefaults()
	a := &ServiceA{b: cfg.B, last: map[string][]byte{}, mux: http.NewServeMux()}
	slow, err := chaos.NewLatency[*http.Response](chaos.Config{Name: SwitchBSlow, Rate: cfg.SlowRate}, cfg.SlowDelay)
	if err != nil {
		return nil, err
	}
	a.switches = map[string]*chaos.Policy[*http.Response]{
		SwitchBSlow: slow,
		SwitchBDown: chaos.Must(chaos.NewFault[*http.Response](chaos.Config{Name: SwitchBDown, Rate: 1}, nil)),
	}
	// Short windows so that a demo shows A's breaker at work within seconds.
	a.down = breaker.MustNew(breaker.Config{Name: "service-b", WindowSize: 20, MinCalls: 10, OpenFor: time.Second, MaxOpenFor: 4 * time.Second, HalfOpenProbes: 3})
	policy := retry.MustNew(retry.Config{Name: "service-b", MaxAttempts: 2, Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond})
	t, err := spillwayhttp.New(spillwayhttp.Config{
		Key: func(*http.Request) string { return "service-b" },
		NewDownstream: func(string, spillway.Observer) (*spillwayhttp.Downstream, error) {
			return &spillwayhttp.Downstream{Breaker: a.down, Retry: policy,
				Timeouts: spillwayhttp.Timeouts{Connect: cfg.Attempt, Attempt: cfg.Attempt, Total: cfg.Total},
				Chaos:    []spillway.Injector[*http.Response]{slow, a.switches[SwitchBDown]}}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	a.transport, a.client = t, &http.Client{Transport: t}
	a.pl, err = spillway.NewPipeline(spillway.Policies[[]byte]{
		Fallback: fallback.MustNew(fallback.Config{Name: "service-a"}, fallback.Keyed(LastGood, a.lastGood)),
	})
	if err != nil {
		return nil, err
	}
	a.mux.HandleFunc("GET /shop/items/{id}", a.item)
	a.mux.HandleFunc("GET /healthz", healthz)
	return a, nil
}

func (c AConfig) withDefaults() AConfig {
	c.Attempt = cmp.Or(c.Attempt, DefaultAttempt)
	c.Total = cmp.Or(c.Total, DefaultTotal)
	c.SlowDelay = cmp.Or(c.SlowDelay, DefaultSlowDelay)
	c.SlowRate = cmp.Or(c.SlowRate, DefaultSlowRate)
	return c
}

func (a *ServiceA) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Close closes the idle connections of A's client to B.
func (a *ServiceA) Close() { a.transport.CloseIdleConnections() }

// Breaker returns the state of A's breaker on B.
func (a *ServiceA) Breaker() breaker.State { return a.down.State() }

// Switch turns the chaos switch name (SwitchBSlow, SwitchBDown) on or off.
func (a *ServiceA) Switch(name string, on bool) error {
	p, ok := a.switches[name]
	if !ok {
		return fmt.Errorf("seed: no chaos switch %q (%s, %s)", name, SwitchBSlow, SwitchBDown)
	}
	p.SetEnabled(on)
	return nil
}

// Switches returns the chaos switches and whether each is on.
func (a *ServiceA) Switches() map[string]bool {
	m := make(map[string]bool, len(a.switches))
	for name, p := range a.switches {
		m[name] = p.Enabled()
	}
	return m
}

func (a *ServiceA) item(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	res := spillway.ExecuteKeyed(r.Context(), a.pl, id, a.fetch)
	if res.Err != nil {
		spillwayhttp.WriteError(w, res.Err, "service-b")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if res.Fallback != "" {
		w.Header().Set(FallbackHeader, res.Fallback)
	}
	_, _ = w.Write(res.Value)
}

// fetch asks B for item id through A's client and keeps a good answer as
// the item's last good one.
func (a *ServiceA) fetch(ctx context.Context, id string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.b+"/items/"+id, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if err := spillwayhttp.ErrorOf(resp); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("service B answered %s", resp.Status)
	}
	item, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	body := fmt.Appendf(nil, `{"service":"a","item":%s}`, item)
	a.mu.Lock()
	if _, ok := a.last[id]; ok || len(a.last) < maxLastGood {
		a.last[id] = body
	}
	a.mu.Unlock()
	return body, nil
}

// lastGood is A's fallback step: the item's last good answer, if any.
func (a *ServiceA) lastGood(_ context.Context, id string, err error) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if b, ok := a.last[id]; ok {
		return b, nil
	}
	return nil, err
}

// ChaosHandler serves A's chaos switches, for a loopback listener of A's
// own (never behind the gateway): GET /chaos lists them, PUT
// /chaos/{name} turns one on, DELETE /chaos/{name} off.
func (a *ServiceA) ChaosHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /chaos", func(w http.ResponseWriter, _ *http.Request) { a.writeSwitches(w) })
	set := func(on bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := a.Switch(r.PathValue("name"), on); err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			a.writeSwitches(w)
		}
	}
	mux.HandleFunc("PUT /chaos/{name}", set(true))
	mux.HandleFunc("DELETE /chaos/{name}", set(false))
	return mux
}

// writeSwitches answers the switches and the state of A's breaker on B.
func (a *ServiceA) writeSwitches(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Switches map[string]bool `json:"switches"` // encoded in name order
		Breaker  string          `json:"breaker"`
	}{a.Switches(), a.Breaker().String()})
}

// ListenAndServe serves h on addr until ctx ends, then shuts the server
// down, letting the requests in flight finish for up to 5 s.
func ListenAndServe(ctx context.Context, addr string, h http.Handler) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	failed := make(chan error, 1)
	go func() { failed <- srv.ListenAndServe() }()
	select {
	case err := <-failed:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-failed // http.ErrServerClosed
	return err
}
