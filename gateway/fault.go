package gateway

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/spillway-dev/spillway/config"
)

// Fault injection acts on the attempts a route sends to its own upstream
// (picker.RoundTrip), not on the route as a whole: an injected abort is an
// attempt the upstream answered with that status, an injected delay a wait
// inside the attempt, under its timeout. The route's policies react to them
// as to a real failure: the breaker counts the abort, a retry sends another
// attempt (which draws again), the fallback chain serves. A replica of the
// fallback chain draws no fault (the fault rehearses the route's upstream
// failing, not its replica), and the instances' health and ejection state
// are left alone (the fault stands for the upstream, not one instance).

// The fault request headers, honoured on a route with fault.headers: true.
// They are stripped from every request before it is forwarded
// (untrustedHeader), whether the route honours them or not.
const (
	FaultDelayHeader = "Spillway-Fault-Delay" // a Go duration, at most config.MaxFaultDelay
	FaultAbortHeader = "Spillway-Fault-Abort" // a 4xx or 5xx status
)

// The kinds of a fault, the values of the label kind of
// spillway_faults_injected_total.
const (
	FaultDelay = "delay"
	FaultAbort = "abort"
)

var faultKinds = [...]string{FaultDelay, FaultAbort}

// faultKind is a fault's kind as an exchange records it: 0 none, else one
// more than its index in faultKinds.
type faultKind uint8

const (
	faultNone faultKind = iota
	faultDelay
	faultAbort
)

func (k faultKind) String() string {
	if k == faultNone {
		return ""
	}
	return faultKinds[k-1]
}

// MaxFaults bounds the runtime faults active at once: a script adding
// faults in a loop is refused (ErrTooManyFaults) rather than slowing every
// request of a route down.
const MaxFaults = 64

// ErrTooManyFaults is the error, wrapped, of a fault added past MaxFaults.
var ErrTooManyFaults = errors.New("too many faults")

// faultRule is one fault, the file's or a runtime one: percentages 0-100.
type faultRule struct {
	delayPct, abortPct float64
	delay              time.Duration
	status             int
	// expires is a runtime fault's end; zero for the file's fault.
	expires time.Time
}

// faultSet is what a route injects, immutable: its rules, and whether it
// honours the fault headers. A route with neither has none (nil).
type faultSet struct {
	rules   []faultRule
	headers bool
	// expiring is set when a rule expires: now is read only then.
	expiring bool
	now      func() time.Time
	roll     func() float64 // in [0, 100)
}

func rollPercent() float64 { return rand.Float64() * 100 }

// newFaultSet returns the faults of route rc: the file's, then the runtime
// ones of its name (both apply, each drawn apart); nil when there is none.
func newFaultSet(rc *config.Route, runtime []*Fault, now func() time.Time) *faultSet {
	s := &faultSet{now: now, roll: rollPercent}
	if f := rc.Fault; f != nil {
		s.headers = f.Headers
		var r faultRule
		if f.Delay != nil {
			r.delayPct, r.delay = f.Delay.Percent, f.Delay.Duration
		}
		if f.Abort != nil {
			r.abortPct, r.status = f.Abort.Percent, f.Abort.Status
		}
		if r.delay > 0 || r.status > 0 {
			s.rules = append(s.rules, r)
		}
	}
	for _, f := range runtime {
		if f.Route == rc.Name {
			s.rules = append(s.rules, f.rule)
			s.expiring = true
		}
	}
	if len(s.rules) == 0 && !s.headers {
		return nil
	}
	return s
}

// draw decides the fault of one attempt: the delays of the rules that fire
// add up (at most config.MaxFaultDelay), the first abort that fires wins.
// A runtime rule past its expiry draws nothing. hdrDelay and hdrAbort are
// the request's own fault (its headers), which always fires.
func (s *faultSet) draw(hdrDelay time.Duration, hdrAbort int) (delay time.Duration, status int) {
	var now time.Time
	if s.expiring {
		now = s.now()
	}
	for i := range s.rules {
		r := &s.rules[i]
		if !r.expires.IsZero() && !now.Before(r.expires) {
			continue
		}
		if r.delay > 0 && s.roll() < r.delayPct {
			delay += r.delay
		}
		if status == 0 && r.status > 0 && s.roll() < r.abortPct {
			status = r.status
		}
	}
	delay += hdrDelay
	if status == 0 {
		status = hdrAbort
	}
	return min(delay, config.MaxFaultDelay), status
}

