package drill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/internal/server"
)

// Options is one drill: spillway drill's flags.
type Options struct {
	// File is the gateway's configuration: started in process from it, or
	// (with Gateway) the running gateway's, for its routes.
	File     string
	Scenario string
	Upstream string
	// Route is the route the load goes through; default the first route
	// of Upstream. Path is the request path; default the route's path or
	// path_prefix.
	Route, Path string
	Rate        float64       // requests per second
	Duration    time.Duration // the whole timeline
	Expects     []string      // default: the scenario's
	// Latency is the latency scenario's delay; default twice the
	// upstream's attempt timeout. FlapEvery is the flapping scenario's
	// period; default 2s.
	Latency, FlapEvery time.Duration
	// Gateway and Admin, both set, target a running gateway (loopback
	// only) instead of starting one; Token is its admin token.
	Gateway, Admin, Token string
	// Log receives the in-process gateway's log; nil: discarded.
	Log io.Writer
	// Progress receives the live progress line; nil: none.
	Progress io.Writer
}

// errStopped is a drill interrupted (Ctrl-C) before its end.
var errStopped = errors.New("drill interrupted")

// MinDuration is the shortest drill: each phase needs a few samples.
const MinDuration = 3 * time.Second

// plan is a drill checked and ready to run.
type plan struct {
	o        Options
	sc       *scenario
	cfg      *config.Config
	route    *config.Route
	exps     []Expectation
	req      request // its url is a path until the target is known
	phases   []Phase
	slowest  time.Duration // the longest a request may take through the gateway
	latency  time.Duration
	flapping time.Duration
}

// prepare checks o and builds the drill's plan; every error is an
// *InputError.
func prepare(o Options) (*plan, error) {
	switch {
	case o.File == "":
		return nil, badInput("-c: name the gateway's configuration file")
	case o.Upstream == "":
		return nil, badInput("--upstream: name the upstream to fail")
	}
	sc, ok := findScenario(o.Scenario)
	if !ok {
		return nil, badInput("--scenario %q: want one of %s", o.Scenario, strings.Join(ScenarioNames(), ", "))
	}
	if !(o.Rate > 0) || o.Rate > 100000 {
		return nil, badInput("--rate %g: want requests per second, more than 0 and at most 100000", o.Rate)
	}
	if o.Duration < MinDuration {
		return nil, badInput("--duration %s: want at least %s (healthy, fault and recovery phases)", o.Duration, MinDuration)
	}
	if (o.Gateway == "") != (o.Admin == "") {
		return nil, badInput("--gateway and --admin go together: the running gateway's public and admin URLs")
	}
	for _, f := range [][2]string{{"--gateway", o.Gateway}, {"--admin", o.Admin}} {
		if f[1] != "" {
			if err := checkLoopback(f[0], f[1]); err != nil {
				return nil, err
			}
		}
	}
	p := &plan{o: o, sc: sc, phases: sc.timeline(o.Duration)}
	exps := o.Expects
	if len(exps) == 0 {
		exps = sc.expects
	}
	for _, s := range exps {
		e, err := ParseExpect(s)
		if err != nil {
			return nil, err
		}
		p.exps = append(p.exps, e)
	}
	// Warnings are validate's business; a file that does not load is bad
	// input like any other.
	cfg, _, err := server.LoadAndCheck(o.File)
	if err != nil {
		return nil, &InputError{Msg: err.Error()}
	}
	p.cfg = cfg
	if err := p.choose(); err != nil {
		return nil, err
	}
	if sc.flapping {
		p.flapping = cmp.Or(o.FlapEvery, 2*time.Second)
		if fault := p.phases[1].End - p.phases[1].Start; p.flapping <= 0 || 2*p.flapping > fault {
			return nil, badInput("--flap-every %s: want at most half the fault phase (%s)", p.flapping, fault)
		}
	}
	return p, nil
}

// choose finds the upstream, the route and the request of the drill.
func (p *plan) choose() error {
	u, ok := p.cfg.Upstreams[p.o.Upstream]
	if !ok {
		return badInput("--upstream %q: %s has no such upstream (upstreams: %s)", p.o.Upstream, p.cfg.File, strings.Join(slices.Sorted(maps.Keys(p.cfg.Upstreams)), ", "))
	}
	for _, r := range p.cfg.Routes {
		if p.o.Route == r.Name || p.o.Route == "" && r.Upstream == p.o.Upstream {
			p.route = r
			break
		}
	}
	switch {
	case p.route == nil && p.o.Route != "":
		return badInput("--route %q: %s has no such route", p.o.Route, p.cfg.File)
	case p.route == nil:
		return badInput("--upstream %q: no route sends to it; name one with --route", p.o.Upstream)
	}
	path := cmp.Or(p.o.Path, p.route.Match.Path, p.route.Match.PathPrefix, "/")
	if !strings.HasPrefix(path, "/") {
		return badInput("--path %q: want a path starting with /", path)
	}
	method := http.MethodGet
	if len(p.route.Match.Methods) > 0 {
		method = p.route.Match.Methods[0]
	}
	h := http.Header{}
	for k, v := range p.route.Match.Headers {
		h.Set(k, v)
	}
	if p.route.Match.Host != "" {
		h.Set("Host", p.route.Match.Host)
	}
	body := methodBody(method)
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	p.req = request{method: method, url: path, header: h, body: body}
	p.slowest = cmp.Or(p.route.Timeout, u.Timeouts.Total, 15*time.Second)
	p.latency = cmp.Or(p.o.Latency, 2*cmp.Or(u.Timeouts.Attempt, 5*time.Second))
	return nil
}

