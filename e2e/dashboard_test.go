package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
)

// chromium is Debian's package, installed by scripts/test-deps.sh.
const chromium = "/usr/bin/chromium"

// dashConfig: one upstream whose breaker opens after 5 failed calls and
// stays open for the whole test, a replica as its fallback (a dashed edge
// on the map), an optional route (a switch on the page), and the most
// hostile names the config accepts (hostileConfig).
const dashConfig = `
upstreams:
  svc:
    instances: [{{svc}}]
    timeouts: {connect: 1s, attempt: 1s, total: 2s}
    retry: {max_attempts: 1}
    breaker:
      window: {type: count, size: 10}
      min_calls: 5
      failure_rate: 50%
      open_for: 1m
      max_open_for: 1m
    outlier: {consecutive_failures: 0}
  replica:
    instances: [{{replica}}]
    outlier: {consecutive_failures: 0}
  __proto__:
    instances: ["{{hostileURL}}"]
    outlier: {consecutive_failures: 0}
routes:
  - name: api
    match: {path_prefix: /api}
    upstream: svc
    fallback:
      - upstream: replica
  - name: recommendations
    match: {path_prefix: /recs}
    upstream: svc
    optional: true
    default: {status: 200, body: '[]'}
  - name: constructor
    match: {path_prefix: /hostile}
    upstream: __proto__
  - name: all
    match: {path_prefix: /}
    upstream: svc
`

// dashFixture is a gateway with its admin listener, the upstream whose
// outage the test causes, and a headless Chromium on the dashboard.
type dashFixture struct {
	gw      *gateway.Gateway
	pub     *httptest.Server
	adm     *httptest.Server
	failing *atomic.Bool
	ctx     context.Context // the browser tab's

	mu      sync.Mutex
	logs    []string // console errors, exceptions, error log entries, dialogs
	dialogs int      // JavaScript dialogs opened (alert, confirm, prompt)
}

const dashToken = "dash-test-token"

func newDashFixture(t *testing.T) *dashFixture {
	t.Helper()
	f := &dashFixture{failing: &atomic.Bool{}}
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(svc.Close)
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "replica") }))
	t.Cleanup(replica.Close)
	yml := strings.NewReplacer("{{svc}}", svc.URL, "{{replica}}", replica.URL, "{{hostileURL}}", hostileURL).Replace(dashConfig)
	cfg, _, err := config.Parse("dashboard.yaml", []byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	f.gw, err = gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.gw.Close)
	f.pub = httptest.NewServer(f.gw)
	t.Cleanup(f.pub.Close)
	done := make(chan struct{})
	f.adm = httptest.NewServer(admin.Handler(f.gw, admin.Options{Token: dashToken, Done: done}))
	t.Cleanup(f.adm.Close)
	t.Cleanup(func() { close(done) }) // ends the page's event stream before adm.Close waits for it
	f.startBrowser(t)
	return f
}

// startBrowser runs Chromium with the flags this machine needs (no
// network beyond loopback: nothing in the background may try to reach
// out) and a fresh profile, and records what the page reports as an error.
func (f *dashFixture) startBrowser(t *testing.T) {
	// Not t.TempDir: Chromium's helper processes may still write to the
	// profile for a moment after the browser exits, and TempDir's removal
	// would fail the test.
	profile, err := os.MkdirTemp("", "spillway-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { // runs before the servers close
		cancelTab()
		cancelAlloc()
		removeProfile(t, profile)
	})
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeAssert {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				f.record("console." + string(e.Type) + ": " + strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			f.record("exception: " + e.ExceptionDetails.Error())
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.LevelError {
				f.record("log: " + e.Entry.Text + " " + e.Entry.URL)
			}
		case *page.EventJavascriptDialogOpening:
			f.mu.Lock()
			f.dialogs++
			f.mu.Unlock()
			f.record("dialog: " + e.Message)
			go func() { _ = chromedp.Run(ctx, page.HandleJavaScriptDialog(false)) }()
		}
	})
	if err := chromedp.Run(ctx, cdplog.Enable()); err != nil {
		t.Fatalf("chromium (%s) did not start: %v", chromium, err)
	}
	f.ctx = ctx
}

