package demo

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/examples/seed/seed"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
	"github.com/spillway-dev/spillway/gateway/async"
	"github.com/spillway-dev/spillway/internal/server"
	"github.com/spillway-dev/spillway/queue"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// demoConfig is the gateway of the demo; its ${DEMO_...} variables are the
// simulated downstreams' URLs.
//
//go:embed demo.yaml
var demoConfig []byte

// The simulated downstreams, in the order they start. Each one's URL is the
// variable DEMO_<NAME> of demo.yaml (upper case, "-" as "_").
var demoDownstreams = []string{"catalog-a", "catalog-b", "catalog-replica", "reports", "recommendations", "orders"}

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
	// invalidOrderEvery makes the orders numbered 7, 7+n, 7+2n... invalid
	// (quantity 0): orders refuses them with 422, so they are
	// dead-lettered at once. The 7th comes early even in a short run.
	invalidOrderEvery = 40
	// repeatOrderEvery makes a client resend its last keyed order every
	// n-th time it posts one, as a client does when an answer got lost.
	repeatOrderEvery = 4
	// drainMax bounds the wait for the orders queue to empty once the
	// clients stopped.
	drainMax = 30 * time.Second
)

// gatewayPhase is one step of the demo's scenario: which downstreams fail
// (503 to every request and to their health check), which are down (every
// connection dropped without an answer) and which are slow.
type gatewayPhase struct {
	name, about         string
	failing, down, slow []string
}

var gatewayPhases = []gatewayPhase{
	{name: "healthy", about: "every downstream answers; the stale cache fills up; each order is delivered as soon as it is accepted"},
	{name: "catalog-b-503", about: "catalog-b answers 503: retries go to catalog-a, outlier ejection and health checks take catalog-b out; recommendations fails: its default answers; " +
		"orders answers 503: the gateway still answers 202 and the jobs pile up in the queue",
		failing: []string{"catalog-b", "recommendations", "orders"}},
	{name: "catalog-down", about: "both catalog instances answer 503: the breaker opens and catalog-replica answers; reports is slow: attempt timeouts, retries, its breaker opens; " +
		"orders is down (connections dropped): more jobs wait",
		failing: []string{"catalog-a", "catalog-b", "recommendations"}, down: []string{"orders"}, slow: []string{"reports"}},
	{name: "catalog+replica-down", about: "the replica fails too: the stale cache answers what was seen before, the static answer the rest; reports recovers; " +
		"orders is back: health checks and half-open probes let the queue drain",
		failing: []string{"catalog-a", "catalog-b", "catalog-replica"}},
	{name: "recovered", about: "every downstream answers again: health checks and half-open probes bring them back"},
}

// demoRequest is one kind of request the demo's clients send in turn: a
// GET of path, or, for an order, a POST to /orders.
type demoRequest struct {
	route string
	path  func(seq int64) string
	order bool
}

var demoRequests = []demoRequest{
	// A few popular items: cached while the catalog answers, served stale later.
	{route: "catalog", path: func(seq int64) string { return fmt.Sprintf("/catalog/items/%d", seq%3+1) }},
	// Items never asked before: no stale copy, the static answer covers them.
	{route: "catalog", path: func(seq int64) string { return fmt.Sprintf("/catalog/items/new-%d", seq) }},
	{route: "reports", path: func(int64) string { return "/reports/daily" }},
	{route: "recommendations", path: func(seq int64) string { return fmt.Sprintf("/recommendations/user-%d", seq%10) }},
	// An order, stored by the async route and delivered later.
	{route: "orders", path: func(int64) string { return "/orders" }, order: true},
	// The seed's architecture: gateway → service A → service B (seed.go).
	{route: "shop", path: func(seq int64) string { return fmt.Sprintf("/shop/items/%d", seq%4+1) }},
}

var demoRoutes = []string{"catalog", "reports", "recommendations", "orders"}

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
	orders   *orderBook   // the orders service's; nil for the others
}