// Run plays the drill o: it checks o (an *InputError before any load is
// sent), starts the gateway (or attaches to a running one) with the fault
// proxy in front of the upstream, sends the load through the scenario's
// timeline, then stops everything it started and judges the expectations.
// When ctx ends first, the load stops, the proxies and the gateway are
// stopped and Run returns ctx's error.
func Run(ctx context.Context, o Options) (*Report, error) {
	p, err := prepare(o)
	if err != nil {
		return nil, err
	}
	logOut := o.Log
	if logOut == nil {
		logOut = io.Discard
	}
	var t *target
	if o.Gateway != "" {
		t, err = attachRemote(ctx, o.Gateway, o.Admin, o.Token, o.Upstream, p.latency)
	} else {
		t, err = startLocal(ctx, p.cfg, o.Upstream, p.latency, logOut)
	}
	if err != nil {
		return nil, err
	}
	r, err := p.play(ctx, t)
	if stopErr := t.stop(); err == nil && stopErr != nil {
		return nil, fmt.Errorf("stopping the drill: %w", stopErr)
	}
	return r, err
}

// play sends the load through t while the timeline plays, and builds the
// report.
func (p *plan) play(ctx context.Context, t *target) (*Report, error) {
	before, err := t.attemptsTotal(ctx, p.o.Upstream)
	if err != nil {
		return nil, fmt.Errorf("reading the upstream attempts: %w", err)
	}
	req := p.req
	req.url = t.public + req.url
	var rec recorder
	began := time.Now()
	w := &watcher{t: t, upstream: p.o.Upstream, route: p.route.Name, began: began}
	runCtx, stopRun := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { w.run(runCtx) })
	faultErr := make(chan error, 1)
	bg.Go(func() {
		err := p.timeline(runCtx, t.faults, began)
		if err != nil {
			stopRun() // a fault that cannot be played ends the drill
		}
		faultErr <- err
	})
	if p.o.Progress != nil {
		bg.Go(func() { p.progress(runCtx, &rec, w, began) })
	}
	attack(runCtx, req, p.o.Rate, p.o.Duration, p.slowest, func(r *vegeta.Result) { rec.add(classify(r, began)) })
	stopRun()
	bg.Wait()
	if err := <-faultErr; err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %w", errStopped, ctx.Err())
	}
	// A last look at the breaker and the queues.
	w.poll(ctx)
	after, err := t.attemptsTotal(ctx, p.o.Upstream)
	if err != nil {
		return nil, fmt.Errorf("reading the upstream attempts: %w", err)
	}
	m, series := summarize(rec.snapshot(), p.phases, p.o.Duration, w, after-before)
	checks, pass := Verdict(p.exps, &m)
	return &Report{Pass: pass, Scenario: p.sc.name, Checks: checks, Metrics: m, Upstream: p.o.Upstream, Route: p.route.Name,
		Rate: p.o.Rate, Duration: p.o.Duration, Started: began, Phases: p.phases, Series: series}, nil
}

// timeline turns the fault on at the fault phase's start (on and off every
// p.flapping for flapping) and off at its end. It returns at the fault's
// end, or when ctx ends (the fault turned off).
func (p *plan) timeline(ctx context.Context, f *faultProxy, began time.Time) error {
	fault := p.phases[1]
	wait := func(at time.Duration) bool {
		t := time.NewTimer(time.Until(began.Add(at)))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	defer func() { _ = f.set(p.sc.fault, false) }()
	if !wait(fault.Start) {
		return nil
	}
	step := cmp.Or(p.flapping, fault.End-fault.Start)
	on := true
	for at := fault.Start; at < fault.End; at += step {
		if err := f.set(p.sc.fault, on); err != nil {
			return err
		}
		if !wait(min(at+step, fault.End)) {
			return nil
		}
		on = !on
	}
	if err := f.set(p.sc.fault, false); err != nil {
		return errors.Join(errors.New("ending the fault"), err)
	}
	return nil
}
