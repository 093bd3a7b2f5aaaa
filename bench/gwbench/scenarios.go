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
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
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
	// The same answers at about half that rate, paced: the p99 of an
	// answer from memory when the machine is not saturated.
	ffConns, ffDelay := pacing(int(ff.rps / 2))
	ffHalf, err := paced(ctx, dir, "http://"+gw+"/", d, ffConns, ffDelay)
	if err != nil {
		return fmt.Errorf("fail-fast, paced: %w", err)
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
	fmt.Fprintf(out, "| spillway, breaker open, paced at about half that rate (wrk -c%d, %d ms between a connection's requests) | %.0f | %s (p50 %s) | - |\n",
		ffConns, ffDelay, ffHalf.rps, ffHalf.p99.Round(10*time.Microsecond), ffHalf.p50.Round(10*time.Microsecond))
	fmt.Fprintf(out, "| reverseproxy+pool (502 per refused dial) | %.0f | %s | %.2f× |\n", rpDead.rps, rpDead.p99.Round(10*time.Microsecond), rpDead.rps/med["upstream"])

	// 2. Latency added at half of the gateway's maximum rate, interleaved
	// rounds: a single pair is at the mercy of one GC or scheduling hiccup
	// on these 2 shared cores. The load is wrk paced by a Lua delay (each
	// connection waits between its requests), not a Go load generator in
	// this process: at this rate vegeta took a core of its own and
	// saturated the machine (p99 of seconds for every target).
	rate := int(med["spillway"] / 2)
	if rate > 0 {
		gwMain, err := mainGateway(dir)
		if err != nil {
			return err
		}
		// A pooled ReverseProxy at the same rate: what one bare Go hop adds.
		rpLat := freeAddr()
		if _, err := startCmd(self, "rproxy", rpLat, "http://"+up, "pool"); err != nil {
			return err
		}
		if err := waitAnswer(ctx, "http://"+rpLat+"/"); err != nil {
			return err
		}
		conns, delay := pacing(rate)
		fmt.Fprintf(out, "\nAbout %d req/s (half of spillway's median maximum) for %s: wrk -t2 -c%d, each connection waiting %d ms between its requests (closed loop), %d interleaved rounds\n\n",
			rate, d, conns, delay, latencyRounds)
		fmt.Fprintln(out, "| round | upstream req/s | upstream p50 | upstream p99 | reverseproxy+pool p50 | p99 | p99 added | spillway req/s | spillway p50 | spillway p99 | p99 added |")
		fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|")
		var added, rpAdded []float64
		for r := 1; r <= latencyRounds; r++ {
			direct, err := paced(ctx, dir, "http://"+up+"/", d, conns, delay)
			if err != nil {
				return err
			}
			hop, err := paced(ctx, dir, "http://"+rpLat+"/", d, conns, delay)
			if err != nil {
				return err
			}
			via, err := paced(ctx, dir, gwMain, d, conns, delay)
			if err != nil {
				return err
			}
			a, ra := via.p99-direct.p99, hop.p99-direct.p99
			added, rpAdded = append(added, float64(a)), append(rpAdded, float64(ra))
			us := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
			fmt.Fprintf(out, "| %d | %.0f | %s | %s | %s | %s | %s | %.0f | %s | %s | %s |\n", r, direct.rps, us(direct.p50), us(direct.p99),
				us(hop.p50), us(hop.p99), us(ra), via.rps, us(via.p50), us(via.p99), us(a))
		}
		fmt.Fprintf(out, "\nmedian p99 added: spillway %s, reverseproxy+pool %s\n",
			time.Duration(median(added)).Round(time.Microsecond), time.Duration(median(rpAdded)).Round(time.Microsecond))
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

// pacing returns the wrk connections and the delay (ms) between one
// connection's requests that make about rate requests per second.
func pacing(rate int) (conns, delayMS int) {
	conns = 128
	delayMS = max(1, (conns*1000+rate/2)/rate)
	return conns, delayMS
}

// pacedResult is a paced wrk run: its rate and latency percentiles.
type pacedResult struct {
	rps      float64
	p50, p99 time.Duration
}

var p50Re = regexp.MustCompile(`\s50%\s+([0-9.]+)(us|ms|s)`)

// paced runs wrk with a Lua delay of delayMS between the requests of each
// connection.
func paced(ctx context.Context, dir, u string, d time.Duration, conns, delayMS int) (pacedResult, error) {
	script := filepath.Join(dir, fmt.Sprintf("paced-%d.lua", delayMS))
	if err := os.WriteFile(script, []byte(fmt.Sprintf("function delay()\n  return %d\nend\n", delayMS)), 0o600); err != nil {
		return pacedResult{}, err
	}
	out, err := exec.CommandContext(ctx, "wrk", "-t2", "-c"+strconv.Itoa(conns), "-d"+d.String(), "--latency", "-s", script, u).CombinedOutput()
	if err != nil {
		return pacedResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	m, p5, p9 := rpsRe.FindSubmatch(out), p50Re.FindSubmatch(out), p99Re.FindSubmatch(out)
	if m == nil || p5 == nil || p9 == nil {
		return pacedResult{}, fmt.Errorf("cannot parse wrk output: %s", out)
	}
	dur := func(v, unit []byte) time.Duration {
		f, _ := strconv.ParseFloat(string(v), 64)
		return time.Duration(f * float64(map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(unit)]))
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	return pacedResult{rps: rps, p50: dur(p5[1], p5[2]), p99: dur(p9[1], p9[2])}, nil
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
