package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway/examples/seed/seed"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/internal/adminclient"
)

// The shop route is the seed's architecture: the gateway in front of
// service A, which calls service B through the library (examples/seed/seed).
// Its loop plays B slow and B down through the chaos switches of A's client,
// and A flapping through the gateway's runtime fault API, so that the fault
// shows on the dashboard's faults panel and on the event stream.

const (
	// flapPercent is the share of the attempts to A that the a-flapping
	// fault answers 503: above demo.yaml's failure_rate (50 %), so the
	// gateway's breaker on service-a opens.
	flapPercent = 60
	// seedStepMin bounds how long a step waits for what it is to show (A's
	// fallback serving, the gateway's breaker opening), at least: a starved
	// process still shows it, a broken one does not hang.
	seedStepMin = 5 * time.Second
)

// seedStep is one step of the shop loop: what it breaks (on entry, undone
// on exit) and what it waits for (besides its length).
type seedStep struct {
	name, about string
	chaos       string                    // A's chaos switch turned on during the step
	fault       bool                      // the a-flapping runtime fault on the route shop
	shown       func(c seedCounts) bool   // what the step waits for, from the step's counts
	told        func(c seedCounts) string // what the step showed, when it ends
}

var seedSteps = []seedStep{
	{name: "healthy", about: "A answers from B and keeps each item's last good answer",
		shown: func(c seedCounts) bool { return c.byA >= phaseMinRequests },
		told: func(c seedCounts) string {
			return fmt.Sprintf("A answered %d of %d requests from B", c.byA, c.requests)
		}},
	{name: "b-slow", about: fmt.Sprintf("A's client to B gets chaos.NewLatency (b-slow: %s on %.0f%% of its calls, above A's %s attempt timeout): "+
		"A's retries hide part of it, A's breaker and fallback the rest", seed.DefaultSlowDelay, seed.DefaultSlowRate*100, seed.DefaultAttempt),
		chaos: seed.SwitchBSlow,
		shown: func(seedCounts) bool { return true },
		told: func(c seedCounts) string {
			return fmt.Sprintf("A answered %d, its fallback %d, of %d requests", c.byA, c.byAFallback, c.requests)
		}},
	{name: "b-down", about: "A's client to B gets chaos.NewFault on every call (b-down): A's breaker on B opens, A serves each item's last good answer (" + seed.FallbackHeader + ": " + seed.LastGood + ")",
		chaos: seed.SwitchBDown,
		shown: func(c seedCounts) bool { return c.byAFallback >= phaseMinRequests },
		told: func(c seedCounts) string {
			return fmt.Sprintf("A's fallback served %d of %d requests", c.byAFallback, c.requests)
		}},
	{name: "a-flapping", about: fmt.Sprintf("A flaps: a runtime fault (POST /api/v1/faults) answers %d%% of the gateway's attempts to A with 503: "+
		"the gateway's breaker on service-a opens, its stale cache answers; see the dashboard's faults panel", flapPercent),
		fault: true,
		shown: func(c seedCounts) bool { return c.gatewayOpened },
		told: func(c seedCounts) string {
			stream := "event stream: "
			if c.faultAdded {
				stream += "fault added, "
			}
			if !c.gatewayOpened {
				return fmt.Sprintf("the gateway's breaker on service-a did not open (%sno breaker event); its fallbacks served %d of %d requests",
					stream, c.byGateway, c.requests)
			}
			return fmt.Sprintf("the gateway's breaker on service-a opened (%sbreaker service-a → open); its fallbacks served %d of %d requests",
				stream, c.byGateway, c.requests)
		}},
}

// seedCounts are the shop route's answers as the clients saw them: from
// A (from B), from A's fallback (seed.FallbackHeader), from the gateway's
// fallbacks (Spillway-Fallback), errors (no answer, or not a 2xx).
type seedCounts struct {
	requests, byA, byAFallback, byGateway, errors int
	seedSeen
}

// seedSeen is what a step saw on the gateway's event stream.
type seedSeen struct {
	faultAdded    bool // a runtime fault added on the route shop
	gatewayOpened bool // the gateway's breaker on service-a opening
}

func (c *seedCounts) add(resp *http.Response, err error) {
	c.requests++
	switch {
	case err != nil || resp.StatusCode/100 != 2:
		c.errors++
	case resp.Header.Get(gateway.FallbackHeader) != "":
		c.byGateway++ // first: a stale copy may carry A's header too
	case resp.Header.Get(seed.FallbackHeader) != "":
		c.byAFallback++
	default:
		c.byA++
	}
}

