package admin_test

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/gateway/admin"
)

// TestDashboardIsServedWithoutTokenUnderAStrictPolicy: the page and its
// assets need no token (they hold no data), each carries the
// Content-Security-Policy and nosniff, and an unknown file is the API's
// JSON 404.
func TestDashboardIsServedWithoutTokenUnderAStrictPolicy(t *testing.T) {
	h := admin.Handler(newGateway(t, "http://127.0.0.1:1", ""), admin.Options{Token: "secret"})
	const csp = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
	for path, ctype := range map[string]string{
		"/dashboard/":              "text/html",
		"/dashboard/dashboard.js":  "text/javascript",
		"/dashboard/dashboard.css": "text/css",
	} {
		rec := serve(h, http.MethodGet, path, "")
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200 without a token", path, rec.Code)
			continue
		}
		if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, got, ctype)
		}
		if got := rec.Header().Get("Content-Security-Policy"); got != csp {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", path, got, csp)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", path, got)
		}
		if rec.Header().Get("Set-Cookie") != "" {
			t.Errorf("GET %s sets a cookie", path)
		}
	}
	if rec := serve(h, http.MethodGet, "/dashboard", ""); rec.Code/100 != 3 || rec.Header().Get("Location") != "/dashboard/" {
		t.Errorf("GET /dashboard: %d to %q, want a redirect to /dashboard/", rec.Code, rec.Header().Get("Location"))
	}
	rec := serve(h, http.MethodGet, "/dashboard/nope.js", "")
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("GET /dashboard/nope.js: %d %s, want the JSON 404", rec.Code, rec.Body)
	}
	if rec := serve(h, http.MethodPost, "/dashboard/", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /dashboard/: %d, want 405", rec.Code)
	}
}

// TestDashboardBuildsNoHTMLFromData: the page's script never parses a
// string as HTML (names from the gateway are set as text), loads nothing
// from elsewhere, and the page has no inline script or style for the
// policy to refuse. e2e's TestDashboard renders hostile names in Chromium.
func TestDashboardBuildsNoHTMLFromData(t *testing.T) {
	for _, name := range []string{"dashboard/dashboard.js", "dashboard/index.html", "dashboard/dashboard.css"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []*regexp.Regexp{
			regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function`),
			regexp.MustCompile(`https?://[a-z]`), // no third-party fetch (the SVG namespace excepted below)
			regexp.MustCompile(`<script>|<style>|\sstyle=|\son[a-z]+=`),
		} {
			for _, m := range bad.FindAllString(string(b), -1) {
				if m == "http://w" { // http://www.w3.org/2000/svg, a name, never fetched
					continue
				}
				t.Errorf("%s holds %q", name, m)
			}
		}
	}
}
