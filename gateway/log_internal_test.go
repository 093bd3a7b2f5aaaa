package gateway

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// Every breaker transition is logged: Warn when the breaker starts refusing
// calls, Info when it tries the upstream again or is back.
func TestBreakerTransitionsAreLogged(t *testing.T) {
	buf := &spillwaytest.Buffer{}
	g := &Gateway{opts: Options{Logger: slog.New(slog.NewJSONHandler(buf, nil))}}
	m, err := newMetrics(prometheus.NewRegistry(), g)
	if err != nil {
		t.Fatal(err)
	}
	up := m.upstream("catalog")
	steps := []struct{ from, to, level string }{
		{"closed", "open", "WARN"},
		{"open", "half_open", "INFO"},
		{"half_open", "open", "WARN"},
		{"open", "half_open", "INFO"},
		{"half_open", "closed", "INFO"},
		{"closed", "forced_open", "WARN"},
		{"forced_open", "closed", "INFO"},
	}
	for _, s := range steps {
		up.Observe(spillway.Event{Kind: spillway.EventTransition, Policy: "breaker", Name: "catalog", From: s.from, To: s.to})
	}
	dec := json.NewDecoder(strings.NewReader(buf.String()))
	for i, s := range steps {
		var l struct{ Level, Msg, Upstream, From, To string }
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %d (%s → %s): %v\n%s", i, s.from, s.to, err, buf)
		}
		if l.Level != s.level || l.Msg != "gateway: breaker "+s.to || l.Upstream != "catalog" || l.From != s.from || l.To != s.to {
			t.Errorf("%s → %s logged %+v, want %s", s.from, s.to, l, s.level)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Errorf("more lines than transitions:\n%s", buf)
	}
}
