package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The async scenario (-scenario async) measures an async route of the real
// binary with its embedded JetStream store, in two phases per case:
//
//  1. accept: wrk POSTs to the route while its upstream refuses
//     connections (the breaker opens after a few attempts and delivery
//     pauses), so that the figure is the gateway storing jobs and answering
//     202, not storing and delivering at once; the gateway then stops
//     (SIGTERM);
//  2. drain: the gateway restarts on the same store with a healthy upstream
//     (in this process), which counts the distinct jobs it receives; the
//     delivery throughput is the jobs delivered between the first and the
//     last delivery, once the route's pending gauge is 0.
//
// Cases: 256 B and 64 KiB bodies, with the default sync (JetStream flushes
// every 2 minutes) and with sync: always (fsync before every ack).

// asyncCase is one row of the async table.
type asyncCase struct {
	sync string // "" (default) or "always"
	body int
}

// asyncResult is what one case measured.
type asyncResult struct {
	wrk        wrkResult
	delivered  int           // distinct jobs the upstream received while draining
	drain      time.Duration // from the first delivery to the last
	drain99    time.Duration // from the first delivery to the mark-th job
	mark       int           // 99 % of the accepted jobs
	redelivers int           // deliveries beyond one per job
	lost       int           // jobs answered 202 that never arrived
	stuck      int           // jobs still pending when the drain stalled for 30s
}

// wrkResult is a wrk run with its counts.
type wrkResult struct {
	result
	requests int // answers received
	non2xx   int // answers other than 2xx (anything but 202 here)
	errors   int // socket errors: connect, read, write, timeout
	secs     float64
}

// accepted returns the 202 answers per second.
func (r wrkResult) acceptedPerSec() float64 {
	if r.secs == 0 {
		return 0
	}
	return float64(r.requests-r.non2xx) / r.secs
}

