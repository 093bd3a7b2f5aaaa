// Command gwbench measures the gateway against the upstream alone, a bare
// httputil.ReverseProxy (with and without a BufferPool), nginx and HAProxy
// (Debian's packages) and Caddy (go install, caddy.go), with wrk as the load generator, all on this machine's
// loopback. Every target is a process of its own; the targets run
// interleaved, several rounds, and the table reports medians and ratios
// within the run (the 2 cores are shared by wrk, the proxy and the upstream).
//
//	go run ./gwbench -rounds 3 -duration 10s            # from bench/
//	go run ./gwbench -scenario async -duration 10s      # an async route (wrk only)
//	go run ./gwbench -only upstream,spillway -baseline /tmp/old -scenarios=false
//	                                                     # this tree against another checkout
//	go run ./gwbench -only spillway -dashboards 10 -scenarios=false
//	                                                     # the cost of 10 open dashboards
//	go run ./gwbench -only spillway -trace-ratio 0.01 -scenarios=false
//	                                                     # the cost of tracing 1 % over OTLP
//	go run ./gwbench -only none -routes 10000 -scenarios=false
//	                                                     # 10,000 routes against 1
//	go run ./gwbench -scenario paired -rounds 10 -duration 5s
//	                                                     # spillway and the pooled ReverseProxy
//	                                                     # loaded at once: CPU per request
//
// It needs wrk, nginx and haproxy on PATH and caddy (on PATH or -caddy)
// (scripts/bench-deps.sh installs them) and builds cmd/spillway itself. Nothing here runs in CI.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "upstream":
			serveUpstream(os.Args[2])
			return
		case "blackhole":
			serveBlackHole(os.Args[2])
			return
		case "rproxy":
			if os.Args[4] == "pool+gogc400" {
				// The collector setting spillway serve uses by default, so
				// that its share of the difference can be told apart.
				debug.SetGCPercent(400)
			}
			serveReverseProxy(os.Args[2], os.Args[3], os.Args[4] != "bare")
			return
		}
	}
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	duration := flag.Duration("duration", 10*time.Second, "wrk duration per target and round")
	conns := flag.Int("c", 64, "wrk connections")
	repo := flag.String("repo", "..", "the repository root (to build cmd/spillway)")
	only := flag.String("only", "", "comma-separated targets to run (default: all)")
	flag.StringVar(&baseline, "baseline", "", `another checkout of the repository (a git worktree of an earlier commit): its spillway runs as the target "spillway-baseline", interleaved with this one`)
	flag.BoolVar(&scenarios, "scenarios", true, "also run the fail-fast, added-latency and black-hole scenarios")
	flag.IntVar(&latencyRounds, "latency-rounds", 3, "interleaved rounds of the added-latency scenario")
	flag.Float64Var(&traceRatio, "trace-ratio", 0, `also run the target "spillway+traces": the same gateway with telemetry: exporting traces sampled at this ratio (and its metrics) over OTLP/HTTP to a receiver in gwbench`)
	flag.IntVar(&dashboards, "dashboards", 0, `also run the target "spillway+dashboards": the same gateway while N dashboards poll its runtime API every 2s and N clients follow its event stream`)
	flag.IntVar(&routes, "routes", 0, `also run the targets "spillway-routes=1" and "spillway-routes=N": the gateway with 1 and N routes, the request for the last one (whatever -only says)`)
	flag.StringVar(&caddyBin, "caddy", "caddy", "the Caddy binary of the \"caddy\" target")
	scenario := flag.String("scenario", "", `"async": measure an async route (accepted/s, delivery jobs/s) instead of the proxy targets; "paired": spillway and the pooled ReverseProxy loaded at the same time, CPU per request of each`)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch *scenario {
	case "":
		err = run(ctx, *repo, *rounds, *duration, *conns, *only)
	case "async":
		err = runAsyncScenario(ctx, *repo, *duration, *conns)
	case "paired":
		err = runPaired(ctx, *repo, *rounds, *duration, *conns)
	default:
		err = fmt.Errorf("unknown -scenario %q (want async, paired, or none)", *scenario)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// scenarios says whether the run goes on past the throughput table;
// latencyRounds is how many rounds the added-latency scenario runs.
var (
	scenarios     bool
	latencyRounds int
	// baseline is the -baseline checkout, "" for none.
	baseline string
)

// body is the upstream's answer: 200 bytes, as in the measurement.
var body = []byte(strings.Repeat("x", 199) + "\n")

func serveUpstream(addr string) {
	log.Fatal(http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})))
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v := b.p.Get(); v != nil {
		return *v.(*[]byte)
	}
	return make([]byte, 32<<10)
}
func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

