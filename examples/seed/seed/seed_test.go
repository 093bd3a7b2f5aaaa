package seed_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/examples/seed/seed"
	"github.com/spillway-dev/spillway/internal/server"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// get fetches url and returns the answer, its body read.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// startAB serves B and A calling B; B's server is returned so that a test
// can stop it.
func startAB(t *testing.T) (a *seed.ServiceA, aSrv, bSrv *httptest.Server) {
	t.Helper()
	bSrv = httptest.NewServer(seed.NewServiceB())
	a, err := seed.NewServiceA(seed.AConfig{B: bSrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	aSrv = httptest.NewServer(a)
	t.Cleanup(func() {
		aSrv.Close()
		bSrv.Close()
		a.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return a, aSrv, bSrv
}

func TestServiceAServesItsLastGoodAnswerWhenBIsDown(t *testing.T) {
	a, aSrv, bSrv := startAB(t)
	resp, fresh := get(t, aSrv.URL+"/shop/items/1")
	if resp.StatusCode != http.StatusOK || resp.Header.Get(seed.FallbackHeader) != "" || !strings.Contains(fresh, `"service":"b"`) {
		t.Fatalf("healthy: %d %q %s", resp.StatusCode, resp.Header.Get(seed.FallbackHeader), fresh)
	}

	// B down as A's client sees it: the chaos switch.
	if err := a.Switch(seed.SwitchBDown, true); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, aSrv.URL+"/shop/items/1")
	if resp.StatusCode != http.StatusOK || resp.Header.Get(seed.FallbackHeader) != seed.LastGood || body != fresh {
		t.Errorf("b-down, item seen before: %d %s=%q %s; want 200, %s, %s", resp.StatusCode, seed.FallbackHeader,
			resp.Header.Get(seed.FallbackHeader), body, seed.LastGood, fresh)
	}
	// An item A never got from B has no last good answer: the library's error answer.
	resp, body = get(t, aSrv.URL+"/shop/items/2")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(spillwayhttp.ReasonHeader) == "" {
		t.Errorf("b-down, item never seen: %d %s", resp.StatusCode, body)
	}
	if err := a.Switch(seed.SwitchBDown, false); err != nil {
		t.Fatal(err)
	}

	// B really down: the same.
	bSrv.Close()
	resp, body = get(t, aSrv.URL+"/shop/items/1")
	if resp.StatusCode != http.StatusOK || resp.Header.Get(seed.FallbackHeader) != seed.LastGood || body != fresh {
		t.Errorf("B stopped: %d %q %s", resp.StatusCode, resp.Header.Get(seed.FallbackHeader), body)
	}
}

func TestServiceAChaosSwitchesEndpoint(t *testing.T) {
	a, _, _ := startAB(t)
	srv := httptest.NewServer(a.ChaosHandler())
	defer srv.Close()
	do := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := do(http.MethodGet, "/chaos"); code != 200 || body != `{"switches":{"b-down":false,"b-slow":false},"breaker":"closed"}` {
		t.Errorf("GET /chaos: %d %s", code, body)
	}
	if code, body := do(http.MethodPut, "/chaos/b-slow"); code != 200 || !strings.Contains(body, `"b-slow":true`) || !a.Switches()[seed.SwitchBSlow] {
		t.Errorf("PUT /chaos/b-slow: %d %s", code, body)
	}
	if code, body := do(http.MethodDelete, "/chaos/b-slow"); code != 200 || a.Switches()[seed.SwitchBSlow] {
		t.Errorf("DELETE /chaos/b-slow: %d %s", code, body)
	}
	if code, _ := do(http.MethodPut, "/chaos/c-down"); code != http.StatusNotFound {
		t.Errorf("an unknown switch: %d, want 404", code)
	}
}

// The example's gateway file validates as `spillway validate` does, and
// points at the address servicea listens on by default.
func TestExampleGatewayConfigValidates(t *testing.T) {
	t.Setenv("SPILLWAY_ADMIN_TOKEN", "example-token")
	cfg, warnings, err := server.LoadAndCheck("../spillway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	up := cfg.Upstreams["service-a"]
	if up == nil || len(up.Instances) != 1 || up.Instances[0] != "http://127.0.0.1:8081" {
		t.Fatalf("upstream service-a: %+v", up)
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0].Name != "shop" || cfg.Routes[0].Upstream != "service-a" || len(cfg.Routes[0].Fallback) != 2 {
		t.Errorf("routes: want shop → service-a with a stale cache and a static answer: %+v", cfg.Routes)
	}
	if cfg.Admin.Token != "example-token" {
		t.Errorf("admin.token %q, want $SPILLWAY_ADMIN_TOKEN", cfg.Admin.Token)
	}
}