// removeProfile removes Chromium's profile directory, trying again while
// its last helper processes finish writing to it.
func removeProfile(t *testing.T, dir string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.RemoveAll(dir)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("chromium's profile: %v", err)
			return
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

func (f *dashFixture) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, s)
}

// errorsSoFar returns what the page reported, less what allowed accepts.
func (f *dashFixture) errorsSoFar(allowed func(string) bool) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.logs {
		if allowed == nil || !allowed(l) {
			out = append(out, l)
		}
	}
	return out
}

func (f *dashFixture) run(t *testing.T, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// text evaluates a JavaScript expression answering a string.
func (f *dashFixture) text(t *testing.T, js string) string {
	t.Helper()
	var s string
	f.run(t, chromedp.Evaluate(js, &s))
	return s
}

// waitText polls the page until expression js answers want, or fails at
// the deadline.
func (f *dashFixture) waitText(t *testing.T, what, js, want string, deadline time.Time) {
	t.Helper()
	got := ""
	for {
		if got = f.text(t, js); got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the page shows %q, want %q (error shown: %q; reported: %q)", what, got, want, f.text(t, errorText), f.errorsSoFar(nil))
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not a wait for a state
	}
}

// click clicks the element matching sel as a user would (mouse events at
// its position). The page re-renders every 2s: a click whose node was
// replaced between lookup and press fails with nothing dispatched, and is
// tried again on the new node.
func (f *dashFixture) click(t *testing.T, sel string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(f.ctx, 2*time.Second)
		err := chromedp.Run(ctx, chromedp.Click(sel, chromedp.ByQuery, chromedp.NodeVisible))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("click %s: %v", sel, err)
		}
	}
}

func (f *dashFixture) enterToken(t *testing.T) {
	t.Helper()
	f.run(t,
		chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", dashToken, chromedp.ByID),
		chromedp.Click("#token-save", chromedp.ByID),
		chromedp.WaitNotVisible("#token-form", chromedp.ByID),
	)
}

func (f *dashFixture) routeEnabled(name string) bool {
	for _, r := range f.gw.Routes() {
		if r.Name == name {
			return r.Enabled
		}
	}
	return false
}

func (f *dashFixture) breakerState() string { return f.gw.Status().Upstreams["svc"].Breaker.State }

const (
	svcState    = `(document.querySelector('[data-upstream="svc"] .breaker-state') || {}).textContent || ""`
	svcTimeline = `(document.querySelector('[data-upstream="svc"] .timeline') || {}).textContent || ""`
	svcFailing  = `/[1-9][0-9.]*\/s failures/.test((document.querySelector('[data-upstream="svc"]') || {}).textContent || "") ? "yes" : "no"`
	liveText    = `document.getElementById("live").textContent`
	errorText   = `(function(){ const e = document.getElementById("error"); return e.hidden ? "" : e.textContent })()`
	forceOpen   = `[data-upstream="svc"] .force-open`
)

