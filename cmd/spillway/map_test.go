package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/pool"
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