func serveReverseProxy(addr, upstream string, pooled bool) {
	u, err := url.Parse(upstream)
	if err != nil {
		log.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u); r.SetXForwarded() }}
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second}
	if pooled {
		rp.BufferPool = &bufferPool{}
	}
	log.Fatal(http.ListenAndServe(addr, rp))
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type target struct {
	name string
	url  string
	// admin is the admin listener's base URL when dashboards are to be
	// attached while wrk runs, "" otherwise.
	admin string
}

func run(ctx context.Context, repo string, rounds int, d time.Duration, conns int, only string) error {
	dir, err := os.MkdirTemp("", "gwbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			waited := make(chan struct{})
			go func() { _ = p.Wait(); close(waited) }()
			select {
			case <-waited:
			case <-time.After(5 * time.Second):
				_ = p.Process.Kill()
				<-waited
			}
		}
	}()
	startCmd := func(name string, args ...string) (*exec.Cmd, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		// The targets' own logs (proxy errors by the thousand in the
		// failure scenarios) go to a file, not into the report.
		logf, err := os.OpenFile(filepath.Join(dir, "targets.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = io.Discard, logf
		// The targets die with gwbench, however it ends.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		procs = append(procs, cmd)
		return cmd, nil
	}
	start := func(name string, args ...string) error {
		_, err := startCmd(name, args...)
		return err
	}

	want := func(name string) bool { return only == "" || slices.Contains(strings.Split(only, ","), name) }
	up := freeAddr()
	if err := start(self, "upstream", up); err != nil {
		return err
	}
	targets := []target{{name: "upstream", url: "http://" + up + "/"}}

	for _, mode := range []string{"bare", "pool", "pool+gogc400"} {
		addr, name := freeAddr(), map[string]string{"bare": "reverseproxy", "pool": "reverseproxy+pool", "pool+gogc400": "reverseproxy+pool+gogc400"}[mode]
		if !want(name) {
			continue
		}
		if err := start(self, "rproxy", addr, "http://"+up, mode); err != nil {
			return err
		}
		targets = append(targets, target{name: name, url: "http://" + addr + "/"})
	}

	var spillwayBin string
	if want("spillway") || scenarios || routes > 0 {
		spillwayBin = filepath.Join(dir, "spillway")
		build := exec.CommandContext(ctx, "go", "build", "-o", spillwayBin, "./cmd/spillway")
		build.Dir, build.Stderr = repo, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building spillway: %w", err)
		}
	}
	if want("spillway") {
		gw, admin := freeAddr(), freeAddr()
		if err := startSpillway(dir, "main", spillwayBin, gw, admin, up, spillwayConfig, startCmd); err != nil {
			return err
		}
		targets = append(targets, target{name: "spillway", url: "http://" + gw + "/"})
	}
	if want("spillway") && dashboards > 0 {
		if dashboardsConfig == spillwayConfig {
			return fmt.Errorf("-dashboards: spillwayConfig no longer has the admin block dashboardsConfig adds the token to")
		}
		gw, admin := freeAddr(), freeAddr()
		if err := startSpillway(dir, "dashboards", spillwayBin, gw, admin, up, dashboardsConfig, startCmd); err != nil {
			return err
		}
		targets = append(targets, target{name: "spillway+dashboards", url: "http://" + gw + "/", admin: "http://" + admin})
	}
	if want("spillway") && traceRatio > 0 {
		t, err := startTraces(dir, spillwayBin, up, startCmd)
		defer traceSink.Close()
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	if routes > 0 {
		ts, err := startRoutes(dir, spillwayBin, up, startCmd)
		if err != nil {
			return err
		}
		targets = append(targets, ts...)
	}
	if baseline != "" {
		bin := filepath.Join(dir, "spillway-baseline")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/spillway")
		build.Dir, build.Stderr = baseline, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building the baseline spillway: %w", err)
		}
		gw, admin := freeAddr(), freeAddr()
		if err := startSpillway(dir, "baseline", bin, gw, admin, up, spillwayConfig, startCmd); err != nil {
			return err
		}
		targets = append(targets, target{name: "spillway-baseline", url: "http://" + gw + "/"})
	}
	if want("nginx") {
		ng := freeAddr()
		ngConf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(ngConf, []byte(fmt.Sprintf(nginxConfig, dir, dir, up, ng)), 0o600); err != nil {
			return err
		}
		if err := start("nginx", "-c", ngConf, "-p", dir, "-g", "daemon off;"); err != nil {
			return err
		}
		targets = append(targets, target{name: "nginx", url: "http://" + ng + "/"})
	}
	if want("haproxy") {
		hp := freeAddr()
		hpConf := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(hpConf, []byte(fmt.Sprintf(haproxyConfig, hp, up)), 0o600); err != nil {
			return err
		}
		if err := start("haproxy", "-f", hpConf, "-db"); err != nil {
			return err
		}
		targets = append(targets, target{name: "haproxy", url: "http://" + hp + "/"})
	}
	if want("caddy") {
		cd := freeAddr()
		if err := startCaddy(dir, cd, up, start); err != nil {
			return err
		}
		targets = append(targets, target{name: "caddy", url: "http://" + cd + "/"})
	}
	targets = slices.DeleteFunc(targets, func(t target) bool {
		return !want(t.name) && t.name != "spillway-baseline" && t.name != "spillway+traces" && t.admin == "" && routePIDs[t.name] == 0
	})
	for _, t := range targets {
		if err := waitReady(ctx, t.url); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	med, err := measure(ctx, targets, rounds, d, conns)
	if err != nil || !scenarios {
		return err
	}
	return runScenarios(ctx, dir, self, spillwayBin, up, med, d, startCmd)
}

// startSpillway serves the gateway with the configuration tmpl (listen,
// admin, upstream) and waits until its admin answers.
func startSpillway(dir, name, bin, gw, admin, up, tmpl string, startCmd func(string, ...string) (*exec.Cmd, error)) error {
	cfg := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(tmpl, gw, admin, up)), 0o600); err != nil {
		return err
	}
	_, err := startCmd(bin, "serve", "-c", cfg)
	return err
}