func (d *simulated) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := d.sc.current()
	if slices.Contains(p.down, d.name) {
		// No answer at all: the server closes the connection (and logs
		// nothing for this panic value).
		panic(http.ErrAbortHandler)
	}
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
	if d.orders != nil {
		d.orders.serve(w, r)
		return
	}
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

// orderBook is what the simulated orders service recorded: the jobs it
// took (by Spillway-Job-Id), the deliveries of a job it had already taken,
// and the invalid orders it refused.
type orderBook struct {
	mu          sync.Mutex
	taken       map[string]bool
	redelivered int
	refused     int
}

// serve takes an order, or refuses it with 422 when its quantity is not
// positive: a 4xx that the gateway dead-letters at once.
func (b *orderBook) serve(w http.ResponseWriter, r *http.Request) {
	var order struct {
		Quantity int `json:"quantity"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&order); err != nil || order.Quantity <= 0 {
		b.mu.Lock()
		b.refused++
		b.mu.Unlock()
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"error":"an order needs a positive quantity"}`)
		return
	}
	id := r.Header.Get(async.JobIDHeader)
	b.mu.Lock()
	if b.taken[id] {
		b.redelivered++ // delivery is at least once: the same job again
	}
	b.taken[id] = true
	b.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
	_, _ = fmt.Fprintf(w, `{"order":%q}`+"\n", id)
}

// counts returns the orders taken, the redeliveries and the refusals.
func (b *orderBook) counts() (taken, redelivered, refused int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.taken), b.redelivered, b.refused
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
	// Orders answered 202 (counted in total only): new jobs, and repeated
	// Idempotency-Keys answered with their first job's id.
	accepted, duplicates int
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
	jobs          []string // the ids of the jobs accepted, for the final check
}

// recordJob counts an order answered 202 with job id (dup: an earlier
// job's, for a repeated Idempotency-Key).
func (s *gatewayStats) recordJob(id string, dup bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if dup {
		s.total.duplicates++
		return
	}
	s.total.accepted++
	s.jobs = append(s.jobs, id)
}

// acceptedJobs returns the ids of the jobs accepted so far.
func (s *gatewayStats) acceptedJobs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.jobs)
}

func (s *gatewayStats) record(route string, resp *http.Response, err error, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window.add(route, resp, err)
	s.window.latencies = append(s.window.latencies, d)
	s.total.add(route, resp, err)
}

// take returns the interval's tally and starts a new one, and the run's
// order counts so far (total's maps are nil).
func (s *gatewayStats) take() (window, total gatewayTally) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.window
	s.window = newGatewayTally()
	return w, gatewayTally{accepted: s.total.accepted, duplicates: s.total.duplicates}
}

// URLs are where the running demo gateway answers.
type URLs struct {
	// Dashboard is the admin listener's dashboard, which asks for Token.
	Gateway, Status, Metrics, Dashboard string
	// Job is the status URL of the demo's first order (public, no token);
	// DeadLetters the admin API's list of the orders route's dead letters,
	// which needs Token.
	Job, DeadLetters, Token string
}