var (
	reqsRe   = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)`)
	non2xxRe = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	sockRe   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// wrkPost runs wrk with a Lua script that POSTs body bytes to u.
func wrkPost(ctx context.Context, dir, u string, size int, d time.Duration, conns int) (wrkResult, error) {
	script := filepath.Join(dir, fmt.Sprintf("post-%d.lua", size))
	lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", %d)\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n", size)
	if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
		return wrkResult{}, err
	}
	out, err := exec.CommandContext(ctx, "wrk", "-t2", "-c"+strconv.Itoa(conns), "-d"+d.String(), "--latency", "-s", script, u).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	var r wrkResult
	m, p, n := rpsRe.FindSubmatch(out), p99Re.FindSubmatch(out), reqsRe.FindSubmatch(out)
	if m == nil || p == nil || n == nil {
		return wrkResult{}, fmt.Errorf("cannot parse wrk output: %s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	v, _ := strconv.ParseFloat(string(p[1]), 64)
	r.p99 = time.Duration(v * float64(map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(p[2])]))
	r.requests, _ = strconv.Atoi(string(n[1]))
	secs, _ := strconv.ParseFloat(string(n[2]), 64)
	r.secs = secs * map[string]float64{"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[string(n[3])]
	if x := non2xxRe.FindSubmatch(out); x != nil {
		r.non2xx, _ = strconv.Atoi(string(x[1]))
	}
	if x := sockRe.FindSubmatch(out); x != nil {
		for _, s := range x[1:] {
			k, _ := strconv.Atoi(string(s))
			r.errors += k
		}
	}
	return r, nil
}

// jobCounter is the drain phase's upstream: it counts distinct jobs by
// Spillway-Job-Id and remembers the first and the last delivery, and when
// the mark-th distinct job arrived.
type jobCounter struct {
	mark        int64 // set before serving
	raw         atomic.Int64
	ids         sync.Map
	distinct    atomic.Int64
	first, last atomic.Int64 // unix nanoseconds
	marked      atomic.Int64
}

func (c *jobCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	now := time.Now().UnixNano()
	c.first.CompareAndSwap(0, now)
	c.last.Store(now)
	c.raw.Add(1)
	if _, dup := c.ids.LoadOrStore(r.Header.Get("Spillway-Job-Id"), struct{}{}); !dup {
		if c.distinct.Add(1) == c.mark {
			c.marked.Store(now)
		}
	}
	w.WriteHeader(http.StatusOK)
}

// runAsync runs every async case and prints the table.
func runAsync(ctx context.Context, dir, bin string, d time.Duration, conns int) error {
	cases := []asyncCase{{"", 256}, {"", 64 << 10}, {"always", 256}, {"always", 64 << 10}}
	results := make([]asyncResult, len(cases))
	for i, c := range cases {
		r, err := asyncRun(ctx, dir, bin, c, d, conns, i)
		if err != nil {
			return fmt.Errorf("async %s %d B: %w", syncName(c.sync), c.body, err)
		}
		results[i] = r
		fmt.Fprintf(os.Stderr, "async %-8s %6d B: %8.0f accepted/s p99 %s, non-202 %d, socket errors %d; drained %d jobs at %.0f jobs/s (lost %d, stuck %d)\n",
			syncName(c.sync), c.body, r.wrk.acceptedPerSec(), r.wrk.p99, r.wrk.non2xx, r.wrk.errors, r.delivered, drainRate(r), r.lost, r.stuck)
	}
	out := os.Stdout
	fmt.Fprintf(out, "\nAsync route, embedded JetStream store: accept with wrk -t2 -c%d -d%s POST (upstream down, delivery paused), "+
		"then drain to a healthy upstream (route concurrency %d)\n\n", conns, d, asyncConcurrency)
	fmt.Fprintln(out, "| sync | body | accepted/s (202) | p99 accept | non-202 answers | socket errors | jobs drained | delivery jobs/s (first 99 %) | drain, all | redeliveries | lost | stuck pending |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for i, c := range cases {
		r := results[i]
		fmt.Fprintf(out, "| %s | %s | %.0f | %s | %d | %d | %d | %.0f | %s | %d | %d | %d |\n", syncName(c.sync), sizeName(c.body),
			r.wrk.acceptedPerSec(), r.wrk.p99.Round(10*time.Microsecond), r.wrk.non2xx, r.wrk.errors, r.delivered, drainRate(r),
			r.drain.Round(10*time.Millisecond), r.redelivers, r.lost, r.stuck)
	}
	return nil
}

// asyncConcurrency is the route's delivery concurrency in the drain phase.
const asyncConcurrency = 32

func syncName(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// drainRate is the delivery throughput over the first 99 % of the jobs.
func drainRate(r asyncResult) float64 {
	if r.drain99 <= 0 || r.mark < 2 {
		return 0
	}
	return float64(r.mark-1) / r.drain99.Seconds()
}

// asyncRun measures one case: accept, stop, drain.
func asyncRun(ctx context.Context, dir, bin string, c asyncCase, d time.Duration, conns, n int) (asyncResult, error) {
	store := filepath.Join(dir, fmt.Sprintf("async-store-%d", n))
	defer os.RemoveAll(store)
	queue := "  dir: " + store
	if c.sync != "" {
		queue += "\n  sync: " + c.sync
	}

	// 1. Accept, the upstream refusing connections.
	gw, admin := freeAddr(), freeAddr()
	cfg := filepath.Join(dir, fmt.Sprintf("async-accept-%d.yaml", n))
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(asyncConfig, gw, admin, queue, freeAddr(), asyncConcurrency)), 0o600); err != nil {
		return asyncResult{}, err
	}
	p, err := startAsync(ctx, bin, cfg, admin)
	if err != nil {
		return asyncResult{}, err
	}
	var res asyncResult
	res.wrk, err = wrkPost(ctx, dir, "http://"+gw+"/jobs", c.body, d, conns)
	if stopErr := stopProc(p); err == nil {
		err = stopErr
	}
	if err != nil {
		return asyncResult{}, err
	}
	accepted := res.wrk.requests - res.wrk.non2xx

	// 2. Drain to a healthy upstream.
	// The rate is taken over the first 99 % of the jobs: the last ones
	// include the few that the open breaker paused in the accept phase,
	// which wait out the rest of its open time (up to 2s).
	cnt := jobCounter{mark: int64(float64(accepted) * 0.99)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return asyncResult{}, err
	}
	up := &http.Server{Handler: &cnt}
	go func() { _ = up.Serve(ln) }()
	defer up.Close()
	gw, admin = freeAddr(), freeAddr()
	cfg = filepath.Join(dir, fmt.Sprintf("async-drain-%d.yaml", n))
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(asyncConfig, gw, admin, queue, ln.Addr(), asyncConcurrency)), 0o600); err != nil {
		return asyncResult{}, err
	}
	p, err = startAsync(ctx, bin, cfg, admin)
	if err != nil {
		return asyncResult{}, err
	}
	defer stopProc(p)
	// Done when every accepted job arrived and nothing is pending, or when
	// nothing arrived for 30s (jobs lost or stuck: reported).
	progress, seen := time.Now(), int64(0)
	for {
		pending, found := gaugeLabelled("http://"+admin+"/metrics", "spillway_queue_pending")
		got := cnt.distinct.Load()
		if got != seen {
			progress, seen = time.Now(), got
		}
		if found && pending == 0 && got >= int64(accepted) {
			break
		}
		if time.Since(progress) > 30*time.Second {
			res.stuck = int(pending)
			break
		}
		select {
		case <-ctx.Done():
			return asyncResult{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	res.delivered = int(cnt.distinct.Load())
	res.lost = max(0, accepted-res.delivered)
	res.redelivers = int(cnt.raw.Load()) - res.delivered
	res.drain = time.Duration(cnt.last.Load() - cnt.first.Load())
	res.drain99 = time.Duration(cnt.marked.Load() - cnt.first.Load())
	res.mark = int(cnt.mark)
	return res, nil
}

// startAsync starts `bin serve -c cfg` and waits until its admin answers.
// The gateway's logs go to cfg's name with .log.
func startAsync(ctx context.Context, bin, cfg, admin string) (*exec.Cmd, error) {
	logf, err := os.Create(strings.TrimSuffix(cfg, ".yaml") + ".log")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, bin, "serve", "-c", cfg)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitAnswer(ctx, "http://"+admin+"/healthz"); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%w (see %s)", err, logf.Name())
	}
	return cmd, nil
}

// stopProc sends SIGTERM and waits for the process, killing it after 30s.
func stopProc(cmd *exec.Cmd) error {
	if cmd.ProcessState != nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not stop within 30s", cmd.Path)
	}
}

// gaugeLabelled sums every sample of name in a Prometheus text exposition.
func gaugeLabelled(u, name string) (float64, bool) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	sum, found := 0.0, false
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	return sum, found
}

// asyncConfig: one async route /jobs to upstream app. Accept phase: app
// refuses connections and its breaker opens after 5 attempts, so delivery
// pauses but for one probe every 2s (a job paused by the open breaker waits
// out the rest of the open time, restart or not: a longer open_for would
// hold it back in the drain phase); drain phase: app is healthy. Placeholders: listen,
// admin, the queue's lines, app's address, the route's concurrency.
const asyncConfig = `listen: %s
admin:
  listen: %s
