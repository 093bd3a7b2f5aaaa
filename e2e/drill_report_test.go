package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// outageReport is a drill --json report of an outage: internal/drill's
// fixture (this module cannot import internal/drill; the binary renders it).
const outageReport = "../internal/drill/testdata/outage.json"

// TestDrillReportInChromium renders a drill's report with `spillway report`
// as drill --html does and opens the file in headless Chromium: the page
// reports no error and makes no request at all beyond its own file, and
// its four charts are drawn. With SPILLWAY_UPDATE_DOCS set, its screenshot
// becomes docs/drill-report.png.
func TestDrillReportInChromium(t *testing.T) {
	requireChromium(t)
	dir := t.TempDir()
	bin := buildSpillway(t, dir)
	page := renderReport(t, bin, outageReport, filepath.Join(dir, "report.html"))

	b := &dashFixture{} // the dashboard test's browser, on a file
	b.startBrowser(t)
	requests := watchRequests(t, b)
	b.run(t, chromedp.EmulateViewport(1040, 900), chromedp.Navigate(page.String()), chromedp.WaitVisible("#chart-breaker", chromedp.ByID))

	var charts []string
	b.run(t, chromedp.Evaluate(`Array.from(document.querySelectorAll("svg[id^=chart-]")).map(function (s) {
		const r = s.getBoundingClientRect();
		return s.id + " " + (r.width > 100 && r.height > 50) + " " + (s.querySelectorAll("rect[fill], path[d^=M]").length > 0);
	})`, &charts))
	want := []string{"chart-rates true true", "chart-errors true true", "chart-latency true true", "chart-breaker true true"}
	if strings.Join(charts, ", ") != strings.Join(want, ", ") {
		t.Errorf("charts drawn: %q, want %q (id, has a size, has shapes)", charts, want)
	}
	if got := b.text(t, `document.getElementById("verdict").textContent`); got != "PASS" {
		t.Errorf("verdict %q, want PASS", got)
	}
	b.screenshot(t, "drill-report.png")
	if errs := b.errorsSoFar(nil); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
	if got := requests(); len(got) != 1 || got[0] != page.String() {
		t.Errorf("the page requested %q, want only its own file", got)
	}
}

// TestDrillReportHostileNamesInChromium: a report whose names are markup
// shows them as text; nothing runs.
func TestDrillReportHostileNamesInChromium(t *testing.T) {
	requireChromium(t)
	dir := t.TempDir()
	saved, err := os.ReadFile(outageReport)
	if err != nil {
		t.Fatal(err)
	}
	const h = `<script>alert(1)</script><img src=x onerror=alert(2)>`
	quoted, _ := json.Marshal(h)
	hostile := strings.NewReplacer(`"catalog"`, string(quoted), `"breaker_open"`, string(quoted), `"half_open"`, string(quoted)).Replace(string(saved))
	file := filepath.Join(dir, "hostile.json")
	if err := os.WriteFile(file, []byte(hostile), 0o644); err != nil {
		t.Fatal(err)
	}
	page := renderReport(t, buildSpillway(t, dir), file, filepath.Join(dir, "hostile.html"))

	b := &dashFixture{}
	b.startBrowser(t)
	requests := watchRequests(t, b)
	b.run(t, chromedp.Navigate(page.String()), chromedp.WaitVisible("#chart-breaker", chromedp.ByID))
	js := fmt.Sprintf(`document.querySelectorAll("script, img").length + " " + document.body.textContent.split(%q).length`, h)
	// Shown as the upstream, in the reasons' table, and in the tooltips of
	// the 15 seconds with breaker_open errors and of the half_open second
	// (the legends cut it).
	got := b.text(t, js)
	var elements, parts int
	if _, err := fmt.Sscan(got, &elements, &parts); err != nil || elements != 0 || parts-1 < 18 {
		t.Errorf("hostile names: %q, want no <script> or <img> element and the names shown as text", got)
	}
	if errs := b.errorsSoFar(nil); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
	if got := requests(); len(got) != 1 {
		t.Errorf("the page requested %q, want only its own file", got)
	}
}

// renderReport runs `spillway report --json in --html out` and returns
// out's file:// URL.
func renderReport(t *testing.T, bin, in, out string) *url.URL {
	t.Helper()
	if b, err := exec.Command(bin, "report", "--json", in, "--html", out).CombinedOutput(); err != nil {
		t.Fatalf("spillway report: %v\n%s", err, b)
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		t.Fatal(err)
	}
	return &url.URL{Scheme: "file", Path: abs}
}

// watchRequests records every request the browser's tab sends, the
// document's own included, and returns what it recorded so far.
func watchRequests(t *testing.T, b *dashFixture) func() []string {
	t.Helper()
	var mu sync.Mutex
	var urls []string
	chromedp.ListenTarget(b.ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			urls = append(urls, e.Request.URL)
			mu.Unlock()
		}
	})
	b.run(t, network.Enable())
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), urls...)
	}
}
