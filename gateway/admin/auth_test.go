package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/admin"
)

// tokensAPI serves the admin API with admin.token "root" and the named
// tokens ops (admin) and viewer (read), on the clock now.
func tokensAPI(t *testing.T, now func() time.Time) http.Handler {
	t.Helper()
	return admin.Handler(newGateway(t, "http://127.0.0.1:1", ""), admin.Options{
		Token: "root",
		Tokens: []config.AdminToken{
			{Name: "ops", Token: "ops-token", Role: config.RoleAdmin},
			{Name: "viewer", Token: "viewer-token", Role: config.RoleRead},
		},
		Now: now,
	})
}

// serveFrom calls h from the client address addr.
func serveFrom(h http.Handler, addr, method, path, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://localhost:9901"+path, strings.NewReader(body))
	req.RemoteAddr = addr + ":40000"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestTokenRoles(t *testing.T) {
	h := tokensAPI(t, nil)
	for _, tt := range []struct {
		method, path, token, body string
		code                      int
	}{
		{"GET", "/api/v1/upstreams", "viewer-token", "", 200},
		{"HEAD", "/api/v1/upstreams/app", "viewer-token", "", 200},
		{"GET", "/api/v1/routes", "viewer-token", "", 200},
		{"GET", "/api/v1/overrides", "viewer-token", "", 200},
		{"GET", "/api/v1/dead-letters", "viewer-token", "", 501},
		{"PATCH", "/api/v1/routes/app", "viewer-token", `{"enabled":false}`, 403},
		{"POST", "/api/v1/upstreams/app/breaker", "viewer-token", `{"state":"forced_open"}`, 403},
		{"DELETE", "/api/v1/overrides", "viewer-token", "", 403},
		{"POST", "/api/v1/reload", "viewer-token", "", 403},
		{"GET", "/api/v1/upstreams", "ops-token", "", 200},
		{"POST", "/api/v1/upstreams/app/breaker", "ops-token", `{"state":"forced_open"}`, 200},
		{"PATCH", "/api/v1/upstreams/app", "root", `{"bulkhead":{"max_concurrent":20}}`, 200},
	} {
		if rec := serveFrom(h, "192.0.2.1", tt.method, tt.path, tt.token, tt.body); rec.Code != tt.code {
			t.Errorf("%s %s with %s: %d %s, want %d", tt.method, tt.path, tt.token, rec.Code, rec.Body, tt.code)
		}
	}
}

// The name of the token a change was made with is who made it, in the
// overrides (and the audit log and the events, which take the same Actor).
func TestOverridesNameTheToken(t *testing.T) {
	h := tokensAPI(t, nil)
	serveFrom(h, "192.0.2.1", "POST", "/api/v1/upstreams/app/breaker", "ops-token", `{"state":"forced_open"}`)
	serveFrom(h, "192.0.2.1", "PATCH", "/api/v1/upstreams/app", "root", `{"bulkhead":{"max_concurrent":20}}`)
	rec := serveFrom(h, "192.0.2.1", "GET", "/api/v1/overrides", "viewer-token", "")
	for _, want := range []string{`"who":"ops","call":"POST /api/v1/upstreams/app/breaker"`, `"who":"admin","call":"PATCH /api/v1/upstreams/app"`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("overrides %s: no %s", rec.Body, want)
		}
	}
}