// RunGateway starts the simulated downstreams, services A and B of the
// shop route, the durable queue (the embedded store, in a temporary
// directory) and the gateway of demo.yaml in front of them, drives
// o.Workers clients through the scenario's phases while the shop loop plays
// its faults, and prints the summary lines every o.Tick to out (the
// gateway's operational log goes to errOut). It runs for o.Duration, longer
// if the scenario or the first shop loop needs it (0: until ctx ends), then
// waits for the orders queue to drain; or until ctx ends. Then it stops
// the clients and the listeners, checks that every accepted order was
// delivered or dead-lettered, stops the queue workers, closes the queue,
// removes its directory and stops the downstreams. ready, when not nil, is
// called with the gateway's URLs once it answers, before the load starts.
func RunGateway(ctx context.Context, out, errOut io.Writer, o Options, ready func(URLs)) error {
	if o.Phase <= 0 || o.Tick <= 0 || o.Workers <= 0 || o.Pace < 0 || o.Duration < 0 {
		return errors.New("demo: --phase, --tick and --workers must be positive, --pace and --duration not negative")
	}
	sc := newScenario(o.Phase)

	downstreams, env, err := startDownstreams(sc)
	defer downstreams.stop()
	if err != nil {
		return err
	}
	// The store lives in a temporary directory, never in the user's
	// working directory, and goes with the demo.
	dir, err := os.MkdirTemp("", "spillway-demo-")
	if err != nil {
		return fmt.Errorf("demo: the queue's directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	env["DEMO_QUEUE_DIR"] = dir
	env["DEMO_ADMIN_TOKEN"] = rand.Text()
	cfg, err := parseConfig(env, errOut)
	if err != nil {
		return err
	}
	// Warn is the level of the health and ejection events: they show
	// between the summary lines on a terminal.
	logger := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	q, err := server.OpenQueue(ctx, cfg, logger)
	if err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while the store was opening: nothing ran yet
		}
		return err
	}
	// Deferred before g.Close, so run after it: the workers stop, then the
	// store is flushed and closed, then its directory removed.
	defer func() {
		if err := q.Close(); err != nil {
			logger.Error("closing the queue", "error", err)
		}
	}()
	g, err := gateway.New(cfg, gateway.Options{Logger: logger, Queue: q})
	if err != nil {
		return err
	}
	defer g.Close()
	p, err := server.Start(cfg, g, admin.Options{Token: cfg.Admin.Token, Tokens: cfg.Admin.Tokens}, nil, logger)
	if err != nil {
		return err
	}

	stats := &gatewayStats{window: newGatewayTally(), total: newGatewayTally()}
	tr := &http.Transport{MaxIdleConnsPerHost: o.Workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	adminURL := "http://" + p.Admin.Addr().String()
	urls := URLs{Gateway: "http://" + p.Public.Addr().String(), Status: adminURL + "/api/v1/status", Metrics: adminURL + "/metrics",
		Dashboard:   adminURL + "/dashboard/",
		DeadLetters: adminURL + "/api/v1/dead-letters?route=orders", Token: cfg.Admin.Token}
	// A first order, so that there is a job status to look at.
	ld := &demoLoad{client: client, base: urls.Gateway, o: o, sc: sc, stats: stats, seed: &seedStats{}}
	resp, job, err := ld.postOrder(ctx, "demo-first-order", orderBody(ld.orderSeq.Add(1)))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		if stopErr := p.Stop(nil, nil); ctx.Err() != nil {
			fmt.Fprintln(out, "interrupted before the demo started")
			return stopErr
		}
		if err == nil {
			err = fmt.Errorf("%s", resp.Status)
		}
		return fmt.Errorf("demo: the first order: %w", err)
	}
	stats.recordJob(job.ID, job.Duplicate)
	urls.Job = urls.Gateway + async.JobsPath + job.ID
	printBanner(out, o, urls)
	if ready != nil {
		ready(urls)
	}
	run := &gatewayRun{out: out, o: o, g: g, p: p, sc: sc, stats: stats, ld: ld,
		loop: newSeedLoop(&downstreams.seed, ld.seed, g, client, adminURL, cfg.Admin.Token, o.Phase)}
	cause, interrupted := run.play(ctx)
	if err := p.Stop(nil, cause); err != nil {
		return err
	}
	run.report(ctx, q, downstreams, interrupted)
	return nil
}

// report prints the run's totals and where every order it saw accepted
// ended up. The store is still open (RunGateway's deferred calls close
// it): the status of each job is read back from it.
func (run *gatewayRun) report(ctx context.Context, q *queue.Queue, downstreams *downstreamSet, interrupted bool) {
	checkCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	check := checkJobs(checkCtx, q, run.stats.acceptedJobs())
	printGatewayTotals(run.out, time.Since(run.start), run.stats.total, run.g.Status().Upstreams["catalog"], downstreams)
	run.loop.totals(run.out)
	printOrdersCheck(run.out, check, run.stats.total.duplicates, max(run.peak, check.pending), downstreams, interrupted)
}

