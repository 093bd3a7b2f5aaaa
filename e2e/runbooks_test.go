package e2e

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/queue"
)

// alertRunbooks are issue 14's alerts and their runbooks
// (docs/runbooks/<file>.md): the alert rules, the runbooks and the
// dashboard's links share them.
var alertRunbooks = map[string]string{
	"SpillwayBreakerOpen":          "breaker-open",
	"SpillwayBreakerFlapping":      "breaker-flapping",
	"SpillwayErrorBudgetBurn":      "error-budget-burn",
	"SpillwayTimeoutsRising":       "timeouts-rising",
	"SpillwayRetryBudgetExhausted": "retry-budget-exhausted",
	"SpillwayBulkheadSaturated":    "bulkhead-saturated",
	"SpillwayFallbacksHigh":        "fallbacks-high",
	"SpillwayNoHealthyInstance":    "no-healthy-instance",
	"SpillwayQueueBacklogGrowing":  "queue-backlog-growing",
	"SpillwayDeadLetters":          "dead-letters",
	"SpillwayOldestJobTooOld":      "oldest-job-too-old",
	"SpillwayGatewayDown":          "gateway-down",
}

const runbookDir = "../docs/runbooks"

// runbookFiles are the runbooks' file names without .md, sorted.
func runbookFiles() []string {
	var files []string
	for _, f := range alertRunbooks {
		files = append(files, f)
	}
	slices.Sort(files)
	return files
}

func runbookURL(file string) string {
	return "https://github.com/spillway-dev/spillway/blob/main/docs/runbooks/" + file + ".md"
}

// series is what a query may select of one series name.
type series struct {
	family string          // the metric family (a histogram's, for its _bucket, _sum, _count)
	labels map[string]bool // the labels the series carries, the scrape's job and instance included
}

// exportedSet is what the gateway exports: its families and the series
// names a query may select, up (the scrape's own series) included.
type exportedSet struct {
	families []string
	series   map[string]series
}

func (e exportedSet) family(name string) string { return e.series[name].family }

// descRE reads a Desc's name and variable labels from its String: the
// client library exports no accessor.
var descRE = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// exportedMetrics starts a gateway, serves it one request (so that its
// histograms are gathered and known to be histograms) and reads every
// metric its registry describes: the set the runbooks' and the dashboard's
// queries may name.
func exportedMetrics(t *testing.T) exportedSet {
	t.Helper()
	refused := httptest.NewServer(http.NotFoundHandler())
	refused.Close() // a port nothing listens on: the attempt fails at once
	yml := "upstreams:\n  svc:\n    instances: [" + refused.URL + "]\n    retry: {max_attempts: 1}\n" +
		"routes:\n  - name: svc\n    match: {path_prefix: /}\n    upstream: svc\n"
	cfg, _, err := config.Parse("gateway.yaml", []byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))

	mfs, err := g.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	histogram := map[string]bool{}
	for _, mf := range mfs {
		histogram[mf.GetName()] = mf.GetType() == dto.MetricType_HISTOGRAM
	}
	for _, h := range []string{"spillway_request_duration_seconds", "spillway_upstream_attempt_duration_seconds"} {
		if !histogram[h] {
			t.Fatalf("%s was not gathered as a histogram after a request", h)
		}
	}
	ch := make(chan *prometheus.Desc)
	go func() { g.Registry().Describe(ch); close(ch) }()
	e := exportedSet{series: map[string]series{
		"up": {family: "up", labels: map[string]bool{"job": true, "instance": true}},
	}}
	for d := range ch {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the metric descriptor %s", d)
		}
		name, labels := m[1], map[string]bool{"job": true, "instance": true}
		for _, l := range strings.Split(m[2], ",") {
			if l != "" {
				labels[l] = true
			}
		}
		e.families = append(e.families, name)
		if !histogram[name] {
			e.series[name] = series{family: name, labels: labels}
			continue
		}
		for _, suffix := range []string{"_sum", "_count"} {
			e.series[name+suffix] = series{family: name, labels: labels}
		}
		bucket := map[string]bool{"le": true}
		for l := range labels {
			bucket[l] = true
		}
		e.series[name+"_bucket"] = series{family: name, labels: bucket}
	}
	return e
}

