package spillwayslog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/spillwayslog"
	"github.com/spillway-dev/spillway/timeout"
)

var errDown = errors.New("downstream down")

// logBuffer is a JSON log in memory, safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines decodes every line logged so far.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(b.buf.Bytes()))
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func newLogger(level slog.Level) (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: level})), b
}

func count(lines []map[string]any, msg string) (n int, total float64) {
	for _, l := range lines {
		if l["msg"] == msg {
			n++
			if s, ok := l["suppressed"].(float64); ok {
				total += s
			}
		}
	}
	return n, total
}

func rejection(name string, reason spillway.Reason) spillway.Event {
	return spillway.Event{Kind: spillway.EventRejection, Context: context.Background(), Policy: "breaker", Name: name, Reason: reason}
}

func TestRejectionStormIsRateLimited(t *testing.T) {
	tests := []struct {
		name      string
		step      time.Duration // clock advance after each rejection
		wantLines int           // "call rejected" lines
		wantSumm  int           // summaries before Flush
	}{
		// Ten thousand at the same instant: one window.
		{"burst", 0, 5, 0},
		// One a millisecond for 10 s: ten windows of 1 s, each logging
		// 5 lines; the first rejection of windows 2 to 10 logs a summary.
		{"sustained", time.Millisecond, 50, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, buf := newLogger(slog.LevelDebug)
			clock := spillway.NewManualClock(0)
			o := spillwayslog.New(l, spillwayslog.Options{MaxPerInterval: 5, Interval: time.Second, Clock: clock})
			const storm = 10_000
			for range storm {
				o.Observe(rejection("catalog", spillway.ReasonBreakerOpen))
				clock.Advance(tt.step)
			}
			lines := buf.lines(t)
			got, _ := count(lines, "call rejected")
			summ, _ := count(lines, "rejections suppressed")
			if got != tt.wantLines || summ != tt.wantSumm || len(lines) != got+summ {
				t.Fatalf("%d lines: %d rejections and %d summaries, want %d and %d", len(lines), got, summ, tt.wantLines, tt.wantSumm)
			}
			o.Flush(context.Background())
			lines = buf.lines(t)
			summ, suppressed := count(lines, "rejections suppressed")
			if summ != tt.wantSumm+1 || int(suppressed)+got != storm {
				t.Errorf("after Flush: %d summaries counting %v suppressed, want %d and %d", summ, suppressed, tt.wantSumm+1, storm-got)
			}
			for _, l := range lines {
				if l["level"] != "DEBUG" || l["policy"] != "breaker" || l["name"] != "catalog" || l["reason"] != "breaker_open" {
					t.Fatalf("line %v", l)
				}
			}
			// Flush does not repeat a summary.
			o.Flush(context.Background())
			if n := len(buf.lines(t)); n != len(lines) {
				t.Errorf("second Flush logged %d lines", n-len(lines))
			}
		})
	}
}

func TestSummaryWhenTheWindowRollsOver(t *testing.T) {
	l, buf := newLogger(slog.LevelDebug)
	clock := spillway.NewManualClock(0)
	o := spillwayslog.New(l, spillwayslog.Options{MaxPerInterval: 2, Interval: time.Second, Clock: clock})
	for range 7 {
		o.Observe(rejection("catalog", spillway.ReasonBreakerOpen))
	}
	clock.Advance(999 * time.Millisecond)
	o.Observe(rejection("catalog", spillway.ReasonBreakerOpen)) // same window: suppressed
	clock.Advance(time.Millisecond)
	o.Observe(rejection("catalog", spillway.ReasonBreakerOpen)) // a new window
	lines := buf.lines(t)
	var msgs []string
	for _, l := range lines {
		msgs = append(msgs, l["msg"].(string))
	}
	want := []string{"call rejected", "call rejected", "rejections suppressed", "call rejected"}
	if len(msgs) != len(want) {
		t.Fatalf("got %q, want %q", msgs, want)
	}
	for i := range want {
		if msgs[i] != want[i] {
			t.Fatalf("got %q, want %q", msgs, want)
		}
	}
	if s := lines[2]; s["suppressed"] != 6.0 || s["interval"] != float64(time.Second) || s["reason"] != "breaker_open" {
		t.Errorf("summary %v", s)
	}
}