// parseConfig parses demo.yaml with env's variables, printing its warnings
// to errOut.
func parseConfig(env map[string]string, errOut io.Writer) (*config.Config, error) {
	cfg, warnings, err := config.Parse("demo.yaml", demoConfig, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	for _, w := range warnings {
		fmt.Fprintf(errOut, "warning: %s\n", w.String())
	}
	if err != nil {
		return nil, fmt.Errorf("demo: the embedded configuration: %w", err)
	}
	return cfg, nil
}

// printBanner prints what the demo runs and the URLs to try.
func printBanner(out io.Writer, o Options, urls URLs) {
	fmt.Fprintf(out, "Spillway gateway demo: %d clients → gateway → simulated downstreams (%s)\n", o.Workers, strings.Join(demoDownstreams, ", "))
	fmt.Fprintf(out, "  gateway  %s   (try: curl -i %s/catalog/items/1)\n", urls.Gateway, urls.Gateway)
	fmt.Fprintf(out, "  orders   POST %s/orders answers 202 once the order is stored   (try: curl -i -d '{\"quantity\":1}' %s/orders)\n", urls.Gateway, urls.Gateway)
	fmt.Fprintf(out, "  job      %s   (the first order's status)\n", urls.Job)
	fmt.Fprintf(out, "  dashboard %s   (token: %s)\n", urls.Dashboard, urls.Token)
	fmt.Fprintf(out, "  status   %s\n", urls.Status)
	fmt.Fprintf(out, "  metrics  %s\n", urls.Metrics)
	fmt.Fprintf(out, "  dead     curl -H 'Authorization: Bearer %s' '%s'\n", urls.Token, urls.DeadLetters)
	fmt.Fprintf(out, "  shop     %s/shop/items/1   (the seed: gateway → service A → service B; A's own fallback answers with %s: %s)\n",
		urls.Gateway, seed.FallbackHeader, seed.LastGood)
	fmt.Fprintf(out, "Scenario, %s a phase: %s. Ctrl-C stops the demo.\n", o.Phase, phaseList())
	fmt.Fprintf(out, "Shop loop, %s a step, repeated while the demo runs: %s.\n", o.Phase, seedStepList())
	fmt.Fprintln(out, "Routes: requests 2xx/4xx/5xx. Breaker, ejected and unhealthy: the catalog upstream (see the status URL).")
	fmt.Fprintln(out, "Orders are async: pending in the queue now, delivered to the orders service and dead-lettered so far.")
	fmt.Fprintln(out, "Shop lines: who answered the shop route's requests, and the breakers of the gateway on service A and of A's client on B.")
}

// gatewayRun is the gateway demo once its gateway answers.
type gatewayRun struct {
	out   io.Writer
	o     Options
	g     *gateway.Gateway
	p     *server.Process
	sc    *scenario
	stats *gatewayStats
	ld    *demoLoad
	loop  *seedLoop // the shop route's faults
	start time.Time
	peak  int // the most orders pending at once that a summary line saw
}

// play drives the clients through the scenario, and the shop loop, and
// prints the summary lines every o.Tick. Once o.Duration is over (never
// when it is 0) and the scenario and one shop loop played, it stops the
// clients and the loop and waits for the orders queue to drain (up to
// drainMax).
// It ends early when ctx ends (interrupted) or a listener fails (cause);
// the clients are stopped when it returns.
func (run *gatewayRun) play(ctx context.Context) (cause error, interrupted bool) {
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stopClients := func() {
		stopLoad()
		wg.Wait()
	}
	defer stopClients()
	for i := range run.o.Workers {
		wg.Go(func() { run.ld.drive(loadCtx, i) })
	}
	wg.Go(func() { run.loop.run(loadCtx) })
	run.start = time.Now()
	ticker := time.NewTicker(run.o.Tick)
	defer ticker.Stop()
	var deadline <-chan time.Time // none: until ctx ends
	if run.o.Duration > 0 {
		t := time.NewTimer(run.o.Duration)
		defer t.Stop()
		deadline = t.C
	}
	var drainEnd <-chan time.Time // set once the clients stopped
	timeUp, played, loopPlayed := false, false, run.loop.played
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(run.out, "interrupted: stopping the clients, draining the gateway, stopping the queue")
			return nil, true
		case err := <-run.p.Failed():
			return err, false
		case <-deadline:
			timeUp = true
		case note := <-run.loop.notes:
			fmt.Fprintln(run.out, note)
		case <-loopPlayed:
			loopPlayed = nil // a closed channel: read it once
		case i := <-run.sc.changes:
			if i == len(gatewayPhases) {
				played = true
			} else {
				run.announce(i)
			}
		case <-drainEnd:
			fmt.Fprintf(run.out, "the orders queue did not drain within %s\n", drainMax)
			return nil, false
		case <-ticker.C:
			if drained := run.summary(); drained && drainEnd != nil {
				return nil, false
			}
		}
		if timeUp && played && loopPlayed == nil && drainEnd == nil {
			stopClients()
			if oq := ordersQueue(run.g.Status(), run.g); oq.known && oq.pending == 0 {
				return nil, false
			}
			fmt.Fprintln(run.out, "── the clients stopped: waiting for the orders queue to drain")
			drainEnd = time.After(drainMax)
		}
	}
}

