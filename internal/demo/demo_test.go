package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/internal/natstest"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"

	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

// lineWriter signals after the first summary line is written.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines int
	first chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines += bytes.Count(p, []byte("\n"))
	if w.lines == 3 {
		close(w.first)
	}
	return w.buf.Write(p)
}

func TestDemoStopsCleanlyOnInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &lineWriter{first: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- RunLibrary(ctx, w, Options{Phase: time.Hour, Tick: 50 * time.Millisecond, Workers: 4, Pace: time.Millisecond})
	}()
	<-w.first
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !strings.Contains(w.buf.String(), "interrupted") {
		t.Fatalf("no interrupt notice:\n%s", w.buf.String())
	}
}

func TestDemoRejectsBadOptions(t *testing.T) {
	if err := RunLibrary(context.Background(), &bytes.Buffer{}, Options{}); err == nil {
		t.Fatal("zero options must be refused")
	}
}

func TestGatewayDemoConfigLoadsWithoutWarnings(t *testing.T) {
	env := map[string]string{"DEMO_QUEUE_DIR": "/tmp/spillway-demo-test", "DEMO_ADMIN_TOKEN": "demo-token", "DEMO_SERVICE_A": "http://127.0.0.1:9100"}
	for i, name := range demoDownstreams {
		env["DEMO_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = "http://127.0.0.1:" + strconv.Itoa(9001+i)
	}
	cfg, warnings, err := config.Parse("demo.yaml", demoConfig, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("the demo's configuration has warnings: %v", warnings)
	}
	for _, name := range []string{"catalog", "catalog-replica", "reports", "recommendations", "orders", "service-a"} {
		up := cfg.Upstreams[name]
		if up == nil || up.Health == nil || up.Outlier.ConsecutiveFailures == 0 {
			t.Errorf("upstream %s: missing, or without health checks or outlier ejection", name)
		}
	}
	if n := len(cfg.Upstreams["catalog"].Instances); n != 2 {
		t.Errorf("catalog has %d instances, want 2", n)
	}
	if len(cfg.Routes[0].Fallback) != 3 {
		t.Errorf("the catalog route's fallback chain has %d steps, want replica, stale cache, static", len(cfg.Routes[0].Fallback))
	}
	// The store goes in the demo's temporary directory, never in the
	// working directory; the token opens the jobs and dead-letters API.
	if cfg.Queue.Dir != env["DEMO_QUEUE_DIR"] || len(cfg.Queue.Servers) > 0 {
		t.Errorf("queue: dir %q, servers %v; want the embedded store in DEMO_QUEUE_DIR", cfg.Queue.Dir, cfg.Queue.Servers)
	}
	if cfg.Admin.Token != env["DEMO_ADMIN_TOKEN"] {
		t.Errorf("admin.token %q, want DEMO_ADMIN_TOKEN", cfg.Admin.Token)
	}
	var orders *config.Route
	for _, r := range cfg.Routes {
		if r.Name == "orders" {
			orders = r
		}
	}
	if orders == nil || orders.Async == nil || orders.Upstream != "orders" {
		t.Fatalf("no async route orders delivering to the orders upstream: %+v", orders)
	}
	// The seed's architecture: the gateway, with its breaker and a
	// fallback cache, in front of service A.
	shop := cfg.Routes[len(cfg.Routes)-1]
	if shop.Name != "shop" || shop.Upstream != "service-a" || len(shop.Fallback) == 0 || shop.Fallback[0].StaleCache == nil {
		t.Errorf("the last route is not shop → service-a with a stale cache first: %+v", shop)
	}
}

func TestGatewayDemoScenarioAdvancesOnAnswersNotOnlyTime(t *testing.T) {
	sc := newScenario(0) // no minimum length: only the answers count
	if got := <-sc.changes; got != 0 {
		t.Fatalf("first change %d, want phase 0", got)
	}
	for range phaseMinRequests - 1 {
		for kind := range demoRequests {
			sc.answered(kind, 0)
		}
	}
	sc.answered(0, 1) // an answer to a request of another phase does not count
	if sc.cur.Load() != 0 {
		t.Fatal("the phase ended before every kind of request was answered enough times")
	}
	for kind := range demoRequests {
		sc.answered(kind, 0)
	}
	if sc.cur.Load() != 1 || <-sc.changes != 1 {
		t.Fatal("the phase did not end once every kind of request was answered enough times")
	}
	for phase := int32(1); phase < int32(len(gatewayPhases)); phase++ {
		for range phaseMinRequests {
			for kind := range demoRequests {
				sc.answered(kind, phase)
			}
		}
	}
	for want := 2; want <= len(gatewayPhases); want++ {
		if got := <-sc.changes; got != want {
			t.Fatalf("change %d, want %d", got, want)
		}
	}
	if got := sc.current().name; got != "recovered" {
		t.Fatalf("after the scenario the phase is %q, want the last one", got)
	}
}

// getOK fetches url and fails the test unless it answers 200.
func getOK(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// getWith fetches url with the admin token (none when token is empty) and
// returns the status and body.
func getWith(t *testing.T, client *http.Client, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// assertNoStoreLeft checks that the demo left no store behind: neither in
// tmp (TMPDIR of the run) nor in the working directory.
func assertNoStoreLeft(t *testing.T, tmp string) {
	t.Helper()
	if left, err := os.ReadDir(tmp); err != nil || len(left) > 0 {
		t.Errorf("the demo left %v in its temporary directory (%v)", left, err)
	}
	if _, err := os.Stat("spillway-data"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the demo created ./spillway-data in the working directory (%v)", err)
	}
}

func TestGatewayDemoServesFallbacksAndTheOptionalDefault(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out, errOut spillwaytest.Buffer
	var urls URLs
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	faults := &faultWatch{client: client, stop: make(chan struct{})}
	defer faults.end()
	ready := func(u URLs) {
		urls = u
		faults.start(u)
		if body := getOK(t, client, u.Gateway+"/catalog/items/1"); !strings.Contains(body, `"upstream":"catalog-`) {
			t.Errorf("the gateway's catalog answer came from elsewhere: %s", body)
		}
		var st gateway.Status
		if err := json.Unmarshal([]byte(getOK(t, client, u.Status)), &st); err != nil {
			t.Errorf("status: %v", err)
		}
		if n := len(st.Upstreams["catalog"].Instances); n != 2 {
			t.Errorf("status lists %d catalog instances, want 2: %+v", n, st)
		}
		if body := getOK(t, client, u.Metrics); !strings.Contains(body, "spillway_queue_pending") {
			t.Error("the metrics lack spillway_queue_pending")
		}
		var job struct{ State string }
		if err := json.Unmarshal([]byte(getOK(t, client, u.Job)), &job); err != nil || job.State == "" {
			t.Errorf("the first order's status %s: %+v %v", u.Job, job, err)
		}
		if code, _ := getWith(t, client, u.DeadLetters, ""); code != http.StatusUnauthorized {
			t.Errorf("dead letters without the token: %d, want 401", code)
		}
		if code, body := getWith(t, client, u.DeadLetters, u.Token); code != http.StatusOK || !strings.Contains(body, `"items"`) {
			t.Errorf("dead letters with the token: %d %s", code, body)
		}
	}
	o := Options{Phase: 100 * time.Millisecond, Tick: 50 * time.Millisecond, Workers: 4, Pace: time.Millisecond, Duration: time.Nanosecond}
	if err := RunGateway(context.Background(), &out, &errOut, o, ready); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, errOut.String())
	}
	faults.end()
	text := out.String()
	if urls.Gateway == "" {
		t.Fatal("ready was not called")
	}
	for _, want := range []string{"gateway  " + urls.Gateway, "status   " + urls.Status, "metrics  " + urls.Metrics,
		"dashboard " + urls.Dashboard + "   (token: " + urls.Token + ")",
		"job      " + urls.Job, "Bearer " + urls.Token + "' '" + urls.DeadLetters + "'"} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q:\n%s", want, text)
		}
	}
	for i, p := range gatewayPhases {
		if want := "phase " + strconv.Itoa(i+1) + "/" + strconv.Itoa(len(gatewayPhases)) + " " + p.name; !strings.Contains(text, want) {
			t.Errorf("the output lacks %q:\n%s", want, text)
		}
	}
	m := regexp.MustCompile(`fallbacks: (.*); reasons`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no final summary:\n%s", text)
	}
	served := map[string]int{}
	for _, f := range strings.Fields(m[1]) {
		kind, n, _ := strings.Cut(f, "=")
		served[kind], _ = strconv.Atoi(n)
	}
	if served[gateway.FallbackDefault] == 0 {
		t.Errorf("the optional route's default was never served: %v\n%s", served, text)
	}
	kinds := 0
	for _, k := range []string{gateway.FallbackReplica, gateway.FallbackStaleCache, gateway.FallbackStatic} {
		if served[k] > 0 {
			kinds++
		}
	}
	if kinds < 2 {
		t.Errorf("the catalog's fallback chain served %d kinds, want at least 2: %v\n%s", kinds, served, text)
	}
	if strings.Contains(errOut.String(), "warning:") {
		t.Errorf("the embedded configuration has warnings:\n%s", errOut.String())
	}
	checkOrders(t, text, false)
	checkShopLoop(t, text)
	// The output says the kill switch cleared it (checkShopLoop); the
	// run may end right after, too soon for a poll to see the empty list.
	if !faults.sawShop {
		t.Error("GET /api/v1/faults, polled during the run, never listed a fault on shop")
	}
	assertNoStoreLeft(t, tmp)
}