// TestDashboard drives the dashboard in a real headless Chromium: it loads
// with no console error, shows the breaker open within 2s of an outage,
// force-opens it with the token and fails to without, switches an optional
// route off, and renders hostile names as text.
func TestDashboard(t *testing.T) {
	requireChromium(t)
	f := newDashFixture(t)

	f.run(t, chromedp.Navigate(f.adm.URL+"/dashboard/"))
	f.enterToken(t)
	f.waitText(t, "before the outage", svcState, "closed", time.Now().Add(5*time.Second))
	f.waitText(t, "the event stream", liveText, "live", time.Now().Add(5*time.Second))
	if errs := f.errorsSoFar(nil); len(errs) > 0 {
		t.Fatalf("the page reported errors on load:\n%s", strings.Join(errs, "\n"))
	}
	f.hostileConfig(t)

	// The outage: svc answers 503 until its breaker opens.
	f.failing.Store(true)
	opened := f.causeOutage(t)
	f.waitText(t, "after the outage", svcState, "open", opened.Add(2*time.Second))
	t.Logf("the page showed the breaker open %v after it opened", time.Since(opened))
	f.waitText(t, "the timeline from the event stream", svcTimeline, "open", time.Now().Add(2*time.Second))
	// The outage's failed attempts in the rates of the poll that follows it.
	f.waitText(t, "the failure rate", svcFailing, "yes", opened.Add(5*time.Second))
	if errs := f.errorsSoFar(nil); len(errs) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}

	// Without a token the click is refused, the API's message shown, the
	// breaker left as it was.
	f.run(t, chromedp.Evaluate(`sessionStorage.clear()`, nil))
	f.click(t, forceOpen)
	deadline := time.Now().Add(5 * time.Second)
	for f.text(t, errorText) == "" {
		if time.Now().After(deadline) {
			t.Fatal("a click without a token shows no error")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if msg := f.text(t, errorText); !strings.Contains(msg, "401") {
		t.Errorf("error shown %q: want the API's 401 and its message", msg)
	}
	if s := f.breakerState(); s != "open" {
		t.Fatalf("breaker %q after a click without a token: want it unchanged (open)", s)
	}

	// With the token the click forces it open.
	f.enterToken(t)
	f.click(t, forceOpen)
	eventually(t, "the breaker forced open", func() bool { return f.breakerState() == "forced_open" })
	f.waitText(t, "after force-open", svcState, "forced_open", time.Now().Add(3*time.Second))
	f.waitText(t, "after force-open", errorText, "", time.Now().Add(3*time.Second))

	// An optional route switched off from its row.
	f.click(t, `[data-route="recommendations"] .route-toggle`)
	eventually(t, "the optional route off", func() bool { return !f.routeEnabled("recommendations") })
	f.waitText(t, "after the switch", `document.querySelector('[data-route="recommendations"] td:nth-child(4)').textContent`, "off", time.Now().Add(3*time.Second))
	f.screenshot(t, "dashboard.png")

	// The page has re-rendered the hostile config every poll since.
	f.noDialogs(t)
	// Only the refused call above may have logged an error.
	if errs := f.errorsSoFar(func(s string) bool { return strings.Contains(s, "401") }); len(errs) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
	f.hostileNames(t)
	f.noDialogs(t)
}

// causeOutage sends requests to svc until its breaker opens, and returns
// when the test saw it open.
func (f *dashFixture) causeOutage(t *testing.T) time.Time {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for f.breakerState() != "open" {
		if time.Now().After(deadline) {
			t.Fatalf("breaker %q: the outage did not open it", f.breakerState())
		}
		resp, err := client.Get(f.pub.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	return time.Now()
}

// requireChromium skips the test when Chromium is absent, except in CI.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is absent in CI: scripts/test-deps.sh (make deps) installs it", chromium)
		}
		t.Skipf("%s is absent: run scripts/test-deps.sh to install Debian's chromium (CI always runs this test)", chromium)
	}
}

