package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
)

// runtimeAPI serves the admin API of a gateway with upstream app (bulkhead
// 10) on 127.0.0.1; its reload applies the same file again.
func runtimeAPI(t *testing.T) (*gateway.Gateway, *httptest.Server) {
	t.Helper()
	g := newGateway(t, "http://127.0.0.1:1", "    bulkhead: {max_concurrent: 10}\n")
	file := g.Config()
	srv := httptest.NewServer(admin.Handler(g, admin.Options{Token: "s3cret", Now: noDelays(), Reload: func() (admin.ReloadResult, error) {
		cs, err := g.Apply(file)
		return admin.ReloadResult{Changes: cs}, err
	}}))
	t.Cleanup(srv.Close)
	return g, srv
}

// send sends a request with the token (unless token is "") and returns the
// status and the body.
func send(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !json.Valid(b) {
		t.Errorf("%s %s: not JSON: %q", method, path, b)
	}
	return resp.StatusCode, string(b)
}

func TestRuntimeChanges(t *testing.T) {
	_, srv := runtimeAPI(t)
	steps := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PATCH", "/api/v1/upstreams/app", `{"bulkhead":{"max_concurrent":50},"breaker":{"failure_rate":"30%"}}`, 200, `"max_concurrent":50`},
		{"GET", "/api/v1/upstreams/app", "", 200, `"failure_rate":0.3`},
		// Refused: 400 naming the key, nothing changed.
		{"PATCH", "/api/v1/upstreams/app", `{"bulkhead":{"max_concurrent":7},"breaker":{"failure_rate":"300%"}}`, 400, `{"error":{"field":"breaker.failure_rate","message":`},
		{"PATCH", "/api/v1/upstreams/app", `{"bulkhead":{"max_concurent":7}}`, 400, `"field":"bulkhead.max_concurent"`},
		{"PATCH", "/api/v1/upstreams/app", `bulkhead: {max_concurrent: 7}`, 400, "JSON object"},
		{"PATCH", "/api/v1/upstreams/app", `{"bulkhead":{"max_concurrent":7}}` + strings.Repeat(" ", admin.MaxBody), 413, "larger"},
		{"GET", "/api/v1/upstreams/app", "", 200, `"max_concurrent":50`},
		{"PATCH", "/api/v1/upstreams/nope", `{}`, 404, "unknown"},
		// The breaker: forced open stays forced open across a bulkhead change.
		{"POST", "/api/v1/upstreams/app/breaker", `{"state":"forced_open"}`, 200, `"live":{"breaker":{"state":"forced_open"`},
		{"POST", "/api/v1/upstreams/app/breaker", `{"stat":"closed"}`, 400, `"field":"stat"`},
		{"POST", "/api/v1/upstreams/app/breaker", `{"state":"shut"}`, 400, `"field":"state"`},
		{"PATCH", "/api/v1/upstreams/app", `{"bulkhead":{"max_concurrent":20}}`, 200, `"live":{"breaker":{"state":"forced_open"`},
		// An instance ejected by hand.
		{"POST", "/api/v1/upstreams/app/instances", `{"url":"http://127.0.0.1:1","action":"eject"}`, 200, `"ejected":true,"manual":true`},
		{"POST", "/api/v1/upstreams/app/instances", `{"url":"http://127.0.0.1:2","action":"eject"}`, 400, `"field":"url"`},
		{"POST", "/api/v1/upstreams/app/instances", `{"url":"http://127.0.0.1:1","action":"drain"}`, 400, `"field":"action"`},
		// Route app is not optional: it cannot be switched off.
		{"PATCH", "/api/v1/routes/app", `{"enabled":false}`, 400, `"field":"enabled","message":"route app is not optional`},
		{"PATCH", "/api/v1/routes/app", `{"enable":false}`, 400, `"field":"enable"`},
		{"PATCH", "/api/v1/routes/app", `{}`, 400, `"field":"enabled"`},
		{"PATCH", "/api/v1/routes/nope", `{"enabled":false}`, 404, "unknown"},
		{"GET", "/api/v1/routes", "", 200, `"optional":false,"enabled":true`},
		{"GET", "/api/v1/overrides", "", 200, `"who":"admin","call":"PATCH /api/v1/upstreams/app"`},
		{"GET", "/api/v1/overrides", "", 200, `"before":{"breaker.state":"closed"},"after":{"breaker.state":"forced_open"}`},
		{"GET", "/api/v1/status", "", 200, `"overrides":[{"who":"admin"`},
		// A reload keeps the overrides, and says so.
		{"POST", "/api/v1/reload", "", 200, `"overrides":{"kept":[{"who":"admin"`},
		{"GET", "/api/v1/upstreams/app", "", 200, `"max_concurrent":20`},
		{"DELETE", "/api/v1/overrides", "", 200, `{"cleared":4,`},
		{"GET", "/api/v1/upstreams/app", "", 200, `"ejected":false`},
		{"GET", "/api/v1/upstreams/app", "", 200, `"live":{"breaker":{"state":"closed"`},
		{"GET", "/api/v1/upstreams/app", "", 200, `"max_concurrent":10`},
		{"GET", "/api/v1/overrides", "", 200, `{"overrides":[]}`},
	}
	for i, s := range steps {
		code, body := send(t, srv, s.method, s.path, "s3cret", s.body)
		if code != s.code || !strings.Contains(body, s.want) {
			t.Fatalf("step %d: %s %s: %d %s\nwant %d with %s", i, s.method, s.path, code, body, s.code, s.want)
		}
	}
}

func TestRuntimeChangesNeedTheToken(t *testing.T) {
	g, srv := runtimeAPI(t)
	for _, c := range []struct{ method, path, body string }{
		{"PATCH", "/api/v1/upstreams/app", `{"bulkhead":{"max_concurrent":50}}`},
		{"POST", "/api/v1/upstreams/app/breaker", `{"state":"forced_open"}`},
		{"POST", "/api/v1/upstreams/app/instances", `{"url":"http://127.0.0.1:1","action":"eject"}`},
		{"PATCH", "/api/v1/routes/app", `{"enabled":false}`},
		{"DELETE", "/api/v1/overrides", ""},
		{"GET", "/api/v1/overrides", ""},
	} {
		for _, token := range []string{"", "wrong"} {
			if code, body := send(t, srv, c.method, c.path, token, c.body); code != 401 {
				t.Errorf("%s %s with token %q: %d %s, want 401", c.method, c.path, token, code, body)
			}
		}
	}
	if v, _ := g.Upstream("app"); v.Policies.Bulkhead.MaxConcurrent != 10 || v.Live.Breaker.State != "closed" || len(g.Overrides()) != 0 {
		t.Errorf("refused calls changed the gateway: %+v %+v", v.Policies.Bulkhead, v.Live.Breaker)
	}
}
