package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// demoConfig is the gateway of the demo; its ${DEMO_...} variables are the
// simulated downstreams' URLs.
//
//go:embed demo.yaml
var demoConfig []byte

// The simulated downstreams, in the order they start. Each one's URL is the
// variable DEMO_<NAME> of demo.yaml (upper case, "-" as "_").
var demoDownstreams = []string{"catalog-a", "catalog-b", "catalog-replica", "reports", "recommendations"}

const (
	// reportsSlowDelay is how late a slow answer of reports comes: twice
	// the attempt timeout of demo.yaml (250ms), so the attempt times out.
	reportsSlowDelay = 500 * time.Millisecond
	// reportsSlowEvery makes every n-th request to reports slow, whatever
	// the phase: a retry on timeout hides it, the p99 shows it.
	reportsSlowEvery = 5
	// phaseMinRequests is how many requests of each kind must be answered
	// within a phase before the next one starts, however long that takes:
	// a starved process still shows every phase.
	phaseMinRequests = 3
)

// gatewayPhase is one step of the demo's scenario: which downstreams fail
// (503 to every request and to their health check) and which are slow.
type gatewayPhase struct {
	name, about   string
	failing, slow []string
}

var gatewayPhases = []gatewayPhase{
	{name: "healthy", about: "every downstream answers; the stale cache fills up"},
	{name: "catalog-b-503", about: "catalog-b answers 503: retries go to catalog-a, outlier ejection and health checks take catalog-b out; recommendations fails: its default answers",
		failing: []string{"catalog-b", "recommendations"}},
	{name: "catalog-down", about: "both catalog instances answer 503: the breaker opens and catalog-replica answers; reports is slow: attempt timeouts, retries, its breaker opens",
		failing: []string{"catalog-a", "catalog-b", "recommendations"}, slow: []string{"reports"}},
	{name: "catalog+replica-down", about: "the replica fails too: the stale cache answers what was seen before, the static answer the rest; reports recovers",
		failing: []string{"catalog-a", "catalog-b", "catalog-replica"}},
	{name: "recovered", about: "every downstream answers again: health checks and half-open probes bring them back"},
}

// demoRequest is one kind of request the demo's clients send in turn.
type demoRequest struct {
	route string
	path  func(seq int64) string
}

var demoRequests = []demoRequest{
	// A few popular items: cached while the catalog answers, served stale later.
	{route: "catalog", path: func(seq int64) string { return fmt.Sprintf("/catalog/items/%d", seq%3+1) }},
	// Items never asked before: no stale copy, the static answer covers them.
	{route: "catalog", path: func(seq int64) string { return fmt.Sprintf("/catalog/items/new-%d", seq) }},
	{route: "reports", path: func(int64) string { return "/reports/daily" }},
	{route: "recommendations", path: func(seq int64) string { return fmt.Sprintf("/recommendations/user-%d", seq%10) }},
}

var demoRoutes = []string{"catalog", "reports", "recommendations"}

// scenario plays gatewayPhases: a phase ends once it lasted its length and
// phaseMinRequests of each kind of request were answered within it.
type scenario struct {
	length  time.Duration
	cur     atomic.Int32
	changes chan int // each phase entered, then len(gatewayPhases) when the last one ended

	mu       sync.Mutex
	started  time.Time
	counts   []int // answers per kind of request in the current phase
	finished bool  // the last phase ended: it stays in force, nothing counts any more
}

func newScenario(length time.Duration) *scenario {
	s := &scenario{length: length, changes: make(chan int, len(gatewayPhases)+1),
		started: time.Now(), counts: make([]int, len(demoRequests))}
	s.changes <- 0
	return s
}

func (s *scenario) current() *gatewayPhase { return &gatewayPhases[s.cur.Load()] }

// answered counts an answer to a request of kind sent during phase, and
// moves to the next phase when the current one is complete.
func (s *scenario) answered(kind int, phase int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	if s.finished || phase != cur {
		return
	}
	s.counts[kind]++
	if time.Since(s.started) < s.length || slices.Min(s.counts) < phaseMinRequests {
		return
	}
	next := int(cur) + 1
	s.changes <- next
	if next == len(gatewayPhases) {
		s.finished = true
		return
	}
	clear(s.counts)
	s.started = time.Now()
	s.cur.Store(int32(next))
}