// announce prints the start of phase i of the scenario.
func (run *gatewayRun) announce(i int) {
	ph := gatewayPhases[i]
	fmt.Fprintf(run.out, "── phase %d/%d %s: %s\n", i+1, len(gatewayPhases), ph.name, ph.about)
	if i == 0 {
		printGatewayHeader(run.out)
	}
}

// summary prints the summary line of the last interval and reports
// whether the orders queue is known to be empty.
func (run *gatewayRun) summary() (drained bool) {
	st := run.g.Status()
	oq := ordersQueue(st, run.g)
	if oq.known {
		run.peak = max(run.peak, oq.pending)
	}
	w, total := run.stats.take()
	t := time.Since(run.start).Round(run.o.Tick / 10)
	printGatewayLine(run.out, t, run.sc.current().name, w, total, st.Upstreams["catalog"], oq)
	run.loop.summary(run.out, t, st)
	return oq.known && oq.pending == 0
}

// demoLoad is what the demo's clients share.
type demoLoad struct {
	client   *http.Client
	base     string
	o        Options
	sc       *scenario
	stats    *gatewayStats
	seed     *seedStats   // the shop route's answers
	seq      atomic.Int64 // requests sent
	orderSeq atomic.Int64 // new orders sent
}

// drive is client i: it sends the kinds of demoRequests in turn, starting
// at its own index, until ctx ends.
func (ld *demoLoad) drive(ctx context.Context, i int) {
	o := ld.o
	// Staggered starts spread the clients over the pace instead of a burst.
	if spillway.Sleep(ctx, o.Pace*time.Duration(i)/time.Duration(o.Workers)) != nil {
		return
	}
	var lastKey, lastBody string // the last keyed order, to resend now and then
	orders := 0
	for n := i; ; n++ {
		kind := n % len(demoRequests)
		rq := demoRequests[kind]
		phase := ld.sc.cur.Load()
		start := time.Now()
		var resp *http.Response
		var err error
		if rq.order {
			orders++
			key, body := lastKey, lastBody
			if key == "" || orders%repeatOrderEvery != 0 {
				// A new order; every other one carries an Idempotency-Key.
				seq := ld.orderSeq.Add(1)
				key, body = "", orderBody(seq)
				if seq%2 == 0 {
					key = fmt.Sprintf("demo-order-%d", seq)
				}
			}
			lastKey, lastBody = key, body
			var job jobAnswer
			// The stop does not cut an order short: its answer says
			// whether it was stored, which the final check needs.
			resp, job, err = ld.postOrder(context.WithoutCancel(ctx), key, body)
			if err == nil && resp.StatusCode == http.StatusAccepted {
				ld.stats.recordJob(job.ID, job.Duplicate)
			}
		} else {
			resp, err = get(ctx, ld.client, ld.base+rq.path(ld.seq.Add(1)))
		}
		if ctx.Err() != nil && !rq.order {
			return
		}
		if rq.route == "shop" {
			ld.seed.record(resp, err)
		} else {
			ld.stats.record(rq.route, resp, err, time.Since(start))
		}
		ld.sc.answered(kind, phase)
		if spillway.Sleep(ctx, o.Pace) != nil {
			return
		}
	}
}

