package admin_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/internal/natstest"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

// newGateway builds a gateway with one route /app to upstream (an URL); extra
// is appended to the upstream's settings.
func newGateway(t testing.TB, upstream, extra string) *gateway.Gateway {
	t.Helper()
	yaml := fmt.Sprintf(`upstreams:
  app:
    instances: [%s]
%sroutes:
  - name: app
    match: {path_prefix: /app}
    upstream: app
`, upstream, extra)
	cfg, _, err := config.Parse("test.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// noDelays is a clock that moves an hour at each reading, past the delay
// of a wrong token: for the tests that send wrong tokens on purpose and
// check the answer of each.
func noDelays() func() time.Time {
	var mu sync.Mutex
	now := time.Unix(0, 0)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Hour)
		return now
	}
}

// serve calls h as a local client would: Host localhost.
func serve(h http.Handler, method, path, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://localhost:9901"+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestEndpoints(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "up") }))
	defer up.Close()
	g := newGateway(t, up.URL, "")
	// One proxied request, so that the request metrics have a series.
	g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/app/x", nil))
	reloads := 0
	h := admin.Handler(g, admin.Options{Token: "s3cret", Now: noDelays(), Reload: func() (admin.ReloadResult, error) {
		reloads++
		return admin.ReloadResult{Changes: gateway.Changes{Applied: []gateway.Change{}, Resets: []gateway.Change{}}}, nil
	}})

	tests := []struct {
		method, path, auth string
		code               int
		body               string // a substring of the answer
		json               bool   // the answer is JSON
	}{
		{method: "GET", path: "/healthz", code: 200, body: "ok"},
		{method: "HEAD", path: "/healthz", code: 200},
		{method: "POST", path: "/healthz", code: 405, body: "GET, HEAD", json: true},
		{method: "GET", path: "/readyz", code: 200, body: "ready"},
		{method: "GET", path: "/metrics", code: 200, body: "spillway_requests_total"},
		{method: "GET", path: "/api/v1/status", code: 200, body: `"upstreams":{"app":{"breaker":{"state":"closed"`, json: true},
		{method: "GET", path: "/api/v1/nothing", code: 404, body: "/api/v1/nothing", json: true},
		{method: "GET", path: "/", code: 404, json: true},
		{method: "GET", path: "/api/v1/reload", code: 405, body: "POST", json: true},
		{method: "POST", path: "/api/v1/reload", code: 401, json: true},
		{method: "POST", path: "/api/v1/reload", auth: "Bearer wrong", code: 401, json: true},
		{method: "POST", path: "/api/v1/reload", auth: "Bearer s3cret0", code: 401, json: true},
		{method: "POST", path: "/api/v1/reload", auth: "Basic s3cret", code: 401, json: true},
		{method: "POST", path: "/api/v1/reload", auth: "s3cret", code: 401, json: true},
		{method: "POST", path: "/api/v1/reload", auth: "Bearer s3cret", code: 200, body: `{"reloaded":true,"changes":[],"resets":[],"restart_required":[]}`, json: true},
		{method: "POST", path: "/api/v1/reload", auth: "bearer s3cret", code: 200, body: `{"reloaded":true,"changes":[],"resets":[],"restart_required":[]}`, json: true},
		{method: "GET", path: "/api/v1/upstreams", code: 401, json: true},
		{method: "GET", path: "/api/v1/upstreams", auth: "Bearer s3cret", code: 200, body: `{"upstreams":[{"name":"app","instances":[{"url":"` + up.URL, json: true},
		{method: "GET", path: "/api/v1/upstreams/app", auth: "Bearer s3cret", code: 200, body: `"bulkhead":{"max_concurrent":100,"max_waiting":0,"max_wait":"0s"}`, json: true},
		{method: "GET", path: "/api/v1/upstreams/app", auth: "Bearer s3cret", code: 200, body: `"live":{"breaker":{"state":"closed"`, json: true},
		{method: "HEAD", path: "/api/v1/upstreams/app", auth: "Bearer s3cret", code: 200},
		{method: "GET", path: "/api/v1/upstreams/app", code: 401, json: true},
		{method: "GET", path: "/api/v1/upstreams/nope", auth: "Bearer s3cret", code: 404, body: "no upstream nope", json: true},
		{method: "GET", path: "/api/v1/routes", code: 401, json: true},
		{method: "GET", path: "/api/v1/routes", auth: "Bearer s3cret", code: 200, body: `{"routes":[{"name":"app","upstream":"app","optional":false,"enabled":true,"async":false,"fallback":[]}]}`, json: true},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path+" "+tt.auth, func(t *testing.T) {
			rec := serve(h, tt.method, tt.path, tt.auth)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.body) {
				t.Fatalf("%d %q, want %d with %q", rec.Code, rec.Body, tt.code, tt.body)
			}
			if tt.json && (rec.Header().Get("Content-Type") != "application/json" || !json.Valid(rec.Body.Bytes())) {
				t.Errorf("not a JSON answer: %s %q", rec.Header().Get("Content-Type"), rec.Body)
			}
			if tt.code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
		})
	}
	if reloads != 2 {
		t.Errorf("Reload ran %d times, want 2 (only the authorized calls)", reloads)
	}
}

