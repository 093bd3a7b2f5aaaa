package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/e2e/grafanagen"
)

var update = flag.Bool("update", false, "write deploy/grafana/spillway.json from grafanagen")

const dashboardFile = "../deploy/grafana/spillway.json"

// TestGrafanaDashboardIsGenerated holds the committed dashboard to its
// generator: an edit of one without the other fails here. -update writes
// the file.
func TestGrafanaDashboardIsGenerated(t *testing.T) {
	want, err := grafanagen.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(dashboardFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not grafanagen's output: run `go test -run TestGrafanaDashboardIsGenerated -update` in e2e/", dashboardFile)
	}
}

// grafanaDashboard is what the test reads of the dashboard JSON.
type grafanaDashboard struct {
	Panels []struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Links []struct {
			URL string `json:"url"`
		} `json:"links"`
	} `json:"panels"`
	Links []struct {
		URL string `json:"url"`
	} `json:"links"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// grafanaVars are the values the test puts for the dashboard's variables
// before parsing a query, as Grafana interpolates them.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$upstream", "catalog|recs", "$route", ".*", "$job", "spillway")

// TestGrafanaDashboardQueries checks the dashboard against the gateway:
// every query parses as PromQL and names only metrics and labels the
// gateway exports, every metric family the gateway exports has a panel,
// the breaker state is a state timeline, the variables read labels that
// exist, and every runbook is linked.
func TestGrafanaDashboardQueries(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	exported := exportedMetrics(t)
	shown := map[string]bool{}
	timeline := false
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range checkPromQL(t, "panel "+p.Title, grafanaVars.Replace(tg.Expr), exported) {
				shown[exported.family(name)] = true
				if name == "spillway_circuit_state" && p.Type == "state-timeline" {
					timeline = true
				}
			}
		}
	}
	for _, family := range exported.families {
		if !shown[family] {
			t.Errorf("metric family %s has no panel on the dashboard", family)
		}
	}
	if !timeline {
		t.Error("no state-timeline panel shows spillway_circuit_state")
	}
	for _, v := range d.Templating.List {
		if v.Name == "datasource" {
			continue
		}
		if v.Definition == "" {
			t.Errorf("variable %s has no label_values query", v.Name)
			continue
		}
		// label_values(METRIC, LABEL): the metric exported with that label,
		// or the target label job.
		metric, label, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(v.Definition, "label_values("), ")"), ", ")
		if s, ok := exported.series[metric]; !ok || !s.labels[label] {
			t.Errorf("variable %s: %s: the gateway exports no %s with label %s", v.Name, v.Definition, metric, label)
		}
	}
	var urls []string
	for _, l := range d.Links {
		urls = append(urls, l.URL)
	}
	for _, name := range runbookFiles() {
		if !slices.Contains(urls, runbookURL(name)) {
			t.Errorf("the dashboard does not link to %s", runbookURL(name))
		}
	}
}