// orderBody is order seq's JSON; one in invalidOrderEvery has quantity 0.
func orderBody(seq int64) string {
	qty := seq%3 + 1
	if seq%invalidOrderEvery == 7 {
		qty = 0
	}
	return fmt.Sprintf(`{"order":%d,"item":"item-%d","quantity":%d}`, seq, seq%5+1, qty)
}

// jobAnswer is the body of a 202.
type jobAnswer struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// postOrder posts body to /orders with Idempotency-Key key ("" for none)
// and reads the answer; job is set when it is a 202.
func (ld *demoLoad) postOrder(ctx context.Context, key, body string) (*http.Response, jobAnswer, error) {
	var job jobAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ld.base+"/orders", strings.NewReader(body))
	if err != nil {
		return nil, job, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(async.IdempotencyKeyHeader, key)
	}
	resp, err := ld.client.Do(req)
	if err != nil {
		return nil, job, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return resp, job, err
	}
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(b, &job); err != nil || !async.ValidJobID(job.ID) {
			return resp, job, fmt.Errorf("a 202 without a job id: %q", b)
		}
	}
	return resp, job, nil
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

// ordersState is the orders route's queue on a summary line: pending and
// dead letters from the store (known is false when it did not answer
// within a second), deliveries from the gateway's metrics.
type ordersState struct {
	known                    bool
	pending, dead, delivered int
}

func ordersQueue(st gateway.Status, g *gateway.Gateway) ordersState {
	qs, ok := st.Queues["orders"]
	return ordersState{known: ok, pending: qs.Pending, dead: qs.DeadLetters, delivered: deliveries(g, "orders", "delivered")}
}

