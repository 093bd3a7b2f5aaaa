package drill

import (
	"cmp"
	_ "embed"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// WriteHTML writes r as one self-contained HTML page (spillway drill
// --html): the verdict, the checks, the metrics, and four SVG charts on a
// shared time axis — requests, errors by reason, latency, the breaker's
// state — with the fault phase shaded. The charts are drawn here, in Go:
// the page holds no script, loads nothing (its Content-Security-Policy
// forbids it) and opens from a file or an e-mail as it is. Every string of
// the report is escaped, in the tables as in the charts.
func WriteHTML(w io.Writer, r *Report) error {
	return reportPage.Execute(w, newPage(r))
}

// page is what the template shows of a report.
type page struct {
	R       *Report
	Started string
	Checks  []checkRow
	Metrics []metricRow
	Reasons []reasonRow
	Phases  []phaseRow
	Charts  []svgChart
}

type checkRow struct {
	Expect, Value string
	Pass          bool
}

type metricRow struct{ Name, Value, Unit string }

type reasonRow struct {
	Reason, Colour string
	Count          int
}

type phaseRow struct{ Name, From, To string }

func newPage(r *Report) page {
	p := page{
		R:       r,
		Started: "unknown",
		Metrics: metricRows(r.Metrics),
		Charts:  []svgChart{rateChart(r), errorChart(r), latencyChart(r), breakerBand(r)},
	}
	if !r.Started.IsZero() {
		p.Started = r.Started.UTC().Format(time.RFC3339)
	}
	for _, c := range r.Checks {
		value := number(c.Value) + unitOf(c.Expect)
		if c.Never {
			value = "never"
		}
		p.Checks = append(p.Checks, checkRow{Expect: c.Expect, Value: value, Pass: c.Pass})
	}
	for _, reason := range slices.Sorted(maps.Keys(r.Metrics.ErrorsByReason)) {
		p.Reasons = append(p.Reasons, reasonRow{Reason: reason, Colour: reasonColour(reason), Count: r.Metrics.ErrorsByReason[reason]})
	}
	slices.SortStableFunc(p.Reasons, func(a, b reasonRow) int { return cmp.Compare(b.Count, a.Count) })
	for _, ph := range r.Phases {
		p.Phases = append(p.Phases, phaseRow{Name: ph.Name, From: secs(seconds(ph.Start)), To: secs(seconds(ph.End))})
	}
	return p
}

// metricRows lists every metric with its unit.
func metricRows(m Metrics) []metricRow {
	return []metricRow{
		{"requests", strconv.Itoa(m.Requests), "requests"},
		{"availability", number(m.Availability), "%"},
		{"fallback share", number(m.FallbackShare), "%"},
		{"error rate", number(m.ErrorRate), "%"},
		{"latency p50", number(m.P50ms), "ms"},
		{"latency p99", number(m.P99ms), "ms"},
		{"latency max", number(m.MaxMs), "ms"},
		{"retry amplification", number(m.Amplification), "upstream attempts per request"},
		{"upstream attempts", strconv.Itoa(m.UpstreamAttempts), "attempts"},
		{"time to open", orNever(m.TimeToOpenMs), "ms after the fault started"},
		{"time to recover", orNever(m.TimeToRecoverMs), "ms after the fault ended"},
		{"queue backlog", strconv.Itoa(m.QueueBacklog), "jobs pending at the end"},
		{"queue backlog, most", strconv.Itoa(m.QueueBacklogMax), "jobs pending at once, at most"},
	}
}

// orNever prints a time-to, whose -1 (any negative) means it never came.
func orNever(ms float64) string {
	if ms < 0 {
		return "never"
	}
	return number(ms)
}

// number prints a measured value to two decimals at most ("n/a" for
// NaN or an infinity, six digits and an exponent from a billion up).
func number(v float64) string {
	switch {
	case finite(v) != v:
		return "n/a"
	case math.Abs(v) >= 1e9:
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

// unitOf is the unit an expectation is written in, what follows its last
// digit: "%" in "availability>=99.5%", "ms" in "p99<=250ms", "" in
// "amplification<=1.2". The check's value is in that unit.
func unitOf(expect string) string {
	i := strings.LastIndexFunc(expect, unicode.IsDigit)
	if i < 0 {
		return ""
	}
	return expect[i+1:]
}

//go:embed report.html.tmpl
var reportTemplate string

var reportPage = template.Must(template.New("report").
	Funcs(template.FuncMap{"number": number}).
	Parse(reportTemplate))
