// Package grafanagen builds Spillway's Grafana dashboard,
// deploy/grafana/spillway.json, with grafana-foundation-sdk: a panel for
// every metric family the gateway exports, filtered by the upstream and
// route variables, the breakers' states as a state timeline, and links to
// the runbooks. The e2e test TestGrafanaDashboardIsGenerated holds the
// committed file to JSON(); `go test -run TestGrafanaDashboardIsGenerated
// -update` in e2e/ writes it again.
package grafanagen

import (
	"encoding/json"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// RunbookBase is where the runbooks live, the runbook_url of the alert
// rules without the file.
const RunbookBase = "https://github.com/spillway-dev/spillway/blob/main/docs/runbooks/"

// The selectors the queries share: the variables hold regular
// expressions (All is .*).
const (
	up = `upstream=~"$upstream"`
	rt = `route=~"$route"`
)

// ds is the Prometheus data source the dashboard's variable picks.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// query is one Prometheus target of a panel.
type query struct{ expr, legend string }

// panel is one time series panel: its title, unit, queries and the
// runbooks it links to.
type panel struct {
	title, desc, unit string
	queries           []query
	runbooks          []string
}

// rows are the dashboard's rows, top to bottom, each with its panels.
var rows = []struct {
	title  string
	panels []panel
}{
	{"Routes ($route)", []panel{
		{"Requests by outcome", "spillway_requests_total: answers per second by outcome (success, upstream_5xx, fallback, error, no_route, canceled, accepted).", "reqps",
			[]query{{`sum by (route, outcome) (rate(spillway_requests_total{` + rt + `}[$__rate_interval]))`, "{{route}} {{outcome}}"}}, []string{"error-budget-burn"}},
		{"Availability", "Share of requests not answered with an error by the gateway nor a 5xx passed through (fallbacks count as available).", "percentunit",
			[]query{{`1 - sum by (route) (rate(spillway_requests_total{` + rt + `,outcome=~"error|upstream_5xx"}[$__rate_interval])) / sum by (route) (rate(spillway_requests_total{` + rt + `}[$__rate_interval]))`, "{{route}}"}}, []string{"error-budget-burn"}},
		{"Request latency p50 / p99", "spillway_request_duration_seconds: from a request's arrival to the end of its answer.", "s",
			[]query{
				{`histogram_quantile(0.5, sum by (route, le) (rate(spillway_request_duration_seconds_bucket{` + rt + `}[$__rate_interval])))`, "p50 {{route}}"},
				{`histogram_quantile(0.99, sum by (route, le) (rate(spillway_request_duration_seconds_bucket{` + rt + `}[$__rate_interval])))`, "p99 {{route}}"},
				{`sum by (route) (rate(spillway_request_duration_seconds_sum{` + rt + `}[$__rate_interval])) / sum by (route) (rate(spillway_request_duration_seconds_count{` + rt + `}[$__rate_interval]))`, "mean {{route}}"},
			}, []string{"timeouts-rising"}},
		{"Fallbacks by kind", "spillway_fallback_total: degraded answers per second (replica, stale-cache, static, default).", "reqps",
			[]query{{`sum by (route, kind) (rate(spillway_fallback_total{` + rt + `}[$__rate_interval]))`, "{{route}} {{kind}}"}}, []string{"fallbacks-high"}},
		{"Faults injected", "spillway_faults_injected_total: faults the gateway injected (delay, abort); anything here in production is a drill or a forgotten fault.", "reqps",
			[]query{{`sum by (route, kind) (rate(spillway_faults_injected_total{` + rt + `}[$__rate_interval]))`, "{{route}} {{kind}}"}}, nil},
		{"Stale cache", "spillway_cache_entries and spillway_cache_bytes: what a route's stale cache holds.", "short",
			[]query{
				{`spillway_cache_entries{` + rt + `}`, "entries {{route}}"},
				{`spillway_cache_bytes{` + rt + `}`, "bytes {{route}}"},
			}, []string{"fallbacks-high"}},
	}},
	{"Breakers ($upstream)", []panel{
		{"Breaker failure rate", "spillway_circuit_failure_rate: the failure rate of the calls in the breaker's window (it trips at breaker.failure_rate, 50 % by default).", "percentunit",
			[]query{{`spillway_circuit_failure_rate{` + up + `}`, "{{upstream}}"}}, []string{"breaker-open"}},
		{"Breaker transitions", "spillway_circuit_transitions_total: state changes per second, by target state.", "ops",
			[]query{{`sum by (upstream, to) (rate(spillway_circuit_transitions_total{` + up + `}[$__rate_interval]))`, "{{upstream}} → {{to}}"}}, []string{"breaker-flapping"}},
	}},
	{"Upstream attempts ($upstream)", []panel{
		{"Attempts by result", "spillway_upstream_attempts_total: attempts sent to the instances (success, status_failure, connect_failure, timeout, reset, canceled, error).", "reqps",
			[]query{{`sum by (upstream, result) (rate(spillway_upstream_attempts_total{` + up + `}[$__rate_interval]))`, "{{upstream}} {{result}}"}}, []string{"timeouts-rising"}},
		{"Attempt latency p50 / p99", "spillway_upstream_attempt_duration_seconds: one attempt up to its response headers.", "s",
			[]query{
				{`histogram_quantile(0.5, sum by (upstream, le) (rate(spillway_upstream_attempt_duration_seconds_bucket{` + up + `}[$__rate_interval])))`, "p50 {{upstream}}"},
				{`histogram_quantile(0.99, sum by (upstream, le) (rate(spillway_upstream_attempt_duration_seconds_bucket{` + up + `}[$__rate_interval])))`, "p99 {{upstream}}"},
				{`sum by (upstream) (rate(spillway_upstream_attempt_duration_seconds_sum{` + up + `}[$__rate_interval])) / sum by (upstream) (rate(spillway_upstream_attempt_duration_seconds_count{` + up + `}[$__rate_interval]))`, "mean {{upstream}}"},
			}, []string{"timeouts-rising"}},
		{"Retries", "spillway_retries_total: retries scheduled per second.", "ops",
			[]query{{`sum by (upstream) (rate(spillway_retries_total{` + up + `}[$__rate_interval]))`, "{{upstream}}"}}, []string{"retry-budget-exhausted"}},
		{"Retry budget remaining", "spillway_retry_budget_remaining: retries the budget allows now (0: retries are refused as budget_exhausted).", "short",
			[]query{{`spillway_retry_budget_remaining{` + up + `}`, "{{upstream}}"}}, []string{"retry-budget-exhausted"}},
		{"Local rejections by reason", "spillway_rejected_total: calls refused by the gateway itself (breaker_open, bulkhead_full, budget_exhausted, no_healthy_instance, throttled).", "reqps",
			[]query{{`sum by (upstream, reason) (rate(spillway_rejected_total{` + up + `}[$__rate_interval]))`, "{{upstream}} {{reason}}"}}, []string{"breaker-open", "bulkhead-saturated", "retry-budget-exhausted", "no-healthy-instance"}},
	}},
	{"Bulkheads and instances ($upstream)", []panel{
		{"Bulkhead in flight / limit", "spillway_bulkhead_in_flight against spillway_bulkhead_limit.", "short",
			[]query{
				{`spillway_bulkhead_in_flight{` + up + `}`, "in flight {{upstream}}"},
				{`spillway_bulkhead_limit{` + up + `}`, "limit {{upstream}}"},
			}, []string{"bulkhead-saturated"}},
		{"Healthy instances", "spillway_instance_healthy summed per upstream (1 per instance that passes its health checks and is not ejected).", "short",
			[]query{{`sum by (upstream) (spillway_instance_healthy{` + up + `})`, "{{upstream}}"}}, []string{"no-healthy-instance"}},
		{"Instances ejected by outlier detection", "spillway_outlier_ejections_active.", "short",
			[]query{{`spillway_outlier_ejections_active{` + up + `}`, "{{upstream}}"}}, []string{"no-healthy-instance"}},
		{"Requests shed by priority", "spillway_shed_total: requests an upstream with shed: refused by class (sheddable, default) under its bulkhead's pressure; each is also a bulkhead_full rejection.", "reqps",
			[]query{{`sum by (upstream, priority) (rate(spillway_shed_total{` + up + `}[$__rate_interval]))`, "{{upstream}} {{priority}}"}}, []string{"bulkhead-saturated"}},
		{"Slow start", "spillway_circuit_slow_start_share (the share of calls a breaker that has just closed admits) and the lowest spillway_instance_weight (a returning instance's share of the picks); 1 when nothing ramps (slow_start:).", "percentunit",
			[]query{
				{`spillway_circuit_slow_start_share{` + up + `}`, "breaker {{upstream}}"},
				{`min by (upstream) (spillway_instance_weight{` + up + `})`, "lowest instance weight {{upstream}}"},
			}, nil},
	}},
	{"Overload protection", []panel{
		{"Client-side throttle", "spillway_throttle_rejection_probability: the probability with which an upstream with throttle: refuses a request now (refusals count in spillway_rejected_total{reason=\"throttled\"}).", "percentunit",
			[]query{{`spillway_throttle_rejection_probability{` + up + `}`, "{{upstream}}"}}, nil},
		{"Hedges", "spillway_hedges_total: hedges of an upstream's slow attempts sent, and won (answered first).", "ops",
			[]query{{`sum by (upstream, outcome) (rate(spillway_hedges_total{` + up + `}[$__rate_interval]))`, "{{upstream}} {{outcome}}"}}, nil},
		{"Rate-limit keys", "spillway_rate_limit_keys: the client keys whose bucket a route holds in this process (at most rate_limit.max_keys).", "short",
			[]query{{`spillway_rate_limit_keys{` + rt + `}`, "{{route}}"}}, nil},
		{"Shared rate limits", "spillway_rate_limit_shared (1: shared through NATS, 0: this replica's local share), spillway_rate_limit_shared_replicas, and spillway_rate_limit_shared_fallbacks_total.", "short",
			[]query{
				{`spillway_rate_limit_shared{` + rt + `}`, "shared {{route}}"},
				{`spillway_rate_limit_shared_replicas{` + rt + `}`, "replicas {{route}}"},
				{`sum by (route) (increase(spillway_rate_limit_shared_fallbacks_total{` + rt + `}[$__rate_interval]))`, "fallbacks {{route}}"},
			}, nil},
	}},
	{"Async queues ($route)", []panel{
		{"Pending jobs", "spillway_queue_pending: jobs stored and not yet delivered.", "short",
			[]query{{`spillway_queue_pending{` + rt + `}`, "{{route}}"}}, []string{"queue-backlog-growing"}},
		{"Oldest pending job", "spillway_queue_oldest_pending_age_seconds.", "s",
			[]query{{`spillway_queue_oldest_pending_age_seconds{` + rt + `}`, "{{route}}"}}, []string{"oldest-job-too-old"}},
		{"Deliveries by result", "spillway_queue_deliveries_total: delivery attempts (delivered, failed, rejected, dead, paused).", "ops",
			[]query{{`sum by (route, result) (rate(spillway_queue_deliveries_total{` + rt + `}[$__rate_interval]))`, "{{route}} {{result}}"}}, []string{"queue-backlog-growing", "dead-letters"}},
		{"Dead letters", "spillway_queue_dead_letters held, and spillway_queue_dead_letters_dropped_total (dropped to stay within queue.dead_letters).", "short",
			[]query{
				{`spillway_queue_dead_letters{` + rt + `}`, "held {{route}}"},
				{`sum by (route) (increase(spillway_queue_dead_letters_dropped_total{` + rt + `}[$__rate_interval]))`, "dropped {{route}}"},
			}, []string{"dead-letters"}},
	}},
	{"Queue store", []panel{
		{"Store connection", "spillway_queue_store_connected (1: up) and spillway_queue_store_reconnects_total.", "short",
			[]query{
				{`spillway_queue_store_connected`, "connected {{instance}}"},
				{`increase(spillway_queue_store_reconnects_total[$__rate_interval])`, "reconnects {{instance}}"},
			}, []string{"queue-backlog-growing"}},
		{"Stream leader and replicas", "spillway_queue_store_leader (1: a leader is known) and spillway_queue_store_replicas by state.", "short",
			[]query{
				{`spillway_queue_store_leader`, "leader {{stream}}"},
				{`sum by (stream, state) (spillway_queue_store_replicas)`, "{{stream}} {{state}}"},
			}, []string{"queue-backlog-growing"}},
		{"Replica lag", "spillway_queue_store_replica_lag (operations behind the leader) and spillway_queue_store_replica_last_seen_seconds.", "short",
			[]query{
				{`spillway_queue_store_replica_lag`, "lag {{stream}} {{replica}}"},
				{`spillway_queue_store_replica_last_seen_seconds`, "last seen (s) {{stream}} {{replica}}"},
			}, []string{"queue-backlog-growing"}},
	}},
}

// Runbooks are the runbook files (docs/runbooks/<file>.md), in the order
// of the dashboard's links.
var Runbooks = []string{"breaker-open", "breaker-flapping", "error-budget-burn", "timeouts-rising",
	"retry-budget-exhausted", "bulkhead-saturated", "fallbacks-high", "no-healthy-instance",
	"queue-backlog-growing", "dead-letters", "oldest-job-too-old", "gateway-down"}

// JSON returns the dashboard as Grafana imports it.
func JSON() ([]byte, error) {
	b := dashboard.NewDashboardBuilder("Spillway").
		Uid("spillway").
		Description("Spillway gateway: routes, breakers, upstream attempts, bulkheads, instances, async queues. Generated by e2e/grafanagen; see docs/grafana.md.").
		Tags([]string{"spillway"}).
		Refresh("30s").
		Time("now-1h", "now").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(labelVariable("job", "Job", "spillway_circuit_state")).
		WithVariable(labelVariable("upstream", "Upstream", "spillway_circuit_state")).
		WithVariable(labelVariable("route", "Route", "spillway_requests_total")).
		Link(dashboard.NewDashboardLinkBuilder("Runbooks").Type(dashboard.DashboardLinkTypeLink).
			Url(RunbookBase + "README.md").Icon("doc").TargetBlank(true).Tooltip("Spillway's runbooks, one per alert"))
	for _, name := range Runbooks {
		b.Link(dashboard.NewDashboardLinkBuilder(name).Type(dashboard.DashboardLinkTypeLink).
			Url(RunbookBase + name + ".md").Icon("doc").TargetBlank(true).AsDropdown(false))
	}
	b.WithRow(dashboard.NewRowBuilder("Gateway"))
	b.WithPanel(gatewayUp())
	b.WithPanel(breakerStates())
	for _, r := range rows {
		b.WithRow(dashboard.NewRowBuilder(r.title))
		for _, p := range r.panels {
			b.WithPanel(p.build())
		}
	}
	d, err := b.Build()
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// labelVariable is a multi-value variable of a label's values, All
// included (All: .*, so that the =~ selectors match every value).
func labelVariable(name, label, metric string) *dashboard.QueryVariableBuilder {
	q := "label_values(" + metric + ", " + name + ")"
	return dashboard.NewQueryVariableBuilder(name).Label(label).
		Datasource(ds).
		Query(dashboard.StringOrMap{String: cog.ToPtr(q)}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).IncludeAll(true).AllValue(".*")
}

// links are a panel's links to the runbooks.
func links(runbooks []string) []cog.Builder[dashboard.DashboardLink] {
	var l []cog.Builder[dashboard.DashboardLink]
	for _, name := range runbooks {
		l = append(l, dashboard.NewDashboardLinkBuilder("Runbook: "+name).Url(RunbookBase+name+".md").TargetBlank(true))
	}
	return l
}

func target(q query, ref string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(ds).Expr(q.expr).LegendFormat(q.legend).RefId(ref).Range()
}

func (p panel) build() *timeseries.PanelBuilder {
	b := timeseries.NewPanelBuilder().Title(p.title).Description(p.desc).Unit(p.unit).
		Datasource(ds).Height(8).Span(8).Links(links(p.runbooks)).
		Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom).ShowLegend(true))
	for i, q := range p.queries {
		b.WithTarget(target(q, string(rune('A'+i))))
	}
	return b
}

