package admin_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
	"github.com/spillway-dev/spillway/queue"
)

// asyncGateway is a gateway with an async route /orders whose jobs go to
// an upstream answering status (0: 200), on an embedded queue.
func asyncGateway(t *testing.T, status *atomic.Int64, hits *atomic.Int64) *gateway.Gateway {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		if s := status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
	}))
	t.Cleanup(up.Close)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	q, err := queue.Open(t.Context(), queue.Config{Dir: t.TempDir(), Prefix: "ADM", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	cfg, _, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`
upstreams:
  orders: {instances: ["%s"]}
routes:
  - {name: orders, match: {path_prefix: /orders}, upstream: orders, async: {max_attempts: 2, backoff: {initial: 1ms, max: 5ms}}}
`, up.URL)), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Queue: q, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// enqueue posts body to /orders and returns the job id.
func enqueue(t *testing.T, g *gateway.Gateway, body string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/orders/x?n=1", strings.NewReader(body))
	req.Header.Set("X-Order", "1")
	g.ServeHTTP(rec, req)
	var a struct{ ID string }
	if rec.Code != 202 || json.Unmarshal(rec.Body.Bytes(), &a) != nil {
		t.Fatalf("POST /orders: %d %s", rec.Code, rec.Body)
	}
	return a.ID
}

func call(t *testing.T, h http.Handler, method, path string, out any) int {
	t.Helper()
	rec := serve(h, method, path, "Bearer tok")
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s %s: not JSON: %q", method, path, rec.Body)
	}
	if out != nil && rec.Code == 200 {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatal(err)
		}
	}
	return rec.Code
}

func waitState(t *testing.T, h http.Handler, id string, want queue.State) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var st queue.Status
		if call(t, h, "GET", "/api/v1/jobs/"+id, &st) == 200 && st.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never %s", id, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeadLetters(t *testing.T) {
	var status, hits atomic.Int64
	status.Store(500)
	g := asyncGateway(t, &status, &hits)
	h := admin.Handler(g, admin.Options{Token: "tok"})
	binary := "\xff\x00 not utf-8"
	ids := []string{enqueue(t, g, binary), enqueue(t, g, "two"), enqueue(t, g, "three")}
	for _, id := range ids {
		waitState(t, h, id, queue.StateDead)
	}

	var page admin.DeadLetterPage
	if code := call(t, h, "GET", "/api/v1/dead-letters?route=orders&limit=2", &page); code != 200 || len(page.Items) != 2 || page.Next == "" {
		t.Fatalf("first page: %d %+v", code, page)
	}
	var rest admin.DeadLetterPage
	if code := call(t, h, "GET", "/api/v1/dead-letters?route=orders&after="+page.Next, &rest); code != 200 || len(rest.Items) != 1 || rest.Next != "" {
		t.Fatalf("second page: %d %+v", code, rest)
	}
	seen := map[string]bool{}
	for _, it := range append(page.Items, rest.Items...) {
		seen[it.ID] = true
		if it.Route != "orders" || it.Method != "POST" || it.Path != "/orders/x" || it.Attempts != 2 || it.LastStatus != 500 || it.Seq == 0 {
			t.Errorf("item %+v", it)
		}
	}
	if len(seen) != 3 || !seen[ids[0]] || !seen[ids[1]] || !seen[ids[2]] {
		t.Errorf("pages hold %v, want %v", seen, ids)
	}

	var d admin.DeadLetterDetail
	if code := call(t, h, "GET", "/api/v1/dead-letters/"+ids[0], &d); code != 200 || d.BodyEncoding != "base64" || d.Query != "n=1" || d.Headers["X-Order"][0] != "1" {
		t.Fatalf("show: %d %+v", code, d)
	}
	if b, _ := base64.StdEncoding.DecodeString(d.Body); string(b) != binary {
		t.Errorf("body %q", b)
	}
	if call(t, h, "GET", "/api/v1/dead-letters/"+ids[1], &d); d.Body != "two" || d.BodyEncoding != "utf-8" {
		t.Errorf("text body: %+v", d)
	}

	// Replay one after the upstream is fixed: delivered once.
	status.Store(0)
	before := hits.Load()
	var n map[string]any
	if code := call(t, h, "POST", "/api/v1/dead-letters/"+ids[0]+"/replay", &n); code != 200 {
		t.Fatalf("replay: %d", code)
	}
	waitState(t, h, ids[0], queue.StateDelivered)
	if got := hits.Load() - before; got != 1 {
		t.Errorf("replayed job reached the upstream %d times", got)
	}
	if code := call(t, h, "GET", "/api/v1/dead-letters/"+ids[0], nil); code != 404 {
		t.Errorf("a replayed dead letter: %d, want 404", code)
	}

	// Purge one, replay the rest.
	if code := call(t, h, "DELETE", "/api/v1/dead-letters/"+ids[1], &n); code != 200 {
		t.Errorf("purge: %d", code)
	}
	if code := call(t, h, "DELETE", "/api/v1/dead-letters/"+ids[1], nil); code != 404 {
		t.Errorf("purge again: %d, want 404", code)
	}
	var replayed map[string]int
	if code := call(t, h, "POST", "/api/v1/dead-letters/replay?route=orders", &replayed); code != 200 || replayed["replayed"] != 1 {
		t.Errorf("replay all: %d %v", code, replayed)
	}
	waitState(t, h, ids[2], queue.StateDelivered)

	// And purge all.
	status.Store(500)
	waitState(t, h, enqueue(t, g, "four"), queue.StateDead)
	var purged map[string]int
	if code := call(t, h, "DELETE", "/api/v1/dead-letters?route=orders", &purged); code != 200 || purged["purged"] != 1 {
		t.Errorf("purge all: %d %v", code, purged)
	}
	if call(t, h, "GET", "/api/v1/dead-letters", &page); len(page.Items) != 0 {
		t.Errorf("after purge: %+v", page)
	}
}

