package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// routes is the -routes flag: when above 0, the run adds the targets
// "spillway-routes=1" and "spillway-routes=N", the gateway of "spillway"
// with 1 and with N routes (path_prefix /svc00000 …), wrk asking for the
// last route of each: the cost of routing at scale, interleaved in one run.
var routes int

// routePIDs are the processes of the routes targets, by target name, for
// their resident memory in the report.
var routePIDs = map[string]int{}

// routesConfig is spillwayConfig with n routes to the same upstream.
func routesConfig(n int) string {
	head, _, ok := strings.Cut(spillwayConfig, "routes:\n")
	if !ok {
		panic("spillwayConfig has no routes: section")
	}
	var b strings.Builder
	b.WriteString(head + "routes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%05d\n    match: {path_prefix: /svc%05d}\n    upstream: app\n", i, i)
	}
	return b.String()
}

// startRoutes starts the gateways of the routes targets.
func startRoutes(dir, bin, up string, startCmd func(string, ...string) (*exec.Cmd, error)) ([]target, error) {
	if routes < 2 {
		return nil, fmt.Errorf("-routes %d: want 2 or more (it runs against 1 route)", routes)
	}
	var ts []target
	for _, n := range []int{1, routes} {
		name := fmt.Sprintf("spillway-routes=%d", n)
		gw, admin := freeAddr(), freeAddr()
		cfg := fmt.Sprintf("%s/routes-%d.yaml", dir, n)
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(routesConfig(n), gw, admin, up)), 0o600); err != nil {
			return nil, err
		}
		cmd, err := startCmd(bin, "serve", "-c", cfg)
		if err != nil {
			return nil, err
		}
		routePIDs[name] = cmd.Process.Pid
		ts = append(ts, target{name: name, url: fmt.Sprintf("http://%s/svc%05d/items", gw, n-1)})
	}
	return ts, nil
}

var rssRe = regexp.MustCompile(`(?m)^(VmRSS|VmHWM):\s+(\d+) kB`)

// reportRoutes prints N routes against 1 and both gateways' memory.
func reportRoutes(w io.Writer, ratio func(a, b string) string, results map[string][]result) {
	one, many := "spillway-routes=1", fmt.Sprintf("spillway-routes=%d", routes)
	fmt.Fprintf(w, "\n%s vs %s (the request for the last route): %s (rounds: %s)\n", many, one, ratio(many, one),
		roundRatios(results[many], results[one]))
	for _, name := range []string{one, many} {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", routePIDs[name]))
		if err != nil {
			fmt.Fprintf(w, "%s: memory: %v\n", name, err)
			continue
		}
		var mem []string
		for _, m := range rssRe.FindAllStringSubmatch(string(status), -1) {
			mem = append(mem, fmt.Sprintf("%s %s kB", m[1], m[2]))
		}
		fmt.Fprintf(w, "%s after the run: %s\n", name, strings.Join(mem, ", "))
	}
}