queue:
%s
upstreams:
  app:
    instances: [http://%s]
    timeouts: {connect: 1s, attempt: 2s, total: 5s}
    retry: {max_attempts: 1}
    breaker:
      window: {type: count, size: 10}
      min_calls: 5
      failure_rate: 50%%
      open_for: 2s
      max_open_for: 2s
    bulkhead: {max_concurrent: 1024}
    outlier: {consecutive_failures: 0}
routes:
  - name: jobs
    match: {path_prefix: /jobs, methods: [POST]}
    upstream: app
    async: {max_attempts: 20, backoff: {initial: 100ms, max: 1s}, max_body: 1MiB, concurrency: %d}
`

// runAsyncScenario builds cmd/spillway from repo and runs the async cases.
func runAsyncScenario(ctx context.Context, repo string, d time.Duration, conns int) error {
	dir, err := os.MkdirTemp("", "gwbench-async")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := buildSpillway(ctx, repo, dir)
	if err != nil {
		return err
	}
	return runAsync(ctx, dir, bin, d, conns)
}

// buildSpillway builds repo's cmd/spillway into dir and returns its path.
func buildSpillway(ctx context.Context, repo, dir string) (string, error) {
	bin := filepath.Join(dir, "spillway")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/spillway")
	build.Dir, build.Stderr = repo, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building spillway: %w", err)
	}
	return bin, nil
}
