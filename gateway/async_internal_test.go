package gateway

import (
	"io"
	"log/slog"
	"testing"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/queue"
)

// TestReloadKeepsAnUnchangedWorker: the worker of a route whose async
// settings did not change is the same after a reload; a changed one is
// replaced, a removed one stopped.
func TestReloadKeepsAnUnchangedWorker(t *testing.T) {
	q, err := queue.Open(t.Context(), queue.Config{Dir: t.TempDir(), Prefix: "GWI", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	load := func(a, b string) *config.Config {
		cfg, _, err := config.Parse("t.yaml", []byte(`
upstreams:
  u: {instances: ["http://127.0.0.1:1"]}
routes:
  - {name: a, match: {path_prefix: /a}, upstream: u, async: {`+a+`}}
`+b), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	g, err := New(load("", "  - {name: b, match: {path_prefix: /b}, upstream: u, async: {}}\n"), Options{Queue: q, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	wa, wb := g.workers["a"], g.workers["b"]
	if wa == nil || wb == nil {
		t.Fatalf("workers %v", g.workers)
	}
	if err := g.Reload(load("", "  - {name: b, match: {path_prefix: /b}, upstream: u, async: {max_attempts: 2}}\n")); err != nil {
		t.Fatal(err)
	}
	if g.workers["a"] != wa || g.workers["b"] == wb || g.workers["b"] == nil {
		t.Errorf("after changing b: a kept %v, b replaced %v", g.workers["a"] == wa, g.workers["b"] != wb)
	}
	if err := g.Reload(load("", "")); err != nil {
		t.Fatal(err)
	}
	if len(g.workers) != 1 || g.workers["a"] != wa {
		t.Errorf("after removing b: %v", g.workers)
	}
	if !g.Ready() {
		t.Error("not ready")
	}
}
