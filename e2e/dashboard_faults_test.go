package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/spillway-dev/spillway/gateway"
)

const (
	faultRows  = `String(document.querySelectorAll("#faults tbody tr[data-fault]").length)`
	faultsText = `document.querySelector("#faults tbody").textContent`
)

// TestDashboardFaults drives the dashboard's faults panel in Chromium: a
// runtime fault added through the API shows up (route, kind, percent,
// expiry), the kill-switch button removes every fault with the token, and
// hostile names render as text.
func TestDashboardFaults(t *testing.T) {
	requireChromium(t)
	f := newDashFixture(t)
	f.run(t, chromedp.Navigate(f.adm.URL+"/dashboard/"))
	f.enterToken(t)
	f.waitText(t, "no fault yet", faultsText, "no runtime fault", time.Now().Add(5*time.Second))

	p10, p50 := 10.0, 50.0
	if _, err := f.gw.AddFault(gateway.Actor{Who: "drill", Call: "test"}, gateway.FaultSpec{Route: "api",
		Delay:     &gateway.FaultDelaySpec{Percent: &p50, Duration: "2s"},
		Abort:     &gateway.FaultAbortSpec{Percent: &p10, Status: 503},
		ExpiresIn: "10m"}); err != nil {
		t.Fatal(err)
	}
	// The fault event makes the page read the API again at once.
	f.waitText(t, "the fault added", faultRows, "2", time.Now().Add(3*time.Second))
	text := f.text(t, faultsText)
	for _, want := range []string{"apidelay 2s50%", "apiabort 50310%", "drill"} {
		if !strings.Contains(text, want) {
			t.Errorf("faults panel %q lacks %q", text, want)
		}
	}
	if !strings.Contains(text, "9m 5") && !strings.Contains(text, "10m 0s") {
		t.Errorf("faults panel %q: the expiry is not about 10m ahead", text)
	}

	f.click(t, "#faults-clear")
	eventually(t, "the kill switch", func() bool { return len(f.gw.Faults()) == 0 })
	f.waitText(t, "after the kill switch", faultsText, "no runtime fault", time.Now().Add(3*time.Second))

	js := fmt.Sprintf(`(function () {
		const h = %q;
		window.spillwayDashboard.renderFaults(document.querySelector("#faults tbody"),
			[{id: h, route: h, who: h, expires_at: new Date(Date.now() + 60000).toISOString(), abort: {percent: 1, status: h}}], Date.now());
		return document.querySelectorAll("img").length + " " + (document.querySelector("#faults tbody").textContent.split(h).length - 1);
	})()`, hostile)
	if got := f.text(t, js); got != "0 3" {
		t.Errorf("hostile names in the faults panel: %q, want no <img> and the names as text", got)
	}
	if errs := f.errorsSoFar(nil); len(errs) > 0 {
		t.Fatalf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}
