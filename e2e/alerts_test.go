package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/spillway-dev/spillway/internal/server"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// The alerts test runs the shipped rules (deploy/prometheus) in Debian's
// real Prometheus server, scraping a real gateway's admin /metrics, with
// Debian's Alertmanager receiving the alerts:
//
//	test client → gateway (server.Run) → upstream (httptest, closed mid-test)
//	Prometheus  → gateway admin /metrics; rules → Alertmanager
//
// scripts/test-deps.sh installs both servers (packages prometheus and
// prometheus-alertmanager).
const (
	prometheusBin   = "/usr/bin/prometheus"
	alertmanagerBin = "/usr/bin/prometheus-alertmanager"
	shippedRules    = "../deploy/prometheus/spillway-rules.yml"
)

// alertsGatewayConfig keeps the breaker open for the whole test once it
// trips: open_for is far longer than the test, two failed calls of a window
// of four trip it, and neither retries nor outlier ejection hide the
// failures from it.
const alertsGatewayConfig = `listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
upstreams:
  svc:
    instances: [%s]
    timeouts: {connect: 1s, attempt: 1s, total: 2s}
    retry: {max_attempts: 1}
    breaker:
      window: {type: count, size: 4}
      min_calls: 2
      failure_rate: 50%%
      open_for: 10m
      max_open_for: 10m
    outlier: {consecutive_failures: 0}
routes:
  - {name: api, upstream: svc}
`

// testFor is the `for:` of every alert in the rules the test loads: the
// shipped durations are minutes, too long for a test, and 3 s at a 1 s
// evaluation interval keeps an alert pending for a few evaluations, long
// enough for the test to see it pending before it fires.
const testFor = "3s"

// forClause matches a rule's `for:` line; shortenFor rewrites its duration.
var forClause = regexp.MustCompile(`(?m)^(\s+for:) \S+$`)

// shortenFor returns the shipped rules with every `for:` set to testFor,
// the only change the test makes to them (docs/alerting.md).
func shortenFor(t *testing.T, rules []byte) []byte {
	t.Helper()
	out := forClause.ReplaceAll(rules, []byte("${1} "+testFor))
	if n := len(forClause.FindAll(rules, -1)); n < 12 {
		t.Fatalf("shortenFor: %d for: clauses in %s, want one per alert rule", n, shippedRules)
	}
	return out
}

func TestAlertsBreakerOpenFiresInPrometheusAndReachesAlertmanager(t *testing.T) {
	requireBinary(t, prometheusBin, "prometheus")
	requireBinary(t, alertmanagerBin, "prometheus-alertmanager")
	rules, err := os.ReadFile(shippedRules)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rules.yml"), shortenFor(t, rules))

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer up.Close() // a no-op once the test closed it
	gwFile := filepath.Join(dir, "spillway.yaml")
	writeFile(t, gwFile, fmt.Appendf(nil, alertsGatewayConfig, up.URL))
	public, admin := serveGateway(t, gwFile)

	am := startServer(t, "alertmanager", alertmanagerBin, dir, func(addr string) []string {
		writeFile(t, filepath.Join(dir, "alertmanager.yml"), []byte(
			"route: {receiver: test, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\nreceivers: [{name: test}]\n"))
		return []string{"--config.file=" + filepath.Join(dir, "alertmanager.yml"),
			"--storage.path=" + filepath.Join(dir, "am-data"), "--web.listen-address=" + addr,
			"--cluster.listen-address="} // no gossip port: one Alertmanager, loopback only
	})
	prom := startServer(t, "prometheus", prometheusBin, dir, func(addr string) []string {
		writeFile(t, filepath.Join(dir, "prometheus.yml"), fmt.Appendf(nil, `global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yml]
alerting:
  alertmanagers: [{static_configs: [{targets: ['%s']}]}]
scrape_configs:
  - {job_name: spillway, static_configs: [{targets: ['%s']}]}
`, am.addr, admin))
		return []string{"--config.file=" + filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(dir, "prom-data"), "--web.listen-address=" + addr}
	})

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &client{Client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}

	// Healthy first: Prometheus scrapes the gateway and the breaker alert
	// is loaded and quiet.
	if resp, _, err := c.do(t, http.MethodGet, "http://"+public+"/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("through the healthy upstream: %v, want 200", err)
	}
	within(t, 20*time.Second, "Prometheus to scrape the gateway", func() bool {
		return promQueryHas(t, c.Client, prom.addr, `up{job="spillway"} == 1`)
	})
	if s := breakerAlertState(t, c.Client, prom.addr); s != "inactive" {
		t.Fatalf("SpillwayBreakerOpen is %q with the upstream up, want inactive", s)
	}

	// Take the upstream down and send calls until its breaker opens.
	up.Close()
	within(t, 10*time.Second, "the gateway's breaker to open", func() bool {
		_, _, _ = c.do(t, http.MethodGet, "http://"+public+"/") // fails: the upstream is down
		_, metrics, err := c.do(t, http.MethodGet, "http://"+admin+"/metrics")
		return err == nil && strings.Contains(string(metrics), `spillway_circuit_state{state="open",upstream="svc"} 1`)
	})

	seen := map[string]bool{}
	within(t, 20*time.Second, "SpillwayBreakerOpen to be pending, then firing", func() bool {
		s := breakerAlertState(t, c.Client, prom.addr)
		if s == "firing" && !seen["pending"] {
			t.Fatalf("SpillwayBreakerOpen fired without being seen pending first (for: %s)", testFor)
		}
		seen[s] = true
		return s == "firing"
	})

	within(t, 20*time.Second, "Alertmanager to receive SpillwayBreakerOpen", func() bool {
		return alertmanagerHas(t, c.Client, am.addr)
	})
}

