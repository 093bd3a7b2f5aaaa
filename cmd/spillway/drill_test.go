package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// drillTestConfig is internal/drill's test gateway, in front of
// ${DRILL_UPSTREAM}: its breaker opens on a few failures and closes half a
// second later.
const drillTestConfig = "../../internal/drill/testdata/drill.yaml"

func runDrillCommand(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer up.Close()
	t.Setenv("DRILL_UPSTREAM", up.URL)
	t.Setenv("DRILL_TOKEN", "drill-token")
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"drill", "-c", drillTestConfig, "--upstream", "svc", "--rate", "50", "--duration", "3s"}, args...))
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

// --json prints the brief's shape; exit 0 when every expectation holds, 1
// when one fails.
func TestDrillCommandJSONAndExitCodes(t *testing.T) {
	html := filepath.Join(t.TempDir(), "report.html")
	out, stderr, err := runDrillCommand(t, "--scenario", "outage", "--json", "--html", html, "--expect", "availability>=90%", "--expect", "time_to_open<=1s")
	if exitCode(err) != 0 {
		t.Fatalf("exit %d (%v)\n%s\n%s", exitCode(err), err, out, stderr)
	}
	// --html writes the report beside the JSON: the verdict and four charts.
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(page), "<svg"); n != 4 || !strings.Contains(string(page), "PASS") {
		t.Errorf("--html: %d charts, want 4 and the verdict PASS", n)
	}
	var r struct {
		Pass     bool   `json:"pass"`
		Scenario string `json:"scenario"`
		Checks   []struct {
			Expect string   `json:"expect"`
			Value  *float64 `json:"value"`
			Pass   bool     `json:"pass"`
		} `json:"checks"`
		Metrics map[string]any `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !r.Pass || r.Scenario != "outage" || len(r.Checks) != 2 || r.Checks[0].Expect != "availability>=90%" || r.Checks[0].Value == nil {
		t.Errorf("report: %+v", r)
	}
	for _, k := range []string{"availability", "p99_ms", "amplification", "time_to_open_ms", "time_to_recover_ms"} {
		if _, ok := r.Metrics[k]; !ok {
			t.Errorf("metrics without %s: %v", k, r.Metrics)
		}
	}
	if !strings.Contains(stderr, "breaker") {
		t.Errorf("no progress line on stderr: %q", stderr)
	}

	out, _, err = runDrillCommand(t, "--scenario", "outage", "--expect", "error_rate>50%")
	if exitCode(err) != 1 || !strings.Contains(out, "FAIL") {
		t.Errorf("a failed expectation: exit %d, want 1 and a FAIL line:\n%s", exitCode(err), out)
	}
}

// Bad input exits 2 with the problem named.
func TestDrillCommandBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "meteor"}, "--scenario"},
		{nil, "--scenario"},
		{[]string{"--scenario", "outage", "--rate", "fast"}, "--rate"},
		{[]string{"--scenario", "outage", "--expect", "uptime>=99%"}, "unknown metric"},
		{[]string{"--scenario", "outage", "--rate", "0"}, "--rate"},
		{[]string{"--scenario", "outage", "--gateway", "http://192.0.2.1:8080", "--admin", "http://127.0.0.1:9901"}, "loopback"},
	} {
		_, _, err := runDrillCommand(t, tc.args...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: exit %d (%v), want 2 naming %s", tc.args, exitCode(err), err, tc.want)
		}
	}
}