func TestKeysAreLimitedApart(t *testing.T) {
	l, buf := newLogger(slog.LevelDebug)
	o := spillwayslog.New(l, spillwayslog.Options{MaxPerInterval: 1, Clock: spillway.NewManualClock(0)})
	for range 3 {
		o.Observe(rejection("a", spillway.ReasonBreakerOpen))
		o.Observe(rejection("b", spillway.ReasonBreakerOpen))
		o.Observe(spillway.Event{Kind: spillway.EventRejection, Policy: "bulkhead", Name: "a", Reason: spillway.ReasonBulkheadFull})
		o.Observe(spillway.Event{Kind: spillway.EventTimeout, Policy: "timeout", Name: "a", Duration: time.Second})
	}
	lines := buf.lines(t)
	if got, _ := count(lines, "call rejected"); got != 3 {
		t.Errorf("%d rejection lines, want one per key (3)", got)
	}
	if got, _ := count(lines, "call timed out"); got != 1 {
		t.Errorf("%d timeout lines, want 1", got)
	}
	o.Flush(context.Background())
	lines = buf.lines(t)
	if n, s := count(lines, "rejections suppressed"); n != 3 || s != 6 {
		t.Errorf("rejection summaries: %d counting %v, want 3 counting 6", n, s)
	}
	if n, s := count(lines, "timeouts suppressed"); n != 1 || s != 2 {
		t.Errorf("timeout summaries: %d counting %v, want 1 counting 2", n, s)
	}
}

// TestTransitionsAlwaysLoggedAtWarn trips a breaker during a rejection
// storm under a logger at Warn: the transitions are all there, and the
// disabled Debug lines are neither logged nor summarised.
func TestTransitionsAlwaysLoggedAtWarn(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelWarn} {
		t.Run(level.String(), func(t *testing.T) {
			l, buf := newLogger(level)
			clock := spillway.NewManualClock(0)
			o := spillwayslog.New(l, spillwayslog.Options{MaxPerInterval: 1, Clock: clock})
			br := breaker.MustNew(breaker.Config{Name: "catalog", WindowSize: 2, MinCalls: 2, OpenFor: time.Second,
				HalfOpenProbes: 1, Clock: clock, Observer: o})
			fail := func(context.Context) error { return errDown }
			for range 2 {
				_ = br.Execute(context.Background(), fail)
			}
			for range 1000 {
				if err := br.Execute(context.Background(), fail); !errors.Is(err, breaker.ErrOpen) {
					t.Fatalf("got %v, want a rejection", err)
				}
			}
			clock.Advance(time.Second)
			_ = br.Execute(context.Background(), func(context.Context) error { return nil })
			o.Flush(context.Background())

			var transitions []string
			rejections := 0
			for _, l := range buf.lines(t) {
				switch l["msg"] {
				case "circuit breaker state changed":
					if l["level"] != "WARN" || l["name"] != "catalog" || l["policy"] != "breaker" {
						t.Errorf("transition line %v", l)
					}
					transitions = append(transitions, l["from"].(string)+">"+l["to"].(string))
				default:
					rejections++
				}
			}
			want := []string{"closed>open", "open>half_open", "half_open>closed"}
			if len(transitions) != len(want) {
				t.Fatalf("transitions %q, want %q", transitions, want)
			}
			for i := range want {
				if transitions[i] != want[i] {
					t.Fatalf("transitions %q, want %q", transitions, want)
				}
			}
			wantOther := 2 // one rejection line, one summary
			if level > slog.LevelDebug {
				wantOther = 0
			}
			if rejections != wantOther {
				t.Errorf("%d other lines, want %d", rejections, wantOther)
			}
		})
	}
}

type traceKey struct{}

