package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestVersion(t *testing.T) {
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "spillway ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("version printed %q", out.String())
	}
}

func TestDemoShowsEveryPhaseAndTheBreakerOpening(t *testing.T) {
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"demo", "--phase", "600ms", "--tick", "150ms"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"healthy", "failing", "slow", "recovered", "done:"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	m := regexp.MustCompile(`the breaker opened (\d+) times`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no final summary:\n%s", text)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Errorf("the breaker never opened while the downstream failed 90 %% of calls:\n%s", text)
	}
	if !strings.Contains(text, "in flight 0.") {
		t.Errorf("the bulkhead must be empty once the callers stopped:\n%s", text)
	}
}

// lineWriter signals after the first summary line is written.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines int
	first chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines += bytes.Count(p, []byte("\n"))
	if w.lines == 3 {
		close(w.first)
	}
	return w.buf.Write(p)
}

func TestDemoStopsCleanlyOnInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &lineWriter{first: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- runDemo(ctx, w, demoOptions{phase: time.Hour, tick: 50 * time.Millisecond, workers: 4, pace: time.Millisecond})
	}()
	<-w.first
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !strings.Contains(w.buf.String(), "interrupted") {
		t.Fatalf("no interrupt notice:\n%s", w.buf.String())
	}
}

func TestDemoRejectsBadOptions(t *testing.T) {
	if err := runDemo(context.Background(), &bytes.Buffer{}, demoOptions{}); err == nil {
		t.Fatal("zero options must be refused")
	}
}