func measure(ctx context.Context, targets []target, rounds int, d time.Duration, conns int) (map[string]float64, error) {
	results := map[string][]result{}
	for r := 1; r <= rounds; r++ {
		// Every other round runs the targets in reverse, so that none
		// always runs right after another's load.
		order := slices.Clone(targets)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, t := range order {
			stop := func() string { return "" }
			if t.admin != "" {
				stop = attachDashboards(ctx, t.admin, dashboards)
			}
			res, err := wrk(ctx, t.url, d, conns)
			attached := stop()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d %-18s %9.0f req/s  p99 %s%s\n", r, t.name, res.rps, res.p99, attached)
			results[t.name] = append(results[t.name], res)
		}
	}
	return report(os.Stdout, targets, results, rounds, d, conns), nil
}

func waitReady(ctx context.Context, u string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer 200 within 30s", u)
}

type result struct {
	rps float64
	p99 time.Duration
}

var (
	rpsRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p99Re = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
)

func wrk(ctx context.Context, u string, d time.Duration, conns int) (result, error) {
	out, err := exec.CommandContext(ctx, "wrk", "-t2", "-c"+strconv.Itoa(conns), "-d"+d.String(), "--latency", u).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	m := rpsRe.FindSubmatch(out)
	p := p99Re.FindSubmatch(out)
	if m == nil || p == nil {
		return result{}, fmt.Errorf("cannot parse wrk output: %s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	v, _ := strconv.ParseFloat(string(p[1]), 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(p[2])]
	return result{rps: rps, p99: time.Duration(v * float64(unit))}, nil
}

// roundRatios lists a/b round by round, the spread the median hides.
func roundRatios(a, b []result) string {
	var rs []string
	for i := range min(len(a), len(b)) {
		rs = append(rs, fmt.Sprintf("%.3f", a[i].rps/b[i].rps))
	}
	return strings.Join(rs, " ")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func report(w io.Writer, targets []target, results map[string][]result, rounds int, d time.Duration, conns int) map[string]float64 {
	fmt.Fprintf(w, "wrk -t2 -c%d -d%s, 200-byte GET, medians of %d interleaved rounds\n\n", conns, d, rounds)
	fmt.Fprintln(w, "| target | req/s | p99 | vs reverseproxy+pool | vs nginx | vs caddy |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	med := map[string]float64{}
	p99 := map[string]float64{}
	for _, t := range targets {
		var rps, lat []float64
		for _, r := range results[t.name] {
			rps, lat = append(rps, r.rps), append(lat, float64(r.p99))
		}
		med[t.name], p99[t.name] = median(rps), median(lat)
	}
	ratio := func(a, b string) string {
		if med[b] == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", med[a]/med[b])
	}
	for _, t := range targets {
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s |\n", t.name, med[t.name], time.Duration(p99[t.name]).Round(10*time.Microsecond),
			ratio(t.name, "reverseproxy+pool"), ratio(t.name, "nginx"), ratio(t.name, "caddy"))
	}
	if med["spillway+dashboards"] > 0 {
		fmt.Fprintf(w, "\nspillway+dashboards (%d dashboards polling, %d event streams) vs spillway: %s (rounds: %s)\n",
			dashboards, dashboards, ratio("spillway+dashboards", "spillway"), roundRatios(results["spillway+dashboards"], results["spillway"]))
	}
	if med["spillway+traces"] > 0 {
		reportTraces(w, ratio, roundRatios(results["spillway+traces"], results["spillway"]))
	}
	if routes > 0 {
		reportRoutes(w, ratio, results)
	}
	if med["spillway-baseline"] > 0 {
		fmt.Fprintf(w, "\nspillway vs spillway-baseline: %s (rounds: %s)\n", ratio("spillway", "spillway-baseline"),
			roundRatios(results["spillway"], results["spillway-baseline"]))
	}
	return med
}

// spillwayConfig: every policy on (retry with budget, breaker, bulkhead,
// timeouts), one upstream instance.
const spillwayConfig = `listen: %s
admin:
  listen: %s
upstreams:
  app:
    instances: [http://%s]
    timeouts: {connect: 1s, attempt: 2s, total: 5s}
    retry:
      max_attempts: 3
      backoff: {initial: 100ms, max: 5s, multiplier: 2, jitter: full}
      budget: {ratio: 0.2, window: 10s, min_per_second: 10}
    breaker:
      window: {type: count, size: 100}
      min_calls: 20
      failure_rate: 50%%
      open_for: 30s
      half_open_probes: 5
    bulkhead: {max_concurrent: 1024, max_waiting: 0, max_wait: 0s}
    outlier: {consecutive_failures: 5, ejection: 30s, max_ejection: 300s, max_ejected: 50%%}
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
`

const nginxConfig = `worker_processes 2;
error_log %s/nginx-error.log warn;
pid %s/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  upstream app { server %s; keepalive 128; }
  server {
    listen %s;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`

const haproxyConfig = `global
  nbthread 2
  maxconn 8192
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind %s
  default_backend be
backend be
  server s1 %s
`