func TestMutatingCallsAreRefusedWithoutAToken(t *testing.T) {
	g := newGateway(t, "http://127.0.0.1:1", "")
	h := admin.Handler(g, admin.Options{Reload: func() (admin.ReloadResult, error) {
		t.Error("Reload ran without a token configured")
		return admin.ReloadResult{}, nil
	}})
	for _, auth := range []string{"", "Bearer ", "Bearer anything"} {
		if rec := serve(h, "POST", "/api/v1/reload", auth); rec.Code != 403 || !json.Valid(rec.Body.Bytes()) {
			t.Errorf("auth %q: %d %q, want 403 JSON", auth, rec.Code, rec.Body)
		}
	}
	if rec := serve(h, "GET", "/api/v1/status", ""); rec.Code != 200 {
		t.Errorf("reading needs no token: /api/v1/status %d", rec.Code)
	}
}

// fails is an Options.Reload that returns err.
func fails(err error) func() (admin.ReloadResult, error) {
	return func() (admin.ReloadResult, error) { return admin.ReloadResult{}, err }
}

func TestReloadOutcomes(t *testing.T) {
	g := newGateway(t, "http://127.0.0.1:1", "")
	invalid := config.Errors{{File: "s.yaml", Line: 3, Col: 5, Msg: "unknown key"}}
	tests := []struct {
		name   string
		reload func() (admin.ReloadResult, error)
		code   int
		body   string
	}{
		{"unsupported", nil, 501, "not supported"},
		{"invalid file", fails(invalid), 400, "s.yaml:3:5: unknown key"},
		{"one wrapped error", fails(fmt.Errorf("load: %w", invalid[0])), 400, "s.yaml:3:5"},
		{"gateway failure", fails(errors.New("boom")), 500, "boom"},
		{"changes", func() (admin.ReloadResult, error) {
			return admin.ReloadResult{Changes: gateway.Changes{
				Applied: []gateway.Change{{Upstream: "u", Part: "bulkhead", Detail: "bulkhead.max_concurrent 1 → 2"}},
				Resets:  []gateway.Change{{Upstream: "u", Part: "retry.budget", Detail: "a new budget"}},
			}}, nil
		}, 200, `{"reloaded":true,"changes":[{"upstream":"u","part":"bulkhead","detail":"bulkhead.max_concurrent 1 → 2"}],"resets":[{"upstream":"u","part":"retry.budget","detail":"a new budget"}],"restart_required":[]}`},
		{"restart required", func() (admin.ReloadResult, error) {
			return admin.ReloadResult{RestartRequired: []string{"admin.listen"}}, nil
		}, 200, `"restart_required":["admin.listen"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := admin.Handler(g, admin.Options{Token: "t", Reload: tt.reload})
			rec := serve(h, "POST", "/api/v1/reload", "Bearer t")
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.body) || !json.Valid(rec.Body.Bytes()) {
				t.Errorf("%d %q, want %d JSON with %q", rec.Code, rec.Body, tt.code, tt.body)
			}
		})
	}
}

func TestReadyzFollowsTheGateway(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	g := newGateway(t, down.URL, "    health: {path: /healthz, interval: 20ms, timeout: 10ms, unhealthy_after: 1}\nreadiness: {required_upstreams: [app]}\n")
	h := admin.Handler(g, admin.Options{})
	for deadline := time.Now().Add(10 * time.Second); serve(h, "GET", "/readyz", "").Code != 503; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still 200 10s after the only instance of a required upstream failed its health checks")
		}
	}
	if rec := serve(h, "GET", "/healthz", ""); rec.Code != 200 {
		t.Errorf("/healthz of a live process that is not ready: %d", rec.Code)
	}
}

func TestCheckListen(t *testing.T) {
	tests := []struct {
		addr   string
		tokens int
		ok     bool
	}{
		{"127.0.0.1:9901", 0, true},
		{"127.1.2.3:9901", 0, true},
		{"[::1]:9901", 0, true},
		{"localhost:9901", 0, true},
		{"LOCALHOST:0", 0, true},
		{"0.0.0.0:9901", 0, false},
		{"[::]:9901", 0, false},
		{":9901", 0, false},
		{"10.0.0.5:9901", 0, false},
		{"admin.example.com:9901", 0, false},
		{"0.0.0.0:9901", 1, true},
		{":9901", 1, true},
		{"127.0.0.1", 0, false}, // no port
	}
	for _, tt := range tests {
		if err := admin.CheckListen(tt.addr, tt.tokens); (err == nil) != tt.ok {
			t.Errorf("CheckListen(%q, %d) = %v, want ok %v", tt.addr, tt.tokens, err, tt.ok)
		}
	}
}

func ExampleCheckListen() {
	fmt.Println(admin.CheckListen("127.0.0.1:9901", 0))
	fmt.Println(admin.CheckListen("0.0.0.0:9901", 0))
	fmt.Println(admin.CheckListen("0.0.0.0:9901", 1))
	// Output:
	// <nil>
	// refusing to serve the admin API on "0.0.0.0:9901" without a token: listen on loopback (127.0.0.1) or set admin.token or admin.tokens
	// <nil>
}

func ExampleHandler() {
	cfg, _, err := config.Parse("spillway.yaml", []byte(`
upstreams:
  catalog: {instances: ["http://127.0.0.1:9001"]}
routes:
  - {name: catalog, match: {path_prefix: /catalog}, upstream: catalog}
`), nil)
	if err != nil {
		panic(err)
	}
	g, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		panic(err)
	}
	defer g.Close()
	h := admin.Handler(g, admin.Options{Token: "a-long-random-token"})

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://localhost:9901/healthz", nil))
	fmt.Print(rec.Code, " ", rec.Body)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://localhost:9901/api/v1/reload", nil))
	fmt.Print(rec.Code, " ", rec.Body)
	// Output:
	// 200 ok
	// 401 {"error":{"message":"a valid Authorization: Bearer <token> header is required"}}
}