// seedStats collects the shop route's answers: per summary interval, per
// step of the loop and for the whole run.
type seedStats struct {
	mu                  sync.Mutex
	window, step, total seedCounts
}

func (s *seedStats) record(resp *http.Response, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window.add(resp, err)
	s.step.add(resp, err)
	s.total.add(resp, err)
}

// take returns the interval's counts and starts a new interval.
func (s *seedStats) take() seedCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.window
	s.window = seedCounts{}
	return w
}

// newStep starts the counts of a new step.
func (s *seedStats) newStep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.step = seedCounts{}
}

// stepCounts returns the step's counts so far, after noting what seen
// says the step saw.
func (s *seedStats) stepCounts(seen seedSeen) seedCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.step.faultAdded = s.step.faultAdded || seen.faultAdded
	s.step.gatewayOpened = s.step.gatewayOpened || seen.gatewayOpened
	return s.step
}

// seedServices are the in-process services A and B.
type seedServices struct {
	a *seed.ServiceA
	b *seed.ServiceB
}

// start serves B, then A calling B, on 127.0.0.1:0, adding their servers
// to set, and returns A's URL.
func (s *seedServices) start(set *downstreamSet) (string, error) {
	s.b = seed.NewServiceB()
	bURL, err := set.serve("service-b", s.b)
	if err != nil {
		return "", err
	}
	if s.a, err = seed.NewServiceA(seed.AConfig{B: bURL}); err != nil {
		return "", err
	}
	return set.serve("service-a", s.a)
}

// seedLoop plays seedSteps over and over while the demo runs.
type seedLoop struct {
	svc    *seedServices
	stats  *seedStats
	events *gateway.EventBus
	admin  *adminclient.Client
	length time.Duration // of a step, at least
	cur    atomic.Int32  // the step in force
	notes  chan string   // lines for the demo's output: unbuffered, so that a line is out before the next summary line
	played chan struct{} // closed once the first loop ended
	cursor uint64        // the last event read
	// stopped is what undoing the step in force did when the demo
	// stopped in its middle; read once run returned.
	stopped string
}

func newSeedLoop(svc *seedServices, stats *seedStats, g *gateway.Gateway, client *http.Client, admin, token string, length time.Duration) *seedLoop {
	return &seedLoop{svc: svc, stats: stats, events: g.Events(), admin: &adminclient.Client{URL: admin, Token: token, HTTP: client}, length: length,
		notes: make(chan string), played: make(chan struct{}), cursor: g.Events().Last()}
}

// run plays the loop until ctx ends; every step it entered is undone
// (a fault through the kill switch) before it returns.
func (l *seedLoop) run(ctx context.Context) {
	for n := 1; ; n++ {
		for i := range seedSteps {
			if !l.step(ctx, n, i) {
				return
			}
		}
		if n == 1 {
			close(l.played)
		}
	}
}

// step plays step i of loop n; false when ctx ended.
func (l *seedLoop) step(ctx context.Context, n, i int) bool {
	st := &seedSteps[i]
	l.stats.newStep()
	l.cursor = l.events.Last()
	what := st.about
	if st.chaos != "" {
		_ = l.svc.a.Switch(st.chaos, true)
	}
	if st.fault {
		what += "; " + l.addFault(ctx, st)
	}
	l.say(ctx, fmt.Sprintf("── shop loop %d, step %d/%d %s: %s", n, i+1, len(seedSteps), st.name, what))
	l.cur.Store(int32(i)) // after the line: the summary lines under it name the step
	waited := l.wait(ctx, st)
	// The step is undone even when the demo stops: its fault must not
	// outlive the step (the kill switch), A's switch is A's to keep off.
	told := st.told(l.stats.stepCounts(l.readEvents()))
	var undone string
	if st.chaos != "" {
		_ = l.svc.a.Switch(st.chaos, false)
		undone = "A's chaos switch " + st.chaos + " off"
	}
	if st.fault {
		undone = l.killSwitch(context.WithoutCancel(ctx))
	}
	if !waited {
		if undone != "" {
			l.stopped = st.name + ": " + undone
		}
		return false
	}
	if st.fault {
		told += "; " + undone
	}
	l.say(ctx, "   "+st.name+" ended: "+told)
	return true
}

// wait returns once the step lasted its length and showed what it is for
// (or waited max(3 lengths, seedStepMin) for it); false when ctx ended.
func (l *seedLoop) wait(ctx context.Context, st *seedStep) bool {
	start := time.Now()
	giveUp := max(3*l.length, seedStepMin)
	poll := time.NewTicker(min(l.length/4+time.Millisecond, 100*time.Millisecond))
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-l.events.Wait(l.cursor):
		case <-poll.C:
		}
		c := l.stats.stepCounts(l.readEvents())
		if since := time.Since(start); since >= giveUp || since >= l.length && st.shown(c) {
			return true
		}
	}
}