// labelValues are the fixed sets of values of the gateway's enumerated
// labels, by series and label (gateway/metrics.go, gateway/async): a query
// matching a value outside them selects nothing, silently.
var labelValues = func() map[string]map[string][]string {
	var states []string
	for _, s := range []breaker.State{breaker.Closed, breaker.Open, breaker.HalfOpen, breaker.ForcedOpen, breaker.Disabled, breaker.MetricsOnly} {
		states = append(states, s.String())
	}
	var reasons []string
	for _, r := range []spillway.Reason{spillway.ReasonBreakerOpen, spillway.ReasonBulkheadFull, spillway.ReasonBudgetExhausted,
		spillway.ReasonNoHealthyInstance, spillway.ReasonThrottled} {
		reasons = append(reasons, string(r))
	}
	return map[string]map[string][]string{
		"spillway_requests_total":            {"outcome": {"success", "upstream_5xx", "fallback", "error", "no_route", "canceled", "accepted"}},
		"spillway_upstream_attempts_total":   {"result": {"success", "status_failure", "connect_failure", "timeout", "reset", "canceled", "error"}},
		"spillway_rejected_total":            {"reason": reasons},
		"spillway_circuit_state":             {"state": states},
		"spillway_circuit_transitions_total": {"from": states, "to": states},
		"spillway_fallback_total": {"kind": {gateway.FallbackReplica, gateway.FallbackStaleCache, gateway.FallbackStatic,
			gateway.FallbackDefault}},
		"spillway_faults_injected_total":  {"kind": {gateway.FaultDelay, gateway.FaultAbort}},
		"spillway_queue_deliveries_total": {"result": {"delivered", "failed", "rejected", "dead", "paused"}},
		"spillway_queue_store_replicas":   {"state": {queue.ReplicaCurrent, queue.ReplicaLagging, queue.ReplicaOffline}},
	}
}()

// literalAlternation is a regular expression that is only names joined
// by |: its names can be checked one by one.
var literalAlternation = regexp.MustCompile(`^[a-z0-9_-]+(\|[a-z0-9_-]+)*$`)

// checkValue reports a matcher of an enumerated label whose value (or one
// of the names of its alternation) is not one the gateway exports.
func checkValue(t *testing.T, where, expr, name string, m *labels.Matcher) {
	t.Helper()
	allowed, ok := labelValues[name][m.Name]
	if !ok {
		return
	}
	values := []string{m.Value}
	if m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp {
		if !literalAlternation.MatchString(m.Value) {
			return
		}
		values = strings.Split(m.Value, "|")
	}
	for _, v := range values {
		if !slices.Contains(allowed, v) {
			t.Errorf("%s: %q: %s{%s} is never %q (the gateway exports %v)", where, expr, name, m.Name, v, allowed)
		}
	}
}

// checkPromQL parses expr and checks that each selector names a series
// the gateway exports, with its labels only, and that every label a
// grouping or a vector matching names is one of theirs. It returns the
// series names.
func checkPromQL(t *testing.T, where, expr string, e exportedSet) []string {
	t.Helper()
	ast, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var names []string
	selectors := 0
	known := map[string]bool{}
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		selectors++
		s, ok := e.series[vs.Name]
		if !ok {
			t.Errorf("%s: %q selects %q, which the gateway does not export", where, expr, vs.Name)
			return nil
		}
		names = append(names, vs.Name)
		for _, m := range vs.LabelMatchers {
			known[m.Name] = true
			if m.Name != "__name__" && !s.labels[m.Name] {
				t.Errorf("%s: %q: %s has no label %q", where, expr, vs.Name, m.Name)
			}
			checkValue(t, where, expr, vs.Name, m)
		}
		for l := range s.labels {
			known[l] = true
		}
		return nil
	})
	if selectors == 0 {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		var used []string
		switch n := n.(type) {
		case *parser.AggregateExpr:
			used = n.Grouping
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				used = append(slices.Clone(n.VectorMatching.MatchingLabels), n.VectorMatching.Include...)
			}
		}
		for _, l := range used {
			if !known[l] {
				t.Errorf("%s: %q groups or matches by %q, a label none of its series has", where, expr, l)
			}
		}
		return nil
	})
	return names
}

