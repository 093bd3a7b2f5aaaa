package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/pool"
	"github.com/spillway-dev/spillway/internal/server"
)

var update = flag.Bool("update", false, "rewrite testdata/map's golden files")

const exampleConfig = "../../examples/gateway/spillway.yaml"

func runMapCommand(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"map"}, args...))
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// The example configuration's map in each format, as the golden files
// under testdata/map (go test -run TestMapGolden -update rewrites them).
func TestMapGolden(t *testing.T) {
	for format, golden := range map[string]string{"mermaid": "example.mmd", "dot": "example.dot", "json": "example.json"} {
		out, stderr, err := runMapCommand(t, "-c", exampleConfig, "--format", format)
		if err != nil {
			t.Fatalf("%s: %v\n%s", format, err, stderr)
		}
		path := filepath.Join("testdata", "map", golden)
		if *update {
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if out != string(want) {
			t.Errorf("%s map differs from %s:\n%s", format, path, out)
		}
	}
}

// The README and docs/gateway.md show the example's map: the ```mermaid
// block after the line that names the command is what the command prints.
func TestDocsShowTheExampleMap(t *testing.T) {
	want, _, err := runMapCommand(t, "-c", exampleConfig, "--format", "mermaid")
	if err != nil {
		t.Fatal(err)
	}
	const intro = "`spillway map -c examples/gateway/spillway.yaml --format mermaid`:\n\n```mermaid\n"
	for _, doc := range []string{"../../README.md", "../../docs/gateway.md"} {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		_, after, ok := strings.Cut(string(text), intro)
		block, _, closed := strings.Cut(after, "```\n")
		if !ok || !closed {
			t.Errorf("%s has no ```mermaid block after %s", doc, intro)
			continue
		}
		if block != want {
			t.Errorf("%s's map is not the command's output; paste:\n%s", doc, want)
		}
	}
}

// A bad file: its errors printed as validate prints them, exit status 2.
func TestMapBadFileExits2(t *testing.T) {
	file := writeConfig(t, "upstreams:\n  a:\n    instances: [http://127.0.0.1:9001]\nroutes:\n  - {name: r, upstream: b}\n")
	out, stderr, err := runMapCommand(t, "-c", file)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("got %v, want an exit status 2", err)
	}
	if out != "" {
		t.Errorf("a map was printed for a bad file: %q", out)
	}
	if want := file + `:5:25: route "r": unknown upstream "b"; did you mean "a"?`; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q lacks %q", stderr, want)
	}
	for _, args := range [][]string{{"-c", filepath.Join(t.TempDir(), "missing.yaml")}, {"-c", exampleConfig, "--format", "svg"}} {
		if _, _, err := runMapCommand(t, args...); !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("map %v: got %v, want an exit status 2", args, err)
		}
	}
}

// With --admin the map reads /api/v1/status (sending the token) and
// colours the nodes by what it says.
func TestMapAdminColoursByLiveState(t *testing.T) {
	var gotAuth string
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/status" {
			http.NotFound(w, r)
			return
		}
		gotAuth = r.Header.Get("Authorization")
		_ = json.NewEncoder(w).Encode(gateway.Status{Upstreams: map[string]gateway.UpstreamStatus{
			"catalog": {Breaker: gateway.BreakerStatus{State: "open"}, Instances: []pool.InstanceStatus{
				{URL: "http://127.0.0.1:9001", Healthy: true}, {URL: "http://127.0.0.1:9002", Ejected: true}}},
			"catalog-replica": {Breaker: gateway.BreakerStatus{State: "half_open"}},
			"recs":            {Breaker: gateway.BreakerStatus{State: "closed"}},
		}})
	}))
	defer admin.Close()
	out, stderr, err := runMapCommand(t, "-c", exampleConfig, "--admin", admin.URL+"/", "--token", "t0k")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if gotAuth != "Bearer t0k" {
		t.Errorf("Authorization %q, want the token", gotAuth)
	}
	for _, want := range []string{
		`u1("catalog [open]")`, `u1i2(["http://127.0.0.1:9002 [ejected]"])`,
		"class u1,u1i2 down", "class u1i1,u4 ok", "class u2 degraded", "classDef down fill:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("map lacks %q:\n%s", want, out)
		}
	}
	dot, _, err := runMapCommand(t, "-c", exampleConfig, "--format", "dot", "--admin", admin.URL)
	if err != nil || !strings.Contains(dot, `"u1" [label="catalog [open]", shape=ellipse, fillcolor="#ffcdd2", style="filled"]`) {
		t.Errorf("dot map (%v) lacks the open breaker's fill:\n%s", err, dot)
	}

	admin.Close()
	if _, _, err := runMapCommand(t, "-c", exampleConfig, "--admin", admin.URL); err == nil {
		t.Error("an unreachable admin API was not an error")
	}
}

// With --admin and no -c, map draws a running gateway started with no file
// (serve --upstream) from its runtime API, coloured by live state.
func TestMapAdminWithoutFile(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer up.Close()
	adm := serveInTest(t, server.Options{Upstream: up.URL, Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Token: "t0k"})
	out, stderr, err := runMapCommand(t, "--admin", adm, "--token", "t0k")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	want := "flowchart LR\n" +
		`  r1["app"]` + "\n" +
		`  u1("app [closed]")` + "\n" +
		`  u1i1(["` + up.URL + ` [healthy]"])` + "\n" +
		"  r1 --> u1\n  u1 --> u1i1\n"
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "class u1,u1i1 ok") {
		t.Errorf("map:\n%s\nwant it to start with:\n%s", out, want)
	}
	var ee *exitError
	if _, _, err := runMapCommand(t, "--admin", adm, "--token", "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a wrong token: %v, want the API's 401", err)
	}
	if _, _, err := runMapCommand(t); !errors.As(err, &ee) || ee.code != 2 {
		t.Errorf("neither -c nor --admin: %v, want exit status 2", err)
	}
}

// The map from the runtime API alone is the map from the file coloured by
// the same gateway: the same nodes, edges, ids and states.
func TestMapAdminSameAsFile(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer up.Close()
	file := filepath.Join(t.TempDir(), "spillway.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: t0k}
upstreams:
  main: {instances: [%[1]s, "http://127.0.0.1:1"]}
  replica: {instances: [%[1]s]}
  jobs: {instances: [%[1]s]}
routes:
  - name: api
    match: {path_prefix: /api}
    upstream: main
    fallback: [{upstream: replica}, {stale_cache: {ttl: 1m}}]
  - {name: orders, match: {path_prefix: /orders}, upstream: jobs}
  - {name: all, match: {path_prefix: /}, upstream: main}
`, up.URL)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	adm := serveInTest(t, server.Options{File: file})
	fromFile, stderr, err := runMapCommand(t, "-c", file, "--admin", adm, "--token", "t0k", "--format", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	live, stderr, err := runMapCommand(t, "--admin", adm, "--token", "t0k", "--format", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if live != fromFile {
		t.Errorf("map --admin:\n%s\nmap -c FILE --admin:\n%s", live, fromFile)
	}
	if !strings.Contains(live, `"kind": "fallback"`) || !strings.Contains(live, `"state": "closed"`) {
		t.Errorf("map lacks the fallback edges or the live state:\n%s", live)
	}
}