// simulated is one in-process downstream; its behaviour is the current phase's.
type simulated struct {
	name     string
	sc       *scenario
	requests atomic.Int64 // not counting health checks
}

func (d *simulated) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := d.sc.current()
	w.Header().Set("Content-Type", "application/json")
	if slices.Contains(p.failing, d.name) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"simulated outage"}`)
		return
	}
	if r.URL.Path == "/healthz" {
		_, _ = io.WriteString(w, `{"status":"ok"}`)
		return
	}
	n := d.requests.Add(1)
	if d.name == "reports" && (slices.Contains(p.slow, d.name) || n%reportsSlowEvery == 0) {
		t := time.NewTimer(reportsSlowDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done(): // the gateway gave up on this attempt
			return
		}
	}
	_, _ = fmt.Fprintf(w, `{"upstream":%q,"path":%q}`+"\n", d.name, r.URL.Path)
}

// routeCounts are the answers of one route: by status class, and requests
// that got none (a transport error).
type routeCounts struct {
	requests, noAnswer int
	classes            [6]int // by status / 100
}

// gatewayTally is what the clients saw, over an interval or the whole run.
type gatewayTally struct {
	routes    map[string]*routeCounts
	fallbacks map[string]int  // by Spillway-Fallback
	reasons   map[string]int  // by Spillway-Reason
	latencies []time.Duration // of the interval only
}

func newGatewayTally() gatewayTally {
	t := gatewayTally{routes: map[string]*routeCounts{}, fallbacks: map[string]int{}, reasons: map[string]int{}}
	for _, r := range demoRoutes {
		t.routes[r] = &routeCounts{}
	}
	return t
}

func (t *gatewayTally) add(route string, resp *http.Response, err error) {
	rc := t.routes[route]
	rc.requests++
	if err != nil {
		rc.noAnswer++
		return
	}
	if c := resp.StatusCode / 100; c >= 1 && c < len(rc.classes) {
		rc.classes[c]++
	}
	if f := resp.Header.Get(gateway.FallbackHeader); f != "" {
		t.fallbacks[f]++
	}
	if r := resp.Header.Get(spillwayhttp.ReasonHeader); r != "" {
		t.reasons[r]++
	}
}

// gatewayStats collects the clients' answers for the summary lines.
type gatewayStats struct {
	mu            sync.Mutex
	window, total gatewayTally
}

func (s *gatewayStats) record(route string, resp *http.Response, err error, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window.add(route, resp, err)
	s.window.latencies = append(s.window.latencies, d)
	s.total.add(route, resp, err)
}

// take returns the interval's tally and starts a new one.
func (s *gatewayStats) take() gatewayTally {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.window
	s.window = newGatewayTally()
	return w
}

// demoURLs are where the running demo gateway answers.
type demoURLs struct {
	Gateway, Status, Metrics string
}

// runGatewayDemo starts the simulated downstreams and the gateway of
// demo.yaml in front of them, drives o.workers clients through the
// scenario's phases and prints a summary line every o.tick to out (the
// gateway's operational log goes to errOut). It runs for o.duration, longer
// if the scenario needs it, or until ctx ends; then it stops the clients,
// drains the gateway and stops the downstreams. ready, when not nil, is
// called with the gateway's URLs once it answers, before the load starts.
func runGatewayDemo(ctx context.Context, out, errOut io.Writer, o demoOptions, ready func(demoURLs)) error {
	if o.phase <= 0 || o.tick <= 0 || o.workers <= 0 || o.pace < 0 || o.duration < 0 {
		return errors.New("demo: --phase, --tick and --workers must be positive, --pace and --duration not negative")
	}
	sc := newScenario(o.phase)

	downstreams, env, err := startDownstreams(sc)
	defer downstreams.stop()
	if err != nil {
		return err
	}
	cfg, warnings, err := config.Parse("demo.yaml", demoConfig, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	for _, w := range warnings {
		fmt.Fprintf(errOut, "warning: %s\n", w.String())
	}
	if err != nil {
		return fmt.Errorf("demo: the embedded configuration: %w", err)
	}
	// Warn is the level of the health and ejection events: they show
	// between the summary lines on a terminal.
	logger := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := gateway.New(cfg, gateway.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer g.Close()
	p, publicLn, adminLn, err := startProcess(cfg, g, admin.Options{}, nil, logger)
	if err != nil {
		return err
	}

	adminURL := "http://" + adminLn.Addr().String()
	urls := demoURLs{Gateway: "http://" + publicLn.Addr().String(), Status: adminURL + "/api/v1/status", Metrics: adminURL + "/metrics"}
	fmt.Fprintf(out, "Spillway gateway demo: %d clients → gateway → simulated downstreams (%s)\n", o.workers, strings.Join(demoDownstreams, ", "))
	fmt.Fprintf(out, "  gateway  %s   (try: curl -i %s/catalog/items/1)\n", urls.Gateway, urls.Gateway)
	fmt.Fprintf(out, "  status   %s\n", urls.Status)
	fmt.Fprintf(out, "  metrics  %s\n", urls.Metrics)
	fmt.Fprintf(out, "Scenario, %s a phase: %s. Ctrl-C stops the demo.\n", o.phase, phaseList())
	fmt.Fprintln(out, "Routes: requests 2xx/4xx/5xx. Breaker, ejected and unhealthy: the catalog upstream (see the status URL).")
	if ready != nil {
		ready(urls)
	}

	stats := &gatewayStats{window: newGatewayTally(), total: newGatewayTally()}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	tr := &http.Transport{MaxIdleConnsPerHost: o.workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	var seq atomic.Int64
	for i := range o.workers {
		wg.Go(func() { drive(loadCtx, client, urls.Gateway, i, o, sc, stats, &seq) })
	}

	start := time.Now()
	ticker := time.NewTicker(o.tick)
	defer ticker.Stop()
	deadline := time.NewTimer(o.duration)
	defer deadline.Stop()
	var cause error
	timeUp, played := false, false
loop:
	for !timeUp || !played {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "interrupted: stopping the clients and draining the gateway")
			break loop
		case err := <-p.errc:
			p.running--
			cause = err
			break loop
		case <-deadline.C:
			timeUp = true
		case i := <-sc.changes:
			if i == len(gatewayPhases) {
				played = true
				continue
			}
			ph := gatewayPhases[i]
			fmt.Fprintf(out, "── phase %d/%d %s: %s\n", i+1, len(gatewayPhases), ph.name, ph.about)
			if i == 0 {
				fmt.Fprintf(out, "%7s  %-20s %-14s %-14s %-15s %-44s %-34s %-9s %-7s %-9s %8s %8s\n",
					"t", "phase", "catalog", "reports", "recommendations", "fallbacks", "reasons", "breaker", "ejected", "unhealthy", "p50", "p99")
			}
		case <-ticker.C:
			printGatewayLine(out, time.Since(start).Round(o.tick/10), sc.current().name, stats.take(), g.Status().Upstreams["catalog"])
		}
	}
	stopLoad()
	wg.Wait()
	if err := p.stop(nil, cause); err != nil {
		return err
	}
	printGatewayTotals(out, time.Since(start), stats.total, g.Status().Upstreams["catalog"], downstreams)
	return nil
}

// drive is one client: it sends the kinds of demoRequests in turn, starting
// at its own index, until ctx ends.
func drive(ctx context.Context, client *http.Client, base string, i int, o demoOptions, sc *scenario, stats *gatewayStats, seq *atomic.Int64) {
	// Staggered starts spread the clients over the pace instead of a burst.
	if spillway.Sleep(ctx, o.pace*time.Duration(i)/time.Duration(o.workers)) != nil {
		return
	}
	for n := i; ; n++ {
		kind := n % len(demoRequests)
		rq := demoRequests[kind]
		phase := sc.cur.Load()
		start := time.Now()
		resp, err := get(ctx, client, base+rq.path(seq.Add(1)))
		if ctx.Err() != nil {
			return
		}
		stats.record(rq.route, resp, err, time.Since(start))
		sc.answered(kind, phase)
		if spillway.Sleep(ctx, o.pace) != nil {
			return
		}
	}
}

// get sends a GET and reads the whole answer (the connection is reused).
func get(ctx context.Context, client *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp, err
}

// downstreamSet is the running simulated downstreams.
type downstreamSet struct {
	servers []*http.Server
	sims    []*simulated
	wg      sync.WaitGroup
}

// startDownstreams starts every simulated downstream on 127.0.0.1:0 and
// returns the variables of demo.yaml that name their URLs. The set must be
// stopped, even on error.
func startDownstreams(sc *scenario) (*downstreamSet, map[string]string, error) {
	set := &downstreamSet{}
	env := map[string]string{}
	for _, name := range demoDownstreams {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return set, nil, fmt.Errorf("demo downstream %s: %w", name, err)
		}
		sim := &simulated{name: name, sc: sc}
		srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
		set.servers = append(set.servers, srv)
		set.sims = append(set.sims, sim)
		set.wg.Go(func() { _ = srv.Serve(ln) })
		env["DEMO_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = "http://" + ln.Addr().String()
	}
	return set, env, nil
}

// stop closes the downstreams once their requests in flight ended, or
// after a second.
func (s *downstreamSet) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, srv := range s.servers {
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
	}
	s.wg.Wait()
}

func phaseList() string {
	names := make([]string, len(gatewayPhases))
	for i, p := range gatewayPhases {
		names[i] = p.name
	}
	return strings.Join(names, " → ")
}

func printGatewayLine(out io.Writer, t time.Duration, phase string, w gatewayTally, catalog gateway.UpstreamStatus) {
	slices.Sort(w.latencies)
	ejected, unhealthy := instancesOut(catalog)
	fmt.Fprintf(out, "%7s  %-20s %-14s %-14s %-15s %-44s %-34s %-9s %-7s %-9s %8s %8s\n",
		t, phase, w.routes["catalog"], w.routes["reports"], w.routes["recommendations"],
		formatFallbacks(w.fallbacks), formatCounts(w.reasons), catalog.Breaker.State, ejected, unhealthy,
		percentile(w.latencies, 0.50).Round(time.Millisecond/10), percentile(w.latencies, 0.99).Round(time.Millisecond/10))
}

func printGatewayTotals(out io.Writer, d time.Duration, t gatewayTally, catalog gateway.UpstreamStatus, ds *downstreamSet) {
	calls := make([]string, len(ds.sims))
	for i, s := range ds.sims {
		calls[i] = fmt.Sprintf("%s=%d", s.name, s.requests.Load())
	}
	parts := make([]string, len(demoRoutes))
	for i, r := range demoRoutes {
		parts[i] = fmt.Sprintf("%s %s", r, t.routes[r])
	}
	ejected, unhealthy := instancesOut(catalog)
	fmt.Fprintf(out, "done after %s: %s.\n", d.Round(time.Millisecond), strings.Join(parts, ", "))
	fmt.Fprintf(out, "  fallbacks: %s; reasons: %s\n", formatFallbacks(t.fallbacks), formatCounts(t.reasons))
	fmt.Fprintf(out, "  catalog breaker %s, %s instances ejected, %s unhealthy; downstream requests: %s\n",
		catalog.Breaker.State, ejected, unhealthy, strings.Join(calls, " "))
}

// String formats the counts as "requests 2xx/4xx/5xx", and the requests
// without an answer when there were some.
func (c *routeCounts) String() string {
	s := fmt.Sprintf("%d %d/%d/%d", c.requests, c.classes[2], c.classes[4], c.classes[5])
	if c.noAnswer > 0 {
		s += fmt.Sprintf(" !%d", c.noAnswer)
	}
	return s
}

// instancesOut returns "ejected/all" and "unhealthy/all" of an upstream.
func instancesOut(u gateway.UpstreamStatus) (ejected, unhealthy string) {
	e, h := 0, 0
	for _, in := range u.Instances {
		if in.Ejected {
			e++
		}
		if !in.Healthy {
			h++
		}
	}
	return fmt.Sprintf("%d/%d", e, len(u.Instances)), fmt.Sprintf("%d/%d", h, len(u.Instances))
}

// formatFallbacks lists the brief's kinds in the order of a chain.
func formatFallbacks(m map[string]int) string {
	var parts []string
	for _, k := range []string{gateway.FallbackReplica, gateway.FallbackStaleCache, gateway.FallbackStatic, gateway.FallbackDefault} {
		if n := m[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