// TestRunbooksCoverAlerts checks docs/runbooks against the alerts: one
// runbook per alert, named in its title, linking back to the index, the
// index linking to each; no runbook without an alert.
func TestRunbooksCoverAlerts(t *testing.T) {
	index, err := os.ReadFile(filepath.Join(runbookDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for alert, file := range alertRunbooks {
		b, err := os.ReadFile(filepath.Join(runbookDir, file+".md"))
		if err != nil {
			t.Errorf("alert %s has no runbook: %v", alert, err)
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if !strings.HasPrefix(first, "# "+alert) {
			t.Errorf("%s.md: the title is %q, want it to start with # %s", file, first, alert)
		}
		if !strings.Contains(string(b), "](README.md)") {
			t.Errorf("%s.md does not link back to the index (README.md)", file)
		}
		if !strings.Contains(string(index), "]("+file+".md)") {
			t.Errorf("docs/runbooks/README.md does not link to %s.md", file)
		}
	}
	entries, err := os.ReadDir(runbookDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".md")
		if name != "README" && !slices.Contains(runbookFiles(), name) {
			t.Errorf("docs/runbooks/%s is no alert's runbook", e.Name())
		}
	}
}

// mdLink is a Markdown link's target, without its #fragment.
var mdLink = regexp.MustCompile(`\]\(([^)#\s]*)(?:#[^)]*)?\)`)

// TestRunbookLinksResolve checks the relative links of the runbooks, the
// failure scenarios and the Grafana guide: each names a file or directory
// of the repository (deploy/prometheus, written with the alert rules, may
// be missing until they land).
func TestRunbookLinksResolve(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(runbookDir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../docs/failure-scenarios.md", "../docs/grafana.md")
	_, rulesErr := os.Stat("../deploy/prometheus")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if target == "" || strings.Contains(target, "://") {
				continue
			}
			path := filepath.Join(filepath.Dir(f), target)
			if os.IsNotExist(rulesErr) && strings.HasPrefix(filepath.ToSlash(path), "../deploy/prometheus") {
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, target)
			}
		}
	}
}

// promqlFence is a ```promql block of a Markdown file.
var promqlFence = regexp.MustCompile("(?s)```promql\n(.*?)```")

// TestRunbooksPromQL parses every PromQL block of the runbooks and of
// docs/failure-scenarios.md: each block is one query, and names only what
// the gateway exports.
func TestRunbooksPromQL(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(runbookDir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../docs/failure-scenarios.md")
	e := exportedMetrics(t)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blocks := promqlFence.FindAllStringSubmatch(string(b), -1)
		if len(blocks) == 0 && !strings.HasSuffix(f, "README.md") {
			t.Errorf("%s has no ```promql block", f)
		}
		for _, m := range blocks {
			checkPromQL(t, filepath.Base(f), m[1], e)
		}
	}
}

// ruleFile is what the test reads of a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRulesHaveRunbooks holds the alert rules of deploy/prometheus
// (every rule file but the promtool tests) to the runbooks: every alert
// has a runbook, its runbook_url, and a severity; every runbook an alert.
// It skips only while deploy/prometheus does not exist.
func TestAlertRulesHaveRunbooks(t *testing.T) {
	const dir = "../deploy/prometheus"
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		t.Skip("deploy/prometheus does not exist yet: no alert rule to check")
	}
	seen := map[string]bool{}
	severities := map[string][]string{} // by alert, as the rules set them
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yml") || strings.HasSuffix(path, ".yaml")) ||
			slices.Contains(strings.Split(filepath.ToSlash(path), "/"), "tests") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var rf ruleFile
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue // a recording rule
				}
				seen[r.Alert] = true
				file, ok := alertRunbooks[r.Alert]
				if !ok {
					t.Errorf("%s: alert %s has no runbook (docs/runbooks)", path, r.Alert)
					continue
				}
				if got := r.Annotations["runbook_url"]; got != runbookURL(file) {
					t.Errorf("%s: alert %s: runbook_url %q, want %q", path, r.Alert, got, runbookURL(file))
				}
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("%s: alert %s: severity %q, want critical or warning", path, r.Alert, s)
				} else if !slices.Contains(severities[r.Alert], s) {
					severities[r.Alert] = append(severities[r.Alert], s)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for alert, file := range alertRunbooks {
		if !seen[alert] {
			t.Errorf("runbook %s.md has no alert: no rule under deploy/prometheus is alert %s", file, alert)
		}
	}
	checkIndexSeverities(t, severities)
}

// indexRow is a row of the runbooks' index: the alert and its severity
// cell.
var indexRow = regexp.MustCompile("(?m)^\\| `(Spillway\\w+)` \\| ([^|]*) \\|")

// checkIndexSeverities holds the severities the index gives each alert to
// the rules'.
func checkIndexSeverities(t *testing.T, rules map[string][]string) {
	t.Helper()
	index, err := os.ReadFile(filepath.Join(runbookDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := indexRow.FindAllStringSubmatch(string(index), -1)
	if len(rows) != len(alertRunbooks) {
		t.Errorf("docs/runbooks/README.md has %d alert rows, want %d", len(rows), len(alertRunbooks))
	}
	for _, m := range rows {
		var doc []string
		for _, s := range []string{"critical", "warning"} {
			if strings.Contains(m[2], s) {
				doc = append(doc, s)
			}
		}
		want := slices.Sorted(slices.Values(rules[m[1]]))
		if !slices.Equal(doc, want) {
			t.Errorf("docs/runbooks/README.md gives %s the severity %v, the rules %v", m[1], doc, want)
		}
	}
}