func TestJobEndpointsParametersAndAuth(t *testing.T) {
	var status, hits atomic.Int64
	g := asyncGateway(t, &status, &hits)
	h := admin.Handler(g, admin.Options{Token: "tok"})
	const unknown = "0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/api/v1/jobs/" + unknown, 404},
		{"GET", "/api/v1/jobs/xyz", 400},
		{"GET", "/api/v1/dead-letters/" + unknown, 404},
		{"POST", "/api/v1/dead-letters/" + unknown + "/replay", 404},
		{"DELETE", "/api/v1/dead-letters/" + unknown, 404},
		{"GET", "/api/v1/dead-letters?limit=0", 400},
		{"GET", "/api/v1/dead-letters?limit=501", 400},
		{"GET", "/api/v1/dead-letters?after=x", 400},
		{"GET", "/api/v1/dead-letters?route=a.b", 400},
		{"POST", "/api/v1/dead-letters/replay", 400},
		{"DELETE", "/api/v1/dead-letters", 400},
		{"PUT", "/api/v1/dead-letters", 405},
		{"GET", "/api/v1/dead-letters?limit=500", 200},
	} {
		if code := call(t, h, tt.method, tt.path, nil); code != tt.code {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, code, tt.code)
		}
	}
	// Every job endpoint needs the token, reads included.
	for _, p := range []string{"/api/v1/jobs/" + unknown, "/api/v1/dead-letters", "/api/v1/dead-letters/" + unknown} {
		if rec := serve(h, "GET", p, ""); rec.Code != 401 {
			t.Errorf("GET %s without a token: %d", p, rec.Code)
		}
		if rec := serve(admin.Handler(g, admin.Options{}), "GET", p, "Bearer tok"); rec.Code != 403 {
			t.Errorf("GET %s with no token configured: %d", p, rec.Code)
		}
	}
}

func TestJobEndpointsWithoutAQueue(t *testing.T) {
	g := newGateway(t, "http://127.0.0.1:1", "")
	h := admin.Handler(g, admin.Options{Token: "tok"})
	if code := call(t, h, "GET", "/api/v1/dead-letters", nil); code != 501 {
		t.Errorf("no queue: %d, want 501", code)
	}
}
