package async

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/internal/natstest"

	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/queue"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, natstest.LeakOptions()...) }

// nowhere is an Upstreams whose routes are all being replaced: the jobs
// wait.
type nowhere struct{}

func (nowhere) Deliver(context.Context, string, *http.Request) (*http.Response, error) {
	return nil, ErrNoRoute
}

func (nowhere) Breaker(string) (breaker.Snapshot, bool) { return breaker.Snapshot{}, false }

// TestSyncKeepsAnUnchangedWorker: the worker of a route whose async
// settings did not change is the same after a Sync; a changed one is
// replaced, a removed one stopped.
func TestSyncKeepsAnUnchangedWorker(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	q, err := queue.Open(t.Context(), queue.Config{Dir: t.TempDir(), Prefix: "GWI", Logger: logger})
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
	rs := New(q, nowhere{}, Options{Logger: logger, WorkerGrace: time.Second,
		Deliveries:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"route", "result"}),
		DeadDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dd"}, []string{"route"})})
	defer rs.Close()
	if err := rs.Sync(load("", "  - {name: b, match: {path_prefix: /b}, upstream: u, async: {}}\n")); err != nil {
		t.Fatal(err)
	}
	wa, wb := rs.workers["a"], rs.workers["b"]
	if wa == nil || wb == nil {
		t.Fatalf("workers %v", rs.workers)
	}
	if err := rs.Sync(load("", "  - {name: b, match: {path_prefix: /b}, upstream: u, async: {max_attempts: 2}}\n")); err != nil {
		t.Fatal(err)
	}
	if rs.workers["a"] != wa || rs.workers["b"] == wb || rs.workers["b"] == nil {
		t.Errorf("after changing b: a kept %v, b replaced %v", rs.workers["a"] == wa, rs.workers["b"] != wb)
	}
	if err := rs.Sync(load("", "")); err != nil {
		t.Fatal(err)
	}
	if len(rs.workers) != 1 || rs.workers["a"] != wa {
		t.Errorf("after removing b: %v", rs.workers)
	}
	if !rs.Ready() {
		t.Error("not ready")
	}
}
