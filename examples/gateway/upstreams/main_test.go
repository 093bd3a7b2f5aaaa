package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The services are exactly the example file's instances: upstream by
// upstream, the same addresses in the same order.
func TestServicesAreTheExampleFilesInstances(t *testing.T) {
	cfg, _, err := config.Load("../spillway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for name, u := range cfg.Upstreams {
		want[name] = u.Instances
	}
	got := map[string][]string{}
	for _, s := range services {
		got[s.upstream] = append(got[s.upstream], "http://"+s.addr)
	}
	if len(got) != len(want) {
		t.Errorf("services serve %d upstreams, the file names %d", len(got), len(want))
	}
	for name, instances := range want {
		if !slices.Equal(got[name], instances) {
			t.Errorf("upstream %s: services on %q, the file's instances %q", name, got[name], instances)
		}
	}
}

// On free ports every service answers its health check and its paths with
// JSON, and cancelling the context (Ctrl-C) stops them all.
func TestServesUntilInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, w, true)
		w.Close()
		done <- err
	}()
	urls := map[string]string{} // instance → base URL
	sc := bufio.NewScanner(r)
	for len(urls) < len(services) && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || !strings.HasPrefix(f[2], "http://127.0.0.1:") {
			t.Fatalf("start line %q, want UPSTREAM INSTANCE http://127.0.0.1:PORT", sc.Text())
		}
		urls[f[1]] = f[2]
	}
	go func() { _, _ = io.Copy(io.Discard, r) }() // drains the pipe until run returns

	for _, s := range services {
		if got := get(t, http.MethodGet, urls[s.instance]+"/healthz", http.StatusOK); got["status"] != "ok" {
			t.Errorf("%s /healthz: %v", s.instance, got)
		}
	}
	if got := get(t, http.MethodGet, urls["catalog-2"]+"/catalog/42", http.StatusOK); got["id"] != "42" || got["instance"] != "catalog-2" {
		t.Errorf("catalog-2 /catalog/42: %v", got)
	}
	if got := get(t, http.MethodGet, urls["catalog-replica"]+"/catalog", http.StatusOK); got["instance"] != "catalog-replica" || got["items"] == nil {
		t.Errorf("catalog-replica /catalog: %v", got)
	}
	if got := get(t, http.MethodPost, urls["orders"]+"/orders", http.StatusCreated); got["status"] != "created" {
		t.Errorf("orders POST /orders: %v", got)
	}
	get(t, http.MethodGet, urls["orders"]+"/orders", http.StatusMethodNotAllowed)
	resp, err := http.Get(urls["recs"] + "/recommendations")
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil || len(recs) == 0 {
		t.Errorf("recs /recommendations: %v %v", recs, err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after Ctrl-C: %v", err)
	}
	if resp, err := http.Get(urls["catalog-1"] + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("catalog-1 still answers after Ctrl-C")
	}
}

// get sends a request with the body {} and decodes its JSON object answer.
func get(t *testing.T, method, url string, status int) map[string]any {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s: %d %s, want %d application/json", method, url, resp.StatusCode, resp.Header.Get("Content-Type"), status)
	}
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return body
}
