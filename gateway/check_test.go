package gateway_test

import (
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
)

// checkWarnings returns the warnings of gateway.Check(cfg), as text.
func checkWarnings(t *testing.T, cfg *config.Config) []string {
	t.Helper()
	ws, err := gateway.Check(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range ws {
		got = append(got, w.String())
	}
	return got
}

// TestCheckWarnings: the policies' own warnings, which config.Parse does
// not know, come out of Check at the key they are about (or the defaults:
// entry it inherits), and not for a breaker in a manual mode.
func TestCheckWarnings(t *testing.T) {
	cfg, _, err := config.Load("../config/testdata/warnings.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := checkWarnings(t, cfg)
	want := []string{
		"../config/testdata/warnings.yaml:9:18: upstreams.never-opens.breaker.min_calls: MinCalls (50) is larger than WindowSize (10): the failure and slow-call rates can never open the breaker",
		"../config/testdata/warnings.yaml:3:24: upstreams.short-window.breaker.min_calls: MinCalls is 1: the breaker opens on the first failed call",
		"../config/testdata/warnings.yaml:16:34: upstreams.short-window.breaker.window.size: WindowDuration (8s) is shorter than twice ProbeTimeout (5s), the attempt timeout: slow calls leave the window before they are judged",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	cfg, _, err = config.Parse("t.yaml", []byte("upstreams:\n  a: {instances: [http://127.0.0.1:1], breaker: {mode: disabled, min_calls: 1}}\nroutes: [{name: r, upstream: a}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ws, err := gateway.Check(cfg); err != nil || len(ws) != 0 {
		t.Errorf("a disabled breaker: warnings %v, error %v", ws, err)
	}
}

// TestCheckAsyncNeedsNoQueue: validate builds a file with async routes
// without a queue; New without one refuses it.
func TestCheckAsyncNeedsNoQueue(t *testing.T) {
	cfg, _, err := config.Parse("t.yaml", []byte("upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a, async: {}}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gateway.Check(cfg); err != nil {
		t.Fatal(err)
	}
}
