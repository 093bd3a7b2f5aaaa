package gateway

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

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

// TestAppendTimeIsRFC3339Nano: the access log's time, formatted once per
// second, reads as time.RFC3339Nano does, in any zone and with any
// fraction (none, trailing zeros), also when consecutive lines move from one
// second or zone to another.
func TestAppendTimeIsRFC3339Nano(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("IST", 5*3600+1800), time.FixedZone("W", -7*3600), time.Local}
	base := time.Date(2026, 12, 6, 19, 59, 58, 0, time.UTC)
	for i, ns := range []int{0, 1, 10, 120000000, 999999999, 500, 123456789, 100000000} {
		for j, loc := range zones {
			tm := base.Add(time.Duration(i*7+j) * 300 * time.Millisecond).Add(time.Duration(ns)).In(loc)
			if got, want := string(appendTime(nil, tm)), tm.Format(time.RFC3339Nano); got != want {
				t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
			}
		}
	}
}

// BenchmarkAccessLine is the formatting of one access log line.
func BenchmarkAccessLine(b *testing.B) {
	l := accessLine{time: time.Now(), route: "app", upstream: "app", method: "GET", path: "/api/v1/orders/123",
		status: 200, duration: 1234567 * time.Nanosecond, attempts: 1, outcome: "success", fault: "none"}
	b.ReportAllocs()
	for b.Loop() {
		l.time = l.time.Add(time.Microsecond)
		writeAccessLine(io.Discard, l)
	}
}