// gatewayUp is the scrape's up of the gateway's targets: 0 is the gateway
// down or not answering the scrape.
func gatewayUp() *timeseries.PanelBuilder {
	return panel{"Gateway scraped (up)", "Prometheus's up of the gateway's targets (the job variable: the jobs that scrape spillway_circuit_state); 0 is a target down or not answering.", "short",
		[]query{{`up{job=~"$job"}`, "{{job}} {{instance}}"}},
		[]string{"gateway-down"}}.build().Span(8)
}

// breakerStates is spillway_circuit_state as a state timeline: one series
// per upstream whose value codes its current state, mapped to the state's
// name and colour.
func breakerStates() *statetimeline.PanelBuilder {
	states := []struct{ name, colour string }{
		{"closed", "green"}, {"half_open", "yellow"}, {"open", "red"},
		{"forced_open", "purple"}, {"disabled", "text"}, {"metrics_only", "blue"},
	}
	expr, options := "", map[string]dashboard.ValueMappingResult{}
	for i, s := range states {
		if i > 0 {
			expr += "\n+ "
		}
		expr += string(rune('0'+i)) + ` * max by (upstream) (spillway_circuit_state{` + up + `,state="` + s.name + `"})`
		options[string(rune('0'+i))] = dashboard.ValueMappingResult{Text: cog.ToPtr(s.name), Color: cog.ToPtr(s.colour), Index: cog.ToPtr(int32(i))}
	}
	return statetimeline.NewPanelBuilder().Title("Breaker state").
		Description("spillway_circuit_state: each upstream's breaker over time (closed, half_open, open, forced_open, disabled, metrics_only).").
		Datasource(ds).Height(8).Span(16).
		Links(links([]string{"breaker-open", "breaker-flapping"})).
		Mappings([]dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: options}}}).
		MergeValues(true).ShowValue(common.VisibilityModeAuto).
		WithTarget(target(query{expr, "{{upstream}}"}, "A"))
}