// deliveries reads spillway_queue_deliveries_total{route,result} from the
// gateway's registry.
func deliveries(g *gateway.Gateway, route, result string) int {
	mfs, err := g.Registry().Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != "spillway_queue_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var r, res string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					r = l.GetValue()
				case "result":
					res = l.GetValue()
				}
			}
			if r == route && res == result {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

// jobsCheck is where the accepted jobs are at the end, read back one by one
// from the store.
type jobsCheck struct {
	accepted, delivered, dead, pending int
	lost                               int // the store does not know the id
	unread                             int // the store did not answer
}

func checkJobs(ctx context.Context, q *queue.Queue, ids []string) jobsCheck {
	c := jobsCheck{accepted: len(ids)}
	for _, id := range ids {
		st, err := q.Status(ctx, id)
		switch {
		case errors.Is(err, queue.ErrNotFound):
			c.lost++
		case err != nil:
			c.unread++
		case st.State == queue.StateDelivered:
			c.delivered++
		case st.State == queue.StateDead:
			c.dead++
		default:
			c.pending++
		}
	}
	return c
}

// downstreamSet is the running simulated downstreams, and services A and
// B of the shop route.
type downstreamSet struct {
	servers []*http.Server
	sims    []*simulated
	seed    seedServices
	wg      sync.WaitGroup
}

// startDownstreams starts every simulated downstream, and services A and B
// of the shop route, on 127.0.0.1:0 and returns the variables of demo.yaml
// that name their URLs. The set must be stopped, even on error.
func startDownstreams(sc *scenario) (*downstreamSet, map[string]string, error) {
	set := &downstreamSet{}
	env := map[string]string{}
	for _, name := range demoDownstreams {
		sim := &simulated{name: name, sc: sc}
		if name == "orders" {
			sim.orders = &orderBook{taken: map[string]bool{}}
		}
		u, err := set.serve(name, sim)
		if err != nil {
			return set, nil, err
		}
		set.sims = append(set.sims, sim)
		env["DEMO_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = u
	}
	a, err := set.seed.start(set)
	if err != nil {
		return set, nil, err
	}
	env["DEMO_SERVICE_A"] = a
	return set, env, nil
}

// serve serves h on 127.0.0.1:0 until the set stops, and returns its URL.
func (set *downstreamSet) serve(name string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo downstream %s: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	set.servers = append(set.servers, srv)
	set.wg.Go(func() { _ = srv.Serve(ln) })
	return "http://" + ln.Addr().String(), nil
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
	if s.seed.a != nil {
		s.seed.a.Close()
	}
}

func phaseList() string {
	return arrowList(len(gatewayPhases), func(i int) string { return gatewayPhases[i].name })
}

func seedStepList() string {
	return arrowList(len(seedSteps), func(i int) string { return seedSteps[i].name })
}

// arrowList joins the n names with arrows: a → b → c.
func arrowList(n int, name func(int) string) string {
	names := make([]string, n)
	for i := range names {
		names[i] = name(i)
	}
	return strings.Join(names, " → ")
}

// gatewayLineFormat is the layout of the header and of the summary lines.
const gatewayLineFormat = "%7s  %-20s %-14s %-14s %-15s %-14s %8s %7s %9s %4s  %-44s %-34s %-9s %-7s %-9s %8s %8s\n"

func printGatewayHeader(out io.Writer) {
	fmt.Fprintf(out, gatewayLineFormat, "t", "phase", "catalog", "reports", "recommendations",
		"orders", "accepted", "pending", "delivered", "dead",
		"fallbacks", "reasons", "breaker", "ejected", "unhealthy", "p50", "p99")
}

// printGatewayLine prints the interval w: the answers per route, then the
// orders accepted since the start (total), pending in the queue now,
// delivered and dead-lettered so far (oq), then the catalog's state.
func printGatewayLine(out io.Writer, t time.Duration, phase string, w, total gatewayTally, catalog gateway.UpstreamStatus, oq ordersState) {
	slices.Sort(w.latencies)
	ejected, unhealthy := instancesOut(catalog)
	pending, dead := "?", "?" // the store did not answer within a second
	if oq.known {
		pending, dead = strconv.Itoa(oq.pending), strconv.Itoa(oq.dead)
	}
	fmt.Fprintf(out, gatewayLineFormat,
		t, phase, w.routes["catalog"], w.routes["reports"], w.routes["recommendations"],
		w.routes["orders"], strconv.Itoa(total.accepted), pending, strconv.Itoa(oq.delivered), dead,
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

// printOrdersCheck prints where every order the clients saw accepted ended
// up, read back from the store, and what the orders service recorded.
func printOrdersCheck(out io.Writer, c jobsCheck, duplicates, peak int, ds *downstreamSet, interrupted bool) {
	var book *orderBook
	for _, s := range ds.sims {
		if s.orders != nil {
			book = s.orders
		}
	}
	taken, redelivered, refused := book.counts()
	unread := ""
	if c.unread > 0 {
		unread = fmt.Sprintf(" + %d unread (the store did not answer)", c.unread)
	}
	fmt.Fprintf(out, "  orders: %d accepted = %d delivered + %d dead + %d pending%s: %d lost (each job's status read back from the store)\n",
		c.accepted, c.delivered, c.dead, c.pending, unread, c.lost)
	fmt.Fprintf(out, "  orders: %d repeated Idempotency-Keys got their first job's id; at most %d pending at once; "+
		"the orders service took %d orders (%d delivered twice) and refused %d invalid ones (422: dead-lettered)\n",
		duplicates, peak, taken, redelivered, refused)
	switch {
	case interrupted && c.pending > 0:
		fmt.Fprintf(out, "  interrupted: the %d pending orders go with the demo's temporary store\n", c.pending)
	case c.pending > 0:
		fmt.Fprintf(out, "  %d orders were still pending when the demo stopped waiting\n", c.pending)
	}
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
