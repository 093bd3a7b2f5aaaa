package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
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
	cmd.SetArgs([]string{"demo", "--library", "--phase", "600ms", "--tick", "150ms"})
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

func TestDemoLibraryRefusesDuration(t *testing.T) {
	cmd := newRootCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetArgs([]string{"demo", "--library", "--duration", "1s"})
	if err := cmd.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "--duration") {
		t.Fatalf("demo --library --duration: got %v, want an error naming --duration", err)
	}
}

func TestGatewayDemoConfigLoadsWithoutWarnings(t *testing.T) {
	env := map[string]string{}
	for i, name := range demoDownstreams {
		env["DEMO_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = "http://127.0.0.1:" + strconv.Itoa(9001+i)
	}
	cfg, warnings, err := config.Parse("demo.yaml", demoConfig, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("the demo's configuration has warnings: %v", warnings)
	}
	for _, name := range []string{"catalog", "catalog-replica", "reports", "recommendations"} {
		up := cfg.Upstreams[name]
		if up == nil || up.Health == nil || up.Outlier.ConsecutiveFailures == 0 {
			t.Errorf("upstream %s: missing, or without health checks or outlier ejection", name)
		}
	}
	if n := len(cfg.Upstreams["catalog"].Instances); n != 2 {
		t.Errorf("catalog has %d instances, want 2", n)
	}
	if len(cfg.Routes[0].Fallback) != 3 {
		t.Errorf("the catalog route's fallback chain has %d steps, want replica, stale cache, static", len(cfg.Routes[0].Fallback))
	}
}

func TestGatewayDemoScenarioAdvancesOnAnswersNotOnlyTime(t *testing.T) {
	sc := newScenario(0) // no minimum length: only the answers count
	if got := <-sc.changes; got != 0 {
		t.Fatalf("first change %d, want phase 0", got)
	}
	for range phaseMinRequests - 1 {
		for kind := range demoRequests {
			sc.answered(kind, 0)
		}
	}
	sc.answered(0, 1) // an answer to a request of another phase does not count
	if sc.cur.Load() != 0 {
		t.Fatal("the phase ended before every kind of request was answered enough times")
	}
	for kind := range demoRequests {
		sc.answered(kind, 0)
	}
	if sc.cur.Load() != 1 || <-sc.changes != 1 {
		t.Fatal("the phase did not end once every kind of request was answered enough times")
	}
	for phase := int32(1); phase < int32(len(gatewayPhases)); phase++ {
		for range phaseMinRequests {
			for kind := range demoRequests {
				sc.answered(kind, phase)
			}
		}
	}
	for want := 2; want <= len(gatewayPhases); want++ {
		if got := <-sc.changes; got != want {
			t.Fatalf("change %d, want %d", got, want)
		}
	}
	if got := sc.current().name; got != "recovered" {
		t.Fatalf("after the scenario the phase is %q, want the last one", got)
	}
}

// getOK fetches url and fails the test unless it answers 200.
func getOK(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func TestGatewayDemoServesFallbacksAndTheOptionalDefault(t *testing.T) {
	var out, errOut syncBuffer
	var urls demoURLs
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ready := func(u demoURLs) {
		urls = u
		if body := getOK(t, client, u.Gateway+"/catalog/items/1"); !strings.Contains(body, `"upstream":"catalog-`) {
			t.Errorf("the gateway's catalog answer came from elsewhere: %s", body)
		}
		var st gateway.Status
		if err := json.Unmarshal([]byte(getOK(t, client, u.Status)), &st); err != nil {
			t.Errorf("status: %v", err)
		}
		if n := len(st.Upstreams["catalog"].Instances); n != 2 {
			t.Errorf("status lists %d catalog instances, want 2: %+v", n, st)
		}
		if body := getOK(t, client, u.Metrics); !strings.Contains(body, "spillway_requests_total") {
			t.Error("the metrics lack spillway_requests_total")
		}
	}
	o := demoOptions{phase: 100 * time.Millisecond, tick: 50 * time.Millisecond, workers: 4, pace: time.Millisecond}
	if err := runGatewayDemo(context.Background(), &out, &errOut, o, ready); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, errOut.String())
	}
	text := out.String()
	if urls.Gateway == "" {
		t.Fatal("ready was not called")
	}
	for _, want := range []string{"gateway  " + urls.Gateway, "status   " + urls.Status, "metrics  " + urls.Metrics} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q:\n%s", want, text)
		}
	}
	for i, p := range gatewayPhases {
		if want := "phase " + strconv.Itoa(i+1) + "/" + strconv.Itoa(len(gatewayPhases)) + " " + p.name; !strings.Contains(text, want) {
			t.Errorf("the output lacks %q:\n%s", want, text)
		}
	}
	m := regexp.MustCompile(`fallbacks: (.*); reasons`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no final summary:\n%s", text)
	}
	served := map[string]int{}
	for _, f := range strings.Fields(m[1]) {
		kind, n, _ := strings.Cut(f, "=")
		served[kind], _ = strconv.Atoi(n)
	}
	if served[gateway.FallbackDefault] == 0 {
		t.Errorf("the optional route's default was never served: %v\n%s", served, text)
	}
	kinds := 0
	for _, k := range []string{gateway.FallbackReplica, gateway.FallbackStaleCache, gateway.FallbackStatic} {
		if served[k] > 0 {
			kinds++
		}
	}
	if kinds < 2 {
		t.Errorf("the catalog's fallback chain served %d kinds, want at least 2: %v\n%s", kinds, served, text)
	}
	if strings.Contains(errOut.String(), "warning:") {
		t.Errorf("the embedded configuration has warnings:\n%s", errOut.String())
	}
}

// waitWriter closes seen once the output contains want.
type waitWriter struct {
	syncBuffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *waitWriter) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if strings.Contains(w.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func TestGatewayDemoStopsCleanlyOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first summary line of the first phase: the clients are running.
	w := &waitWriter{want: "  healthy  ", seen: make(chan struct{})}
	cmd := newRootCommand()
	cmd.SetOut(w)
	cmd.SetErr(&syncBuffer{})
	cmd.SetArgs([]string{"demo", "--phase", "1h", "--tick", "20ms", "--workers", "3"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	select {
	case <-w.seen:
	case err := <-done:
		t.Fatalf("the demo ended before its first summary line: %v\n%s", err, w.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	text := w.String()
	if !strings.Contains(text, "interrupted") || !strings.Contains(text, "done after") {
		t.Fatalf("no interrupt notice or final summary:\n%s", text)
	}
}

func TestGatewayDemoRejectsBadOptions(t *testing.T) {
	if err := runGatewayDemo(context.Background(), io.Discard, io.Discard, demoOptions{}, nil); err == nil {
		t.Fatal("zero options must be refused")
	}
}