// checkShopLoop checks the shop loop's first pass: A's fallback served
// while B was down, the gateway's breaker on service-a opened while A
// flapped, the fault was listed and the kill switch removed it.
func checkShopLoop(t *testing.T, text string) {
	t.Helper()
	for _, re := range []string{
		`(?m)^── shop loop 1, step 1/4 healthy: `,
		`(?m)^ +\S+  shop \S+ +\d+ requests: A \d+, A's fallback \d+, gateway's fallbacks \d+, errors \d+; breakers: gateway→A \S+, A→B \S+$`,
		`(?m)^   b-down ended: A's fallback served [1-9]\d* of \d+ requests$`,
		`a-flapping: .*; fault [0-9a-f]{16} on route shop listed on GET /api/v1/faults`,
		`(?m)^   a-flapping ended: the gateway's breaker on service-a opened \(event stream: fault added, breaker service-a → open\).*; kill switch DELETE /api/v1/faults cleared 1$`,
		`(?m)^  shop \(gateway → service A → service B\): \d+ requests: `,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("the output lacks %s:\n%s", re, text)
		}
	}
}

// faultWatch polls GET /api/v1/faults while the demo runs, as the
// dashboard's faults panel does, to see the a-flapping fault on the route
// shop.
type faultWatch struct {
	client  *http.Client
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	sawShop bool // written by the poller, read after end
}

