package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardShowsShedAndSlowStart renders an upstream that sheds and
// ramps in Chromium: its card shows the requests shed by class, the share
// a ramping breaker admits and a ramping instance's weight, as text (a
// hostile value builds no element).
func TestDashboardShowsShedAndSlowStart(t *testing.T) {
	requireChromium(t)
	f := newDashFixture(t)
	f.run(t, chromedp.Navigate(f.adm.URL+"/dashboard/"))
	f.enterToken(t)
	f.waitText(t, "the first render", svcState, "closed", time.Now().Add(5*time.Second))
	// Rendered and read in one evaluation: the page's next poll redraws.
	js := fmt.Sprintf(`(function () {
		const h = %q;
		window.spillwayDashboard.render({
			status: {},
			upstreams: [{name: "ramp", policies: {bulkhead: {max_concurrent: 4}, shed: {sheddable_at: 0.5, default_at: 0.9}},
				instances: [{url: "http://127.0.0.1:1", healthy: true, ejected: false, in_flight: 1, weight: 0.25, ramping_for: "22.5s"}],
				live: {breaker: {state: "closed", failure_rate: 0, slow_start_share: 0.4, slow_start_left: h},
					bulkhead: {in_use: 1}, shed: {sheddable: 31, default: 2}}}],
			routes: [],
		});
		const card = document.querySelector('[data-upstream="ramp"]');
		return document.querySelectorAll("img").length + "|" + card.textContent;
	})()`, hostile)
	got := f.text(t, js)
	imgs, text, _ := strings.Cut(got, "|")
	if imgs != "0" {
		t.Errorf("%s <img> elements: a value was parsed as HTML", imgs)
	}
	for _, want := range []string{"shed31 sheddable, 2 default", "slow startadmits 40% of the calls, all in " + hostile,
		"http://127.0.0.1:1 — healthy, 1 in flight, slow start at 25% for 22.5s"} {
		if !strings.Contains(text, want) {
			t.Errorf("the card %q lacks %q", text, want)
		}
	}
}