// readEvents reads the events published since the last read, as a
// client of GET /api/v1/events would, and reports what the step looks for.
func (l *seedLoop) readEvents() seedSeen {
	var buf [64]gateway.Event
	var seen seedSeen
	for {
		evs, _ := l.events.Read(l.cursor, buf[:0])
		if len(evs) == 0 {
			return seen
		}
		for _, ev := range evs {
			switch d := ev.Data.(type) {
			case gateway.BreakerEvent:
				seen.gatewayOpened = seen.gatewayOpened || d.Upstream == "service-a" && d.To == "open"
			case gateway.FaultEvent:
				seen.faultAdded = seen.faultAdded || d.Action == "add" && len(d.Faults) > 0 && d.Faults[0].Route == "shop"
			}
		}
		l.cursor = evs[len(evs)-1].ID
	}
}

func (l *seedLoop) say(ctx context.Context, s string) {
	select {
	case l.notes <- s:
	case <-ctx.Done():
	}
}

// addFault adds the a-flapping fault through the admin API, with an expiry
// past the step's longest wait (it ends by itself if the demo is killed),
// and lists it back; it returns what happened, for the step's line.
func (l *seedLoop) addFault(ctx context.Context, st *seedStep) string {
	pct := float64(flapPercent)
	ttl := min(max(3*l.length, seedStepMin)+10*time.Second, gateway.MaxFaultTTL)
	spec := gateway.FaultSpec{Route: "shop", Abort: &gateway.FaultAbortSpec{Percent: &pct, Status: http.StatusServiceUnavailable}, ExpiresIn: ttl.String()}
	var f gateway.Fault
	if err := l.call(ctx, http.MethodPost, spec, &f); err != nil {
		return "POST /api/v1/faults failed: " + err.Error()
	}
	var list struct{ Faults []gateway.Fault }
	if err := l.call(ctx, http.MethodGet, nil, &list); err != nil {
		return "GET /api/v1/faults failed: " + err.Error()
	}
	for _, lf := range list.Faults {
		if lf.ID == f.ID {
			return fmt.Sprintf("fault %s on route %s listed on GET /api/v1/faults (expires in %s)", f.ID, f.Route, spec.ExpiresIn)
		}
	}
	return fmt.Sprintf("fault %s missing from GET /api/v1/faults", f.ID)
}

// killSwitch removes every runtime fault (DELETE /api/v1/faults).
func (l *seedLoop) killSwitch(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var r struct{ Cleared int }
	if err := l.call(ctx, http.MethodDelete, nil, &r); err != nil {
		return "the kill switch DELETE /api/v1/faults failed: " + err.Error()
	}
	return fmt.Sprintf("kill switch DELETE /api/v1/faults cleared %d", r.Cleared)
}

// call sends method /api/v1/faults with body (nil: none) and the admin
// token, and decodes a 2xx answer into out.
func (l *seedLoop) call(ctx context.Context, method string, body, out any) error {
	return l.admin.Do(ctx, method, "/api/v1/faults", body, out)
}

// seedLineFormat is the layout of the shop route's summary lines.
const seedLineFormat = "%7s  shop %-12s %5d requests: A %d, A's fallback %d, gateway's fallbacks %d, errors %d; breakers: gateway→A %s, A→B %s\n"

// summary prints the shop route's line of the last interval.
func (l *seedLoop) summary(out io.Writer, t time.Duration, st gateway.Status) {
	c := l.stats.take()
	fmt.Fprintf(out, seedLineFormat, t, seedSteps[l.cur.Load()].name, c.requests, c.byA, c.byAFallback, c.byGateway, c.errors,
		st.Upstreams["service-a"].Breaker.State, l.svc.a.Breaker())
}

// totals prints the shop route's counts over the run.
func (l *seedLoop) totals(out io.Writer) {
	l.stats.mu.Lock()
	c := l.stats.total
	l.stats.mu.Unlock()
	fmt.Fprintf(out, "  shop (gateway → service A → service B): %d requests: A %d, A's fallback %d, gateway's fallbacks %d, errors %d; service B answered %d\n",
		c.requests, c.byA, c.byAFallback, c.byGateway, c.errors, l.svc.b.Requests())
	if l.stopped != "" {
		fmt.Fprintf(out, "  the shop loop stopped in step %s\n", l.stopped)
	}
}