// inject runs the fault of one attempt of x, req being the attempt's
// request: it waits the delay drawn (ended at once by the attempt's end:
// its timeout, the client going), then answers the abort drawn as the
// upstream would. done is false when the attempt goes on to the upstream.
func (s *faultSet) inject(x *exchange, m *metrics, req *http.Request) (resp *http.Response, done bool, err error) {
	delay, status := s.draw(x.hdrDelay, int(x.hdrAbort))
	if delay > 0 {
		m.fault(x.route, faultDelay)
		x.fault = faultDelay
		if x.span != nil {
			x.span.Fault(FaultDelay, delay, 0)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			closeBody(req)
			return nil, true, context.Cause(req.Context())
		}
	}
	if status == 0 {
		return nil, false, nil
	}
	m.fault(x.route, faultAbort)
	x.fault = faultAbort
	if x.span != nil {
		x.span.Fault(FaultAbort, 0, status)
	}
	x.attempts++
	closeBody(req)
	return &http.Response{
		Status: strconv.Itoa(status) + " " + http.StatusText(status), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: req,
	}, true, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// headerFault reads the fault headers of r into x (a route with
// fault.headers: true); it answers 400 and returns false for a value it
// refuses.
func (g *Gateway) headerFault(w http.ResponseWriter, x *exchange, r *http.Request) bool {
	var msg string
	if v := r.Header.Get(FaultDelayHeader); v != "" {
		if x.hdrDelay, msg = parseFaultDelay(v); msg != "" {
			g.local(w, x, http.StatusBadRequest, ReasonBadRequest, FaultDelayHeader+": "+msg)
			return false
		}
	}
	if v := r.Header.Get(FaultAbortHeader); v != "" {
		n, err := strconv.Atoi(v)
		if msg = config.CheckFaultStatus(n); err != nil || msg != "" {
			g.local(w, x, http.StatusBadRequest, ReasonBadRequest, FaultAbortHeader+": "+strconv.Quote(v)+" is not a 4xx or 5xx status")
			return false
		}
		x.hdrAbort = int16(n)
	}
	return true
}

// parseFaultDelay parses and checks a fault's delay: the delay, or why not.
func parseFaultDelay(s string) (time.Duration, string) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, strconv.Quote(s) + " is not a duration (write 500ms, 2s)"
	}
	return d, config.CheckFaultDelay(d)
}

// FaultSpec is a runtime fault as POST /api/v1/faults takes it: a route,
// a delay, an abort or both, and when it expires (at most an hour ahead).
type FaultSpec struct {
	Route     string          `json:"route"`
	Delay     *FaultDelaySpec `json:"delay,omitempty"`
	Abort     *FaultAbortSpec `json:"abort,omitempty"`
	ExpiresIn string          `json:"expires_in,omitempty"`
}

// FaultDelaySpec delays Percent % of the attempts by Duration (a Go
// duration, at most config.MaxFaultDelay).
type FaultDelaySpec struct {
	Percent  *float64 `json:"percent"`
	Duration string   `json:"duration"`
}

// FaultAbortSpec answers Percent % of the attempts with Status (4xx, 5xx).
type FaultAbortSpec struct {
	Percent *float64 `json:"percent"`
	Status  int      `json:"status"`
}

// MaxFaultTTL is the longest a runtime fault lives (its expires_in): a
// fault forgotten after a drill ends by itself.
const MaxFaultTTL = time.Hour

// Fault is a runtime fault in force: its spec, a random id, when it
// expires and who added it.
type Fault struct {
	ID string `json:"id"`
	FaultSpec
	ExpiresAt time.Time `json:"expires_at"`
	At        time.Time `json:"at"`
	Actor
	rule faultRule
}

// rule checks s as the file's fault: RefusedError names the field refused.
func (s *FaultSpec) rule() (faultRule, time.Duration, error) {
	var r faultRule
	refuse := func(field, msg string) (faultRule, time.Duration, error) {
		return faultRule{}, 0, &RefusedError{Field: field, Message: msg}
	}
	if s.Route == "" {
		return refuse("route", "route is required")
	}
	if s.Delay == nil && s.Abort == nil {
		return refuse("", "a fault has a delay, an abort or both")
	}
	if d := s.Delay; d != nil {
		if d.Percent == nil {
			return refuse("delay.percent", "delay.percent is required")
		}
		if msg := config.CheckFaultPercent(*d.Percent); msg != "" {
			return refuse("delay.percent", msg)
		}
		v, msg := parseFaultDelay(d.Duration)
		if msg != "" {
			return refuse("delay.duration", msg)
		}
		r.delayPct, r.delay = *d.Percent, v
	}
	if a := s.Abort; a != nil {
		if a.Percent == nil {
			return refuse("abort.percent", "abort.percent is required")
		}
		if msg := config.CheckFaultPercent(*a.Percent); msg != "" {
			return refuse("abort.percent", msg)
		}
		if msg := config.CheckFaultStatus(a.Status); msg != "" {
			return refuse("abort.status", msg)
		}
		r.abortPct, r.status = *a.Percent, a.Status
	}
	ttl, err := time.ParseDuration(s.ExpiresIn)
	switch {
	case s.ExpiresIn == "":
		return refuse("expires_in", "expires_in is required (at most 1h): a runtime fault always ends")
	case err != nil:
		return refuse("expires_in", fmt.Sprintf("%q is not a duration (write 10m)", s.ExpiresIn))
	case ttl <= 0 || ttl > MaxFaultTTL:
		return refuse("expires_in", fmt.Sprintf("%s is not more than 0 and at most %s", ttl, MaxFaultTTL))
	}
	return r, ttl, nil
}