// serveGateway runs server.Run on file until the test ends and returns
// its public and admin addresses.
func serveGateway(t *testing.T, file string) (public, admin string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, stopped := make(chan [2]string, 1), make(chan error, 1)
	var log spillwaytest.Buffer
	go func() {
		stopped <- server.Run(ctx, server.Options{File: file}, io.Discard, &log, nil,
			func(p, a string) { ready <- [2]string{p, a} })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case addrs := <-ready:
		return addrs[0], addrs[1]
	case err := <-stopped:
		stopped <- nil // for the cleanup
		t.Fatalf("serve stopped at once: %v\n%s", err, log.String())
	}
	return "", ""
}

// A proc is a server the test started; its log is shown when the test
// fails.
type proc struct {
	addr string
	log  spillwaytest.Buffer
}

// startServer starts bin on a free loopback port with the arguments args
// returns for that address, waits until its /-/ready answers 200 and stops
// it (kill, wait) when the test ends. A port taken between the pick and
// the bind (another test) is retried with a new one.
func startServer(t *testing.T, name, bin, dir string, args func(addr string) []string) *proc {
	t.Helper()
	for try := 0; ; try++ {
		p := &proc{addr: freeLoopbackAddr(t)}
		cmd := exec.Command(bin, args(p.addr)...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = &p.log, &p.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		err := waitReady(p.addr, exited)
		if err == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("%s's log:\n%s", name, p.log.String())
				}
			})
			return p
		}
		stop()
		if try < 2 && strings.Contains(p.log.String(), "address already in use") {
			continue
		}
		t.Fatalf("%s did not start: %v\n%s", name, err, p.log.String())
	}
}

// waitReady polls http://addr/-/ready until it answers 200, the process
// exits or 20 s pass.
func waitReady(addr string, exited <-chan error) error {
	client := &http.Client{Transport: &http.Transport{}, Timeout: time.Second}
	defer client.Transport.(*http.Transport).CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		case <-tick.C:
		}
		resp, err := client.Get("http://" + addr + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("not ready after 20s")
}

// freeLoopbackAddr returns a loopback address whose port the OS picked and
// that is free now (the server to start binds it next).
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// requireBinary skips the test when bin is absent, except in CI where
// scripts/test-deps.sh must have installed Debian's pkg.
func requireBinary(t *testing.T, bin, pkg string) {
	t.Helper()
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is absent in CI: scripts/test-deps.sh (make deps) installs Debian's %s", bin, pkg)
		}
		t.Skipf("%s is absent: run scripts/test-deps.sh to install Debian's %s (CI always runs this test)", bin, pkg)
	}
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// getJSON decodes the answer of GET u into v. (Not client.do: it sends a
// body, which Alertmanager's API refuses on a GET.)
func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %s: %v", u, resp.Status, err)
	}
}

// promQueryHas reports whether the instant query q returns a sample.
func promQueryHas(t *testing.T, c *http.Client, promAddr, q string) bool {
	t.Helper()
	var r struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	getJSON(t, c, "http://"+promAddr+"/api/v1/query?query="+url.QueryEscape(q), &r)
	return len(r.Data.Result) > 0
}