// clock is an explicit clock that tests move.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Wrong tokens slow their address down, doubling, whatever the token it
// sends next; other addresses are not; a right token starts afresh.
func TestWrongTokensSlowTheirAddress(t *testing.T) {
	c := &clock{now: time.Unix(1e9, 0)}
	h := tokensAPI(t, c.Now)
	get := func(addr, token string) *httptest.ResponseRecorder {
		return serveFrom(h, addr, "GET", "/api/v1/upstreams", token, "")
	}
	if rec := get("192.0.2.1", "guess1"); rec.Code != 401 {
		t.Fatalf("first wrong token: %d", rec.Code)
	}
	if rec := get("192.0.2.1", "root"); rec.Code != 429 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("right token within the delay: %d Retry-After %q, want 429 and 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := get("192.0.2.2", "root"); rec.Code != 200 {
		t.Errorf("another address: %d, want 200", rec.Code)
	}
	if rec := get("192.0.2.1", ""); rec.Code != 429 {
		t.Errorf("no token within the delay: %d, want 429", rec.Code)
	}
	if rec := serveFrom(h, "192.0.2.1", "GET", "/api/v1/status", "", ""); rec.Code != 200 {
		t.Errorf("status, which needs no token, within the delay: %d", rec.Code)
	}
	c.advance(time.Second)
	if rec := get("192.0.2.1", "guess2"); rec.Code != 401 {
		t.Fatalf("second wrong token: %d", rec.Code)
	}
	c.advance(time.Second)
	if rec := get("192.0.2.1", "root"); rec.Code != 429 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("1s into a 2s delay: %d Retry-After %q, want 429 and 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	c.advance(time.Second)
	if rec := get("192.0.2.1", "root"); rec.Code != 200 {
		t.Fatalf("after the delay, the right token: %d", rec.Code)
	}
	// The success started afresh: one wrong token costs 1s again.
	get("192.0.2.1", "guess3")
	if rec := get("192.0.2.1", "root"); rec.Header().Get("Retry-After") != "1" {
		t.Errorf("after a success, Retry-After %q, want 1", rec.Header().Get("Retry-After"))
	}
}

// The delay grows to a minute at most.
func TestWrongTokenDelayIsBounded(t *testing.T) {
	c := &clock{now: time.Unix(1e9, 0)}
	h := tokensAPI(t, c.Now)
	var last string
	for range 20 {
		c.advance(2 * time.Minute) // past any delay, within the window
		serveFrom(h, "192.0.2.1", "GET", "/api/v1/routes", "guess", "")
		last = serveFrom(h, "192.0.2.1", "GET", "/api/v1/routes", "root", "").Header().Get("Retry-After")
	}
	if last != "60" {
		t.Errorf("Retry-After after 20 wrong tokens: %q, want 60", last)
	}
}

// No admin answer sets a cookie: the API authenticates by header only,
// so a page of another site cannot ride a browser's session (no CSRF).
func TestNoCookies(t *testing.T) {
	h := tokensAPI(t, nil)
	for _, method := range []string{"GET", "HEAD", "POST", "PATCH", "DELETE", "PUT"} {
		for _, path := range append(servedPaths(t), "/", "/api/v1/nothing") {
			for _, token := range []string{"", "root", "viewer-token"} {
				rec := serveFrom(h, "192.0.2.1", method, strings.ReplaceAll(path, "{name}", "app"), token, "{}")
				if c := rec.Header().Values("Set-Cookie"); len(c) > 0 {
					t.Errorf("%s %s: Set-Cookie %q", method, path, c)
				}
			}
		}
	}
}

// servedPaths are the paths of openapi.json, which names every endpoint
// served (TestOpenAPINamesTheEndpointsServed), but the event stream's.
func servedPaths(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for p := range doc.Paths {
		if p != "/api/v1/events" { // a stream: it would not end
			out = append(out, p)
		}
	}
	return out
}

// A TokenSet replaced while the handler serves: the next request is judged
// by the new tokens only.
func TestTokenSetReplacedWhileServing(t *testing.T) {
	g := newGateway(t, "http://127.0.0.1:1", "")
	set := admin.NewTokenSet("old", nil)
	h := admin.Handler(g, admin.Options{TokenSet: set, Token: "ignored", Now: noDelays()})
	if rec := serve(h, "GET", "/api/v1/routes", "Bearer old"); rec.Code != 200 {
		t.Fatalf("the old token before: %d", rec.Code)
	}
	set.Set("new", []config.AdminToken{{Name: "ro", Token: "reader", Role: config.RoleRead}})
	for auth, want := range map[string]int{"Bearer old": 401, "Bearer ignored": 401, "Bearer new": 200, "Bearer reader": 200} {
		if rec := serve(h, "GET", "/api/v1/routes", auth); rec.Code != want {
			t.Errorf("%s after the change: %d, want %d", auth, rec.Code, want)
		}
	}
	set.Set("", nil)
	if rec := serve(h, "GET", "/api/v1/routes", "Bearer new"); rec.Code != 403 {
		t.Errorf("no token left: %d, want 403", rec.Code)
	}
}