// traceHandler adds the trace id it finds in the context, as a tracing
// handler would.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := ctx.Value(traceKey{}).(string); ok {
		r.AddAttrs(slog.String("trace_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

// TestRealPoliciesAndContext runs a pipeline with retry, bulkhead, timeout
// and fallback, all logging, under a context that carries a trace id.
func TestRealPoliciesAndContext(t *testing.T) {
	buf := &logBuffer{}
	l := slog.New(traceHandler{slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	o := spillwayslog.New(l, spillwayslog.Options{})
	ctx := context.WithValue(context.Background(), traceKey{}, "trace-1")

	rt := retry.MustNew(retry.Config{Name: "catalog", MaxAttempts: 2, Observer: o, Rand: func() float64 { return 0 }})
	bh := bulkhead.MustNew(bulkhead.Config{Name: "catalog", MaxConcurrent: 1, Observer: o})
	to, err := timeout.New(timeout.Config{Name: "catalog", Duration: time.Millisecond, Observer: o})
	if err != nil {
		t.Fatal(err)
	}
	fb := fallback.MustNew(fallback.Config{Name: "catalog", Observer: o}, fallback.Value("static", "[]"))
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Name: "catalog", Fallback: fb, Retry: rt,
		Guards: []spillway.Guard{bh}, Attempt: to})
	v, err := pl.Execute(ctx, func(ctx context.Context) (string, error) {
		<-ctx.Done() // every attempt outlives the attempt timeout
		return "", ctx.Err()
	})
	if err != nil || v != "[]" {
		t.Fatalf("got %q, %v; want the fallback", v, err)
	}
	p, err := bh.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bh.Execute(ctx, func(context.Context) error { return nil }); !errors.Is(err, bulkhead.ErrFull) {
		t.Fatalf("got %v, want ErrFull", err)
	}
	p.Release(nil)

	byMsg := map[string][]map[string]any{}
	for _, l := range buf.lines(t) {
		if l["trace_id"] != "trace-1" {
			t.Errorf("line without the call's trace id: %v", l)
		}
		byMsg[l["msg"].(string)] = append(byMsg[l["msg"].(string)], l)
	}
	check := func(msg, level string, n int, attrs map[string]any) {
		t.Helper()
		got := byMsg[msg]
		if len(got) != n {
			t.Fatalf("%q: %d lines, want %d (all: %v)", msg, len(got), n, byMsg)
		}
		for _, l := range got {
			if l["level"] != level || l["name"] != "catalog" {
				t.Errorf("%q: %v", msg, l)
			}
			for k, v := range attrs {
				if l[k] != v {
					t.Errorf("%q: %s = %v, want %v", msg, k, l[k], v)
				}
			}
		}
	}
	check("call timed out", "DEBUG", 2, map[string]any{"policy": "timeout", "reason": "deadline_exceeded", "timeout": float64(time.Millisecond)})
	check("retrying", "DEBUG", 1, map[string]any{"policy": "retry", "attempt": 1.0, "delay": 0.0})
	check("fallback served", "INFO", 1, map[string]any{"policy": "fallback", "fallback": "static"})
	check("call rejected", "DEBUG", 1, map[string]any{"policy": "bulkhead", "reason": "bulkhead_full"})
	if e, _ := byMsg["retrying"][0]["error"].(string); e == "" {
		t.Error("retry line without the error")
	}
	if e, _ := byMsg["fallback served"][0]["error"].(string); e == "" {
		t.Error("fallback line without the replaced error")
	}
}

func TestAttemptsAndUnknownKindsAreNotLogged(t *testing.T) {
	l, buf := newLogger(slog.LevelDebug)
	o := spillwayslog.New(l, spillwayslog.Options{})
	o.Observe(spillway.Event{Kind: spillway.EventAttempt, Name: "a", Err: errDown})
	o.Observe(spillway.Event{Kind: spillway.EventKind(99), Name: "a"})
	if n := len(buf.lines(t)); n != 0 {
		t.Errorf("%d lines, want none", n)
	}
}

func TestNilLoggerIsDefault(t *testing.T) {
	l, buf := newLogger(slog.LevelDebug)
	prev := slog.Default()
	slog.SetDefault(l)
	t.Cleanup(func() { slog.SetDefault(prev) })
	spillwayslog.New(nil, spillwayslog.Options{}).Observe(spillway.Event{Kind: spillway.EventTransition, Name: "a", From: "closed", To: "open"})
	if n := len(buf.lines(t)); n != 1 {
		t.Errorf("%d lines on the default logger, want 1", n)
	}
}

// TestConcurrentStorm rejects from many goroutines at one instant: at most
// MaxPerInterval lines, and the summary accounts for every other rejection.
func TestConcurrentStorm(t *testing.T) {
	l, buf := newLogger(slog.LevelDebug)
	o := spillwayslog.New(l, spillwayslog.Options{MaxPerInterval: 3, Clock: spillway.NewManualClock(0)})
	const goroutines, each = 8, 1000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				o.Observe(rejection("catalog", spillway.ReasonBreakerOpen))
			}
		})
	}
	wg.Wait()
	o.Flush(context.Background())
	lines := buf.lines(t)
	got, _ := count(lines, "call rejected")
	summ, suppressed := count(lines, "rejections suppressed")
	if got != 3 || summ != 1 || got+int(suppressed) != goroutines*each {
		t.Errorf("%d lines, %d summaries counting %v; want 3, 1 and %d in all", got, summ, suppressed, goroutines*each)
	}
}

func TestDisabledLevelAllocatesNothing(t *testing.T) {
	l, _ := newLogger(slog.LevelWarn)
	o := spillwayslog.New(l, spillwayslog.Options{})
	e := rejection("catalog", spillway.ReasonBreakerOpen)
	if n := testing.AllocsPerRun(100, func() { o.Observe(e) }); n != 0 {
		t.Errorf("%v allocations per disabled rejection", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	discard := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, bc := range []struct {
		name  string
		level slog.Level
	}{{"rejection-suppressed", slog.LevelDebug}, {"rejection-disabled", slog.LevelWarn}} {
		b.Run(bc.name, func(b *testing.B) {
			l := discard
			if bc.level != slog.LevelDebug {
				l = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: bc.level}))
			}
			o := spillwayslog.New(l, spillwayslog.Options{Clock: spillway.NewManualClock(0)})
			e := rejection("catalog", spillway.ReasonBreakerOpen)
			b.ReportAllocs()
			for b.Loop() {
				o.Observe(e)
			}
		})
	}
	b.Run("transition-logged", func(b *testing.B) {
		o := spillwayslog.New(discard, spillwayslog.Options{})
		e := spillway.Event{Kind: spillway.EventTransition, Policy: "breaker", Name: "catalog", From: "closed", To: "open"}
		b.ReportAllocs()
		for b.Loop() {
			o.Observe(e)
		}
	})
}