// faultID is a random id: a runtime fault's id says nothing of how many
// came before, and one cannot be guessed from another.
func faultID() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Faults returns the runtime faults in force, oldest first: those expired
// are left out.
func (g *Gateway) Faults() []Fault {
	now := g.now()
	out := []Fault{}
	if l := g.faults.Load(); l != nil {
		for _, f := range *l {
			if now.Before(f.ExpiresAt) {
				out = append(out, *f)
			}
		}
	}
	return out
}

// AddFault adds a runtime fault to a route of the running configuration,
// validated as the file's fault is (a RefusedError names the field
// refused; an unknown route is ErrUnknown, past MaxFaults
// ErrTooManyFaults). It is audit-logged and published as an EventFault.
func (g *Gateway) AddFault(a Actor, s FaultSpec) (Fault, error) {
	r, ttl, err := s.rule()
	if err != nil {
		return Fault{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return Fault{}, errors.New("gateway: closed")
	}
	if _, ok := g.table.Load().byName[s.Route]; !ok {
		return Fault{}, fmt.Errorf("route %q: %w", s.Route, ErrUnknown)
	}
	live := g.liveFaults()
	if len(live) >= MaxFaults {
		return Fault{}, fmt.Errorf("%d runtime faults are active, at most %d: remove some or wait for them to expire: %w", len(live), MaxFaults, ErrTooManyFaults)
	}
	now := g.now()
	r.expires = now.Add(ttl)
	f := &Fault{ID: faultID(), FaultSpec: s, ExpiresAt: r.expires.UTC(), At: now.UTC(), Actor: a, rule: r}
	g.setFaults(append(live, f))
	g.faultChanged(a, "add", []*Fault{f})
	return *f, nil
}

// RemoveFault removes the runtime fault id (ErrUnknown when none is in
// force).
func (g *Gateway) RemoveFault(a Actor, id string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	live := g.liveFaults()
	i := slices.IndexFunc(live, func(f *Fault) bool { return f.ID == id })
	if i < 0 {
		return fmt.Errorf("fault %q: %w", id, ErrUnknown)
	}
	gone := live[i]
	g.setFaults(slices.Delete(live, i, i+1))
	g.faultChanged(a, "remove", []*Fault{gone})
	return nil
}

// ClearFaults removes every runtime fault (the kill switch) and returns
// how many were in force. The file's faults stay: a reload without them
// removes them.
func (g *Gateway) ClearFaults(a Actor) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	live := g.liveFaults()
	g.setFaults(nil)
	g.faultChanged(a, "clear", live)
	return len(live)
}

// liveFaults returns a copy of the runtime faults not expired; g.mu is held.
func (g *Gateway) liveFaults() []*Fault {
	now := g.now()
	var out []*Fault
	if l := g.faults.Load(); l != nil {
		for _, f := range *l {
			if now.Before(f.ExpiresAt) {
				out = append(out, f)
			}
		}
	}
	return out
}

// setFaults makes l the runtime faults and gives each route of the table
// in use its new fault set; g.mu is held.
func (g *Gateway) setFaults(l []*Fault) {
	g.faults.Store(&l)
	for _, r := range g.table.Load().routes {
		r.faults.Store(newFaultSet(r.cfg, l, g.now))
	}
}

// FaultEvent is a runtime fault change (EventFault): who added, removed
// or cleared (Action add, remove, clear) which faults.
type FaultEvent struct {
	Actor
	Action string  `json:"action"`
	Faults []Fault `json:"faults"`
}

// faultChanged audit-logs and publishes a change of the runtime faults.
func (g *Gateway) faultChanged(a Actor, action string, fs []*Fault) {
	ev := FaultEvent{Actor: a, Action: action, Faults: make([]Fault, len(fs))}
	ids := make([]string, len(fs))
	for i, f := range fs {
		ev.Faults[i], ids[i] = *f, f.ID
	}
	g.opts.Logger.Info("gateway: runtime fault", "who", a.Who, "call", a.Call, "action", action, "ids", ids, "faults", ev.Faults)
	g.events.Publish(EventFault, ev)
}