// screenshot writes the whole page as name to $TEST_ARTIFACTS (or a
// temporary directory), and to docs/name when SPILLWAY_UPDATE_DOCS is set.
func (f *dashFixture) screenshot(t *testing.T, name string) {
	t.Helper()
	var png []byte
	f.run(t, chromedp.FullScreenshot(&png, 100))
	dir := os.Getenv("TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)
	if os.Getenv("SPILLWAY_UPDATE_DOCS") != "" {
		if err := os.WriteFile(filepath.Join("..", "docs", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// hostile is a name that runs script if it is ever parsed as HTML. Config
// names cannot hold it: upstream and route names are letters, digits, '.',
// '_' and '-' (config.validName: they are Prometheus label values, path
// segments of the runtime API and map identifiers). So the gateway's
// config carries it in the one free-text field the dashboard shows, an
// instance's URL (hostileURL), under the names the config accepts that a
// careless page would trip on (__proto__, constructor); and
// hostileNames hands it to the page's rendering straight, in every place
// a name from the gateway goes.
const hostile = `<img src=x onerror=alert(1)>`

// hostileURL is an instance URL the config accepts (url.Parse takes the
// path as it is) and the runtime API reports as written.
const hostileURL = "http://127.0.0.1:1/" + hostile

// hostileConfig checks, in the page as loaded from the running gateway,
// that the hostile instance URL opened no dialog, made no <img> element
// (with that src or any), and shows as literal text on the upstream's card
// and on the map, and that the __proto__ and constructor names show too;
// noDialogs checks later, after many re-renders, that no alert opened.
func (f *dashFixture) hostileConfig(t *testing.T) {
	t.Helper()
	const card = `document.querySelector('[data-upstream="__proto__"]')`
	f.waitText(t, "the hostile upstream's card", `(`+card+` || {}).textContent ? "yes" : "no"`, "yes", time.Now().Add(5*time.Second))
	js := fmt.Sprintf(`(function () {
		const h = %q;
		const card = %s;
		const route = document.querySelector('[data-route="constructor"]');
		const svg = document.querySelector("svg");
		return [
			"img=" + document.querySelectorAll("img").length,
			"imgx=" + document.querySelectorAll('img[src="x"]').length,
			"card=" + card.textContent.includes(h),
			"map=" + (svg !== null && svg.textContent.includes(h)),
			"route=" + (route !== null && route.textContent.includes("constructor") && route.textContent.includes("__proto__")),
		].join(" ");
	})()`, hostile, card)
	if got, want := f.text(t, js), "img=0 imgx=0 card=true map=true route=true"; got != want {
		t.Fatalf("the hostile config in the page: %s, want %s", got, want)
	}
}

// noDialogs fails if the page opened a JavaScript dialog (an <img> parsed
// from a name would have fired its onerror's alert).
func (f *dashFixture) noDialogs(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	n := f.dialogs
	f.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d JavaScript dialogs opened: %q", n, f.errorsSoFar(nil))
	}
}

func (f *dashFixture) hostileNames(t *testing.T) {
	t.Helper()
	js := fmt.Sprintf(`(function () {
		const h = %q;
		window.spillwayDashboard.render({
			status: {queues: {[h]: {pending: 1, in_flight: 0, dead_letters: 2, oldest_pending_age_seconds: 3}}},
			upstreams: [{name: h, instances: [{url: "http://127.0.0.1:1/" + h, healthy: true, ejected: false, in_flight: 0}],
				policies: {bulkhead: {max_concurrent: 4}}, live: {breaker: {state: h, failure_rate: 0}, bulkhead: {in_use: 1}}}],
			routes: [{name: h, upstream: h, optional: true, enabled: true, fallback: ["upstream:" + h, "static"]}],
		});
		const imgs = document.querySelectorAll("img").length;
		const text = document.body.textContent.split(h).length - 1;
		return imgs + " " + (text >= 5);
	})()`, hostile)
	if got := f.text(t, js); got != "0 true" {
		t.Fatalf("hostile names: %q, want no <img> element and the names shown as text", got)
	}
	// An <img> would have fired its onerror by now; let the page settle
	// on one more poll and look at what it reported.
	f.waitText(t, "after the hostile render", svcState, "forced_open", time.Now().Add(3*time.Second))
	if errs := f.errorsSoFar(func(s string) bool { return strings.Contains(s, "401") }); len(errs) > 0 {
		t.Fatalf("the page reported errors after the hostile render:\n%s", strings.Join(errs, "\n"))
	}
}