func (f *faultWatch) start(u URLs) {
	f.done = make(chan struct{})
	go func() {
		defer close(f.done)
		for {
			select {
			case <-f.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			req, _ := http.NewRequest(http.MethodGet, strings.TrimSuffix(u.Status, "/status")+"/faults", nil)
			req.Header.Set("Authorization", "Bearer "+u.Token)
			resp, err := f.client.Do(req)
			if err != nil {
				continue // stopping
			}
			var l struct{ Faults []gateway.Fault }
			err = json.NewDecoder(resp.Body).Decode(&l)
			resp.Body.Close()
			if err == nil && len(l.Faults) > 0 && l.Faults[0].Route == "shop" {
				f.sawShop = true
			}
		}
	}()
}

// end stops the poller and waits for it.
func (f *faultWatch) end() {
	f.once.Do(func() { close(f.stop) })
	if f.done != nil {
		<-f.done
	}
}

// checkOrders checks the orders columns of the summary lines and the final
// check: every order accepted was delivered or dead-lettered (or, when
// interrupted, is still pending), none lost.
func checkOrders(t *testing.T, text string, interrupted bool) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^ +t +phase .* orders +accepted +pending +delivered +dead `).MatchString(text) {
		t.Errorf("the header lacks the orders columns:\n%s", text)
	}
	// A summary line: catalog, reports, recommendations, orders ("n 2xx/4xx/5xx"), then accepted, pending, delivered, dead.
	if !regexp.MustCompile(`(?m)^ +\S+ +\S+ +(\d+ \d+/\d+/\d+ +){4}\d+ +(\d+|\?) +\d+ +(\d+|\?)  `).MatchString(text) {
		t.Errorf("no summary line with the orders columns:\n%s", text)
	}
	m := regexp.MustCompile(`orders: (\d+) accepted = (\d+) delivered \+ (\d+) dead \+ (\d+) pending: (\d+) lost`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no final orders check:\n%s", text)
	}
	n := make([]int, len(m))
	for i := 1; i < len(m); i++ {
		n[i], _ = strconv.Atoi(m[i])
	}
	accepted, delivered, dead, pending, lost := n[1], n[2], n[3], n[4], n[5]
	if accepted == 0 || lost != 0 || accepted != delivered+dead+pending {
		t.Errorf("orders: %d accepted, %d delivered, %d dead, %d pending, %d lost:\n%s", accepted, delivered, dead, pending, lost, text)
	}
	if !strings.Contains(text, " 0 lost ") {
		t.Errorf("the final check does not say 0 lost:\n%s", text)
	}
	if interrupted {
		return
	}
	if pending != 0 || dead == 0 || delivered == 0 {
		t.Errorf("a full run must end with every order delivered or dead-lettered, some of each: %d delivered, %d dead, %d pending:\n%s",
			delivered, dead, pending, text)
	}
	if p := regexp.MustCompile(`at most (\d+) pending at once`).FindStringSubmatch(text); p == nil || p[1] == "0" {
		t.Errorf("no order waited in the queue while orders was down:\n%s", text)
	}
	if strings.Contains(text, "did not drain") {
		t.Errorf("the orders queue did not drain:\n%s", text)
	}
}

// waitWriter closes seen once the output contains every string of want.
type waitWriter struct {
	spillwaytest.Buffer
	want []string
	seen chan struct{}
	once sync.Once
}

func (w *waitWriter) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	text := w.String()
	if !slices.ContainsFunc(w.want, func(s string) bool { return !strings.Contains(text, s) }) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func TestGatewayDemoStopsCleanlyOnCancel(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first summary line of the first phase: the clients are running.
	w := &waitWriter{want: []string{"  healthy  "}, seen: make(chan struct{})}
	o := Options{Phase: time.Hour, Tick: 20 * time.Millisecond, Workers: 3, Pace: 20 * time.Millisecond, Duration: 30 * time.Second}
	cancelWhenSeen(t, ctx, cancel, w, o)
	checkOrders(t, w.String(), true)
	assertNoStoreLeft(t, tmp)
}

// A duration of 0 runs until the context ends: the scenario played, the
// shop loop repeats, and the demo goes on until it is cancelled.
func TestGatewayDemoDurationZeroRunsUntilCancel(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A run of a finite duration would have ended before the shop loop's
	// third pass (after the scenario and one loop).
	w := &waitWriter{want: []string{"phase 5/5 recovered", "── shop loop 3, step 1/4"}, seen: make(chan struct{})}
	o := Options{Phase: 20 * time.Millisecond, Tick: 20 * time.Millisecond, Workers: 3, Pace: time.Millisecond}
	cancelWhenSeen(t, ctx, cancel, w, o)
	checkOrders(t, w.String(), true)
	// Stopped in the middle of a loop: a fault it had added is cleared
	// (the kill switch at the end of its step, or when the demo stopped).
	if strings.Count(w.String(), "on route shop listed") > strings.Count(w.String(), "DELETE /api/v1/faults cleared 1") {
		t.Errorf("a step's fault was not cleared:\n%s", w.String())
	}
	assertNoStoreLeft(t, tmp)
}

// cancelWhenSeen runs the gateway demo until w saw what it waits for, then
// cancels ctx and checks that the demo stopped cleanly.
func cancelWhenSeen(t *testing.T, ctx context.Context, cancel context.CancelFunc, w *waitWriter, o Options) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- RunGateway(ctx, w, &spillwaytest.Buffer{}, o, nil) }()
	select {
	case <-w.seen:
	case err := <-done:
		t.Fatalf("the demo ended before it printed %q: %v\n%s", w.want, err, w.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	text := w.String()
	if !strings.Contains(text, "interrupted") || !strings.Contains(text, "done after") {
		t.Fatalf("no interrupt notice or final summary:\n%s", text)
	}
}

func TestGatewayDemoRejectsBadOptions(t *testing.T) {
	if err := RunGateway(context.Background(), io.Discard, io.Discard, Options{}, nil); err == nil {
		t.Fatal("zero options must be refused")
	}
}
