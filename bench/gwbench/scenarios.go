package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// serveBlackHole accepts connections and never answers them.
func serveBlackHole(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	var held []net.Conn
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		held = append(held, c)
	}
}

// runScenarios measures what the issue asks beyond throughput: fail-fast
// answers with the breaker open, the latency the gateway adds at half its
// maximum rate, and memory and goroutines against a black hole.
func runScenarios(ctx context.Context, dir, self, bin, up string, med map[string]float64, d time.Duration,
	startCmd func(string, ...string) (*exec.Cmd, error)) error {
	out := os.Stdout

	// 1. The upstream refuses connections; the breaker opens; wrk measures
	// the answers the gateway makes from memory.
	dead := freeAddr()
	gw, admin := freeAddr(), freeAddr()
	if err := startSpillway(dir, "failfast", bin, gw, admin, dead, failFastConfig, startCmd); err != nil {
		return err
	}
	if err := waitBreakerOpen(ctx, "http://"+gw+"/", "http://"+admin+"/api/v1/status"); err != nil {
		return err
	}
	ff, err := wrk(ctx, "http://"+gw+"/", d, 64)
	if err != nil {
		return fmt.Errorf("fail-fast: %w", err)
	}
	rp := freeAddr()
	if _, err := startCmd(self, "rproxy", rp, "http://"+dead, "pool"); err != nil {
		return err
	}
	if err := waitAnswer(ctx, "http://"+rp+"/"); err != nil {
		return err
	}
	rpDead, err := wrk(ctx, "http://"+rp+"/", d, 64)
	if err != nil {
		return fmt.Errorf("reverseproxy against a dead upstream: %w", err)
	}
	fmt.Fprintf(out, "\nUpstream refusing connections (wrk -t2 -c64 -d%s, one run)\n\n", d)
	fmt.Fprintln(out, "| target | answers/s | p99 | vs upstream direct (healthy) |")
	fmt.Fprintln(out, "|---|---|---|---|")
	fmt.Fprintf(out, "| spillway, breaker open (503 breaker_open) | %.0f | %s | %.2f× |\n", ff.rps, ff.p99.Round(10*time.Microsecond), ff.rps/med["upstream"])
	fmt.Fprintf(out, "| reverseproxy+pool (502 per refused dial) | %.0f | %s | %.2f× |\n", rpDead.rps, rpDead.p99.Round(10*time.Microsecond), rpDead.rps/med["upstream"])

	// 2. Latency added at half of the gateway's maximum rate, interleaved
	// rounds: a single pair is at the mercy of one GC or scheduling hiccup
	// on these 2 shared cores.
	rate := int(med["spillway"] / 2)
	if rate > 0 {
		gwMain, err := mainGateway(dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\nConstant rate %d req/s (half of spillway's median maximum) for %s, vegeta, %d interleaved rounds\n\n", rate, d, latencyRounds)
		fmt.Fprintln(out, "| round | upstream p50 | upstream p99 | spillway p50 | spillway p99 | p99 added |")
		fmt.Fprintln(out, "|---|---|---|---|---|---|")
		var added []float64
		for r := 1; r <= latencyRounds; r++ {
			direct, err := attack(ctx, "http://"+up+"/", rate, d)
			if err != nil {
				return err
			}
			via, err := attack(ctx, gwMain, rate, d)
			if err != nil {
				return err
			}
			a := via.Latencies.P99 - direct.Latencies.P99
			added = append(added, float64(a))
			fmt.Fprintf(out, "| %d | %s | %s | %s | %s | %s |\n", r, direct.Latencies.P50.Round(time.Microsecond), direct.Latencies.P99.Round(time.Microsecond),
				via.Latencies.P50.Round(time.Microsecond), via.Latencies.P99.Round(time.Microsecond), a.Round(time.Microsecond))
		}
		fmt.Fprintf(out, "\nmedian p99 added by the gateway: %s\n", time.Duration(median(added)).Round(time.Microsecond))
	}

	// 3. A black-hole upstream and 2000 concurrent clients.
	bh := freeAddr()
	if _, err := startCmd(self, "blackhole", bh); err != nil {
		return err
	}
	gw3, admin3 := freeAddr(), freeAddr()
	if err := startSpillway(dir, "blackhole", bin, gw3, admin3, bh, blackHoleConfig, startCmd); err != nil {
		return err
	}
	pid, err := pidOf(dir, "blackhole")
	if err != nil {
		return err
	}
	if err := waitAnswer(ctx, "http://"+admin3+"/healthz"); err != nil {
		return err
	}
	peakRSS, peakG := int64(0), 0.0
	done := make(chan struct{})
	go func() {
		defer close(done)
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			if r := rssOf(pid); r > peakRSS {
				peakRSS = r
			}
			if g := gauge("http://"+admin3+"/metrics", "go_goroutines"); g > peakG {
				peakG = g
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	bhRes, err := wrk(ctx, "http://"+gw3+"/", d, 2000)
	<-done
	if err != nil {
		return fmt.Errorf("black hole: %w", err)
	}
	fmt.Fprintf(out, "\nBlack-hole upstream (accepts, never answers), wrk -t2 -c2000 -d%s: bulkhead 100, attempt timeout 1s\n\n", d)
	fmt.Fprintf(out, "answers/s %.0f (p99 %s); peak RSS %.1f MB; peak goroutines %.0f (bulkhead 100 + 2000 client connections + runtime)\n",
		bhRes.rps, bhRes.p99.Round(time.Millisecond), float64(peakRSS)/(1<<20), peakG)
	return nil
}

// waitBreakerOpen sends requests until the gateway's status shows the
// upstream's breaker open.
func waitBreakerOpen(ctx context.Context, u, status string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if resp, err := http.Get(status); err == nil {
			var st struct {
				Upstreams map[string]struct {
					Breaker struct{ State string } `json:"breaker"`
				} `json:"upstreams"`
			}
			err := json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && st.Upstreams["app"].Breaker.State == "open" {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("the breaker did not open within 30s")
}

// waitAnswer polls u until it answers at all.
func waitAnswer(ctx context.Context, u string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer within 30s", u)
}

func attack(ctx context.Context, u string, rate int, d time.Duration) (*vegeta.Metrics, error) {
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: u})
	atk := vegeta.NewAttacker(vegeta.KeepAlive(true), vegeta.Connections(256))
	var m vegeta.Metrics
	for res := range atk.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, "gwbench") {
		m.Add(res)
		if ctx.Err() != nil {
			atk.Stop()
		}
	}
	m.Close()
	return &m, ctx.Err()
}

// mainGateway returns the URL of the main run's gateway, from its config.
func mainGateway(dir string) (string, error) {
	b, err := os.ReadFile(dir + "/main.yaml")
	if err != nil {
		return "", err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return "http://" + strings.TrimSpace(strings.TrimPrefix(first, "listen:")) + "/", nil
}

// pidOf finds the spillway process serving dir/name.yaml.
func pidOf(dir, name string) (int, error) {
	want := dir + "/" + name + ".yaml"
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if strings.Contains(string(cmdline), want) {
				return pid, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("no process serves %s", want)
}

// rssOf reads a process's resident set size in bytes.
func rssOf(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// gauge reads one unlabelled gauge from a Prometheus text exposition.
func gauge(u, name string) float64 {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

const failFastConfig = `listen: %s
admin:
  listen: %s
upstreams:
  app:
    instances: [http://%s]
    timeouts: {connect: 1s, attempt: 2s, total: 5s}
    breaker:
      window: {type: count, size: 100}
      min_calls: 20
      failure_rate: 50%%
      open_for: 5m
      max_open_for: 5m
    outlier: {consecutive_failures: 0}
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
`

const blackHoleConfig = `listen: %s
admin:
  listen: %s
upstreams:
  app:
    instances: [http://%s]
    timeouts: {connect: 1s, attempt: 1s, total: 2s}
    bulkhead: {max_concurrent: 100, max_waiting: 0, max_wait: 0s}
    outlier: {consecutive_failures: 0}
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
`
