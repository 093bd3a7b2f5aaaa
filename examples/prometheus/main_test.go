package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs the program with cfg in a goroutine and returns its output's
// lines as they come and its result.
func start(ctx context.Context, cfg config) (<-chan string, <-chan error) {
	r, w := io.Pipe()
	lines := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	go func() {
		err := run(ctx, w, cfg)
		w.Close()
		done <- err
	}()
	return lines, done
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// The program serves the brief's metrics while it drives load, the breaker
// opens during the outage, and Ctrl-C (the context) ends it cleanly.
func TestServesMetricsUntilInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	lines, done := start(ctx, config{addr: "127.0.0.1:0", duration: time.Minute, interval: time.Millisecond})

	url, ok := strings.CutPrefix(<-lines, "metrics on ")
	if !ok {
		t.Fatalf("first line %q does not give the metrics URL", url)
	}
	deadline := time.Now().Add(20 * time.Second)
	want := []string{
		`spillway_upstream_attempts_total{name="inventory",result="success"}`,
		`spillway_upstream_attempts_total{name="inventory",result="failure"}`,
		`spillway_retries_total{name="inventory"}`,
		`spillway_circuit_state{name="inventory",state="closed"}`,
		`spillway_bulkhead_limit{name="inventory"} 10`,
		`spillway_retry_budget_remaining{name="inventory"}`,
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		body := scrape(t, url)
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s:\n%s", missing, body)
		}
		<-tick.C
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if len(rest) != 2 || !strings.HasPrefix(rest[0], "calls: ") || !strings.HasPrefix(rest[1], "downstream calls: ") {
		t.Fatalf("summary = %q", rest)
	}
}

// Run for its duration, the program goes through the outage: the breaker
// opens (a transition, rejections without calling) and the summary says so.
func TestOutageOpensBreaker(t *testing.T) {
	lines, done := start(t.Context(), config{addr: "127.0.0.1:0", duration: 900 * time.Millisecond, interval: time.Millisecond})
	var out []string
	for l := range lines {
		out = append(out, l)
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(out) != 3 {
		t.Fatalf("output = %q, want the URL and two summary lines", out)
	}
	if strings.Contains(out[1], " 0 rejected") {
		t.Errorf("no call was rejected during the outage: %q", out[1])
	}
	if strings.Contains(out[2], "breaker transitions: 0;") {
		t.Errorf("the breaker never changed state: %q", out[2])
	}
}
