package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runPaired is -scenario paired: the pooled ReverseProxy and spillway
// (spillwayConfig, every policy on) served at once, each in front of an
// upstream of its own and loaded by a wrk of its own (-t1, half the
// connections each) at the same time, round after round. Each proxy's CPU
// time per request comes from /proc (utime+stime) across the round. Both
// share the same moments of the machine, so what the host does to one
// (another tenant, a frequency change) it does to the other: the ratio of
// the two CPU costs is steadier than the ratio of throughputs measured one
// after the other, which the default run reports.
func runPaired(ctx context.Context, repo string, rounds int, d time.Duration, conns int) error {
	dir, err := os.MkdirTemp("", "gwbench-paired")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := buildSpillway(ctx, repo, dir)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}()
	start := func(name string, args ...string) (*exec.Cmd, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		procs = append(procs, cmd)
		return cmd, nil
	}
	upRP, upSW := freeAddr(), freeAddr()
	for _, up := range []string{upRP, upSW} {
		if _, err := start(self, "upstream", up); err != nil {
			return err
		}
	}
	rpAddr := freeAddr()
	rp, err := start(self, "rproxy", rpAddr, "http://"+upRP, "pool")
	if err != nil {
		return err
	}
	gw, admin := freeAddr(), freeAddr()
	cfg := filepath.Join(dir, "spillway.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(spillwayConfig, gw, admin, upSW)), 0o600); err != nil {
		return err
	}
	sw, err := start(bin, "serve", "-c", cfg)
	if err != nil {
		return err
	}
	pair := [2]struct {
		name string
		url  string
		pid  int
	}{{"reverseproxy+pool", "http://" + rpAddr + "/", rp.Process.Pid}, {"spillway", "http://" + gw + "/", sw.Process.Pid}}
	for _, p := range pair {
		if err := waitReady(ctx, p.url); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	half := max(conns/2, 1)
	var costs, rates []float64
	fmt.Printf("paired: the two proxies at once, wrk -t1 -c%d -d%s each, CPU per request from /proc\n\n", half, d)
	fmt.Println("| round | reverseproxy+pool req/s | µs CPU/req | spillway req/s | µs CPU/req | CPU cost ratio | req/s ratio |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for r := 1; r <= rounds; r++ {
		var cpu0 [2]time.Duration
		for i, p := range pair {
			if cpu0[i], err = procCPU(p.pid); err != nil {
				return err
			}
		}
		var res [2]result
		var errs [2]error
		var wg sync.WaitGroup
		for i, p := range pair {
			wg.Go(func() { res[i], errs[i] = wrk1(ctx, p.url, d, half) })
		}
		wg.Wait()
		var per [2]float64
		for i, p := range pair {
			if errs[i] != nil {
				return fmt.Errorf("%s: %w", p.name, errs[i])
			}
			cpu1, err := procCPU(p.pid)
			if err != nil {
				return err
			}
			per[i] = float64(cpu1-cpu0[i]) / float64(time.Microsecond) / (res[i].rps * d.Seconds())
		}
		costs, rates = append(costs, per[1]/per[0]), append(rates, res[1].rps/res[0].rps)
		fmt.Printf("| %d | %.0f | %.1f | %.0f | %.1f | %.3f | %.3f |\n", r, res[0].rps, per[0], res[1].rps, per[1], per[1]/per[0], res[1].rps/res[0].rps)
	}
	fmt.Printf("\nmedians: spillway's CPU per request %.3f× the pooled ReverseProxy's (so %.3f× its requests per CPU second); requests/s %.3f×\n",
		median(costs), 1/median(costs), median(rates))
	return nil
}

// wrk1 is wrk with one thread: two of them share the two cores with the
// proxies and the upstreams.
func wrk1(ctx context.Context, u string, d time.Duration, conns int) (result, error) {
	out, err := exec.CommandContext(ctx, "wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+d.String(), "--latency", u).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	m := rpsRe.FindSubmatch(out)
	if m == nil {
		return result{}, fmt.Errorf("cannot parse wrk output: %s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	return result{rps: rps}, nil
}

// procCPU is the user and system CPU time process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are fields 14 and 15 of the line.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	// Clock ticks: 100 per second on Linux (USER_HZ).
	return time.Duration(ut+st) * (time.Second / 100), nil
}