// breakerAlertState returns the state of the rule SpillwayBreakerOpen in
// Prometheus' rules API (inactive, pending, firing), after checking that a
// pending or firing alert is about upstream svc; "" while the rules are
// not loaded.
func breakerAlertState(t *testing.T, c *http.Client, promAddr string) string {
	t.Helper()
	var r struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name   string `json:"name"`
					State  string `json:"state"`
					Alerts []struct {
						Labels map[string]string `json:"labels"`
					} `json:"alerts"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	getJSON(t, c, "http://"+promAddr+"/api/v1/rules?type=alert", &r)
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			if rule.Name != "SpillwayBreakerOpen" {
				continue
			}
			for _, a := range rule.Alerts {
				if a.Labels["upstream"] != "svc" || a.Labels["severity"] != "critical" {
					t.Fatalf("SpillwayBreakerOpen %s with labels %v, want upstream svc, severity critical", rule.State, a.Labels)
				}
			}
			return rule.State
		}
	}
	return ""
}

// alertmanagerHas reports whether Alertmanager holds SpillwayBreakerOpen
// for upstream svc, with its runbook.
func alertmanagerHas(t *testing.T, c *http.Client, amAddr string) bool {
	t.Helper()
	var alerts []struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	}
	getJSON(t, c, "http://"+amAddr+"/api/v2/alerts?filter="+url.QueryEscape(`alertname="SpillwayBreakerOpen"`), &alerts)
	for _, a := range alerts {
		if a.Labels["upstream"] == "svc" && a.Labels["severity"] == "critical" &&
			a.Annotations["runbook_url"] == "https://github.com/spillway-dev/spillway/blob/main/docs/runbooks/breaker-open.md" {
			return true
		}
	}
	return false
}

// templated matches a template action that reads $labels or $value.
var templated = regexp.MustCompile(`\{\{[^}]*\$(labels|value)`)

// promRules is what the alerts tests read of a Prometheus rule file.
type promRules struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRulesEachTestedFiringAndQuiet checks that every alert of the
// shipped rules has a for: (which the Prometheus test shortens), a summary
// and a templated description, and that deploy/prometheus/tests holds a
// promtool case where it fires and one where it stays quiet; promtool
// itself runs them (make rules), checking each alert's labels and
// annotations, runbook_url included. (TestAlertRulesHaveRunbooks holds the
// alert names and severities to the runbooks.)
func TestAlertRulesEachTestedFiringAndQuiet(t *testing.T) {
	var rf promRules
	readYAML(t, shippedRules, &rf)
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if r.For == "" {
				t.Errorf("alert %s has no for: (the Prometheus test shortens every for:)", r.Alert)
			}
			if r.Annotations["summary"] == "" || !templated.MatchString(r.Annotations["description"]) {
				t.Errorf("alert %s: want a summary and a description templated from $labels or $value", r.Alert)
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("no alert in %s", shippedRules)
	}

	firing, quiet := map[string]bool{}, map[string]bool{}
	files, err := filepath.Glob("../deploy/prometheus/tests/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool test files: %v", err)
	}
	for _, f := range files {
		var tf struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string           `yaml:"alertname"`
					ExpAlerts []map[string]any `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		readYAML(t, f, &tf)
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) == 0 {
					quiet[a.Alertname] = true
				} else {
					firing[a.Alertname] = true
				}
			}
		}
	}
	for a := range alerts {
		if !firing[a] || !quiet[a] {
			t.Errorf("alert %s: promtool cases firing %v, quiet %v; want one of each", a, firing[a], quiet[a])
		}
	}
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestAlertRulesUseOnlyWhatTheGatewayExports parses every expression of
// the shipped rules with Prometheus' parser and checks each selector
// against what a running gateway exports (checkPromQL: series, labels and
// the values of enumerated labels), so that a renamed metric or a guessed
// value fails here rather than leaving an alert silent forever. A
// recording rule's series is known to the rules after it, with the labels
// its expression keeps.
func TestAlertRulesUseOnlyWhatTheGatewayExports(t *testing.T) {
	e := exportedMetrics(t)
	for name, s := range e.series {
		// Prometheus stores the gateway's own instance label (the
		// instance URL) as exported_instance, beside the target's.
		if s.labels["instance"] && name == "spillway_instance_healthy" {
			s.labels["exported_instance"] = true
		}
	}
	// The operator's SLO targets (slo-overrides.example.yml), per route.
	e.series["spillway:slo_target:override"] = series{family: "spillway:slo_target:override", labels: map[string]bool{"route": true}}
	var rf promRules
	readYAML(t, shippedRules, &rf)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			where := r.Alert + r.Record
			names := checkPromQL(t, where, r.Expr, e)
			if r.Record == "" {
				continue
			}
			e.series[r.Record] = series{family: r.Record, labels: keptLabels(t, r.Expr, names, e)}
		}
	}
}

// keptLabels are the labels of expr's result: its outer aggregation's
// grouping when it has one (with Prometheus' job and instance, which an
// aggregation by them keeps), else every label of the series it selects.
func keptLabels(t *testing.T, expr string, names []string, e exportedSet) map[string]bool {
	t.Helper()
	ast, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil // checkPromQL reported it
	}
	for {
		if p, ok := ast.(*parser.ParenExpr); ok {
			ast = p.Expr
			continue
		}
		break
	}
	kept := map[string]bool{}
	if a, ok := ast.(*parser.AggregateExpr); ok && !a.Without {
		for _, l := range a.Grouping {
			kept[l] = true
		}
		return kept
	}
	for _, n := range names {
		for l := range e.series[n].labels {
			kept[l] = true
		}
	}
	return kept
}
