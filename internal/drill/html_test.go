package drill

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chartIDs are the report's charts, in order.
var chartIDs = []string{"chart-rates", "chart-errors", "chart-latency", "chart-breaker"}

func render(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestWriteHTMLOutage: the outage's page holds the verdict, every check,
// metric and reason, four charts each with the fault shaded, and nothing
// that reaches out of the file.
func TestWriteHTMLOutage(t *testing.T) {
	r := outageReport()
	page := render(t, r)
	checkSelfContained(t, page)
	svgs := checkCharts(t, page)
	for i, svg := range svgs {
		if n := strings.Count(svg, `class="fault"`); n != 1 {
			t.Errorf("%s: %d fault shades, want 1", chartIDs[i], n)
		}
		// The fault runs from 6 s to 21 s of 30: x from 64 + 880·6/30.
		if !strings.Contains(svg, `<rect class="fault" x="240.0" y="44.0" width="440.0"`) {
			t.Errorf("%s: the fault's shade is not at 6-21 s:\n%s", chartIDs[i], svg)
		}
	}
	for _, want := range []string{
		`<div id="verdict" class="verdict pass">PASS</div>`,
		"<dd>catalog</dd>", "<dd>catalog-api</dd>", "<dd>50 requests/s</dd>", "<dd>30s</dd>", "<dd>2026-12-06T12:00:00Z</dd>",
		"healthy 0–6 s, fault 6–21 s, recovery 21–30 s",
		`<td>availability&gt;=95%</td><td class="num">96.53%</td><td class="ok">`,
		`<td>p99&lt;=1500ms</td><td class="num">1000ms</td>`,
		`<td>amplification&lt;=1.2</td><td class="num">1.03</td>`,
		`<td>time_to_open&lt;=2s</td><td class="num">0.85s</td>`,
		`<td>requests</td><td class="num">1500</td>`,
		`<td>fallback share</td><td class="num">52.53</td><td class="muted">%</td>`,
		`<td>time to open</td><td class="num">850</td>`,
		`<td>queue backlog</td><td class="num">0</td>`,
		`breaker_open</td><td class="num">30</td>`,
		"0 s: ok 50", "6 s: deadline_exceeded 12",
		// The breaker band: closed green, open red, half_open amber.
		`fill="#2e7d32"><title>0 s: closed</title>`, `fill="#c62828"><title>7 s: open</title>`, `fill="#f9a825"><title>22 s: half_open</title>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// The legend of errors: most frequent reason first, the same colour
	// in the chart as in the table.
	errs := svgs[1]
	if i, j := strings.Index(errs, ">breaker_open</text>"), strings.Index(errs, ">upstream_error</text>"); i < 0 || j < i {
		t.Errorf("errors legend: breaker_open (30) should come before upstream_error (8)")
	}
	if !strings.Contains(errs, `fill="`+reasonColours["breaker_open"]+`"`) {
		t.Error("breaker_open is not in its colour")
	}
	if n := strings.Count(page, "<tr>"); n != 1+4+1+3+1+13 {
		t.Errorf("%d table rows, want the checks', the reasons', the metrics' and their headers", n)
	}
}

func TestWriteHTMLFail(t *testing.T) {
	r := outageReport()
	r.Pass, r.Checks[0].Pass = false, false
	r.Metrics.TimeToRecoverMs = -1
	r.Checks = append(r.Checks, Check{Expect: "time_to_recover<=35s", Value: -1, Never: true})
	page := render(t, r)
	for _, want := range []string{`class="verdict fail">FAIL</div>`, `<td class="ko">✗ fail</td>`, `<td>time to recover</td><td class="num">never</td>`,
		`<td>time_to_recover&lt;=35s</td><td class="num">never</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// TestWriteHTMLEscapes: a hostile string in every field of the report that
// the page shows stays text, in the tables as in the SVG.
func TestWriteHTMLEscapes(t *testing.T) {
	const h = `<script>alert(1)</script>`
	r := outageReport()
	r.Scenario, r.Upstream, r.Route = h, h, h
	r.Checks[0].Expect = h
	r.Phases[1].Name = "fault"
	r.Phases[0].Name = h
	r.Metrics.ErrorsByReason[h] = 3
	r.Series[8].Errors[h] = 3
	r.Series[9].Breaker = h
	page := render(t, r)
	if strings.Contains(strings.ToLower(page), "<script") {
		t.Fatal("the page holds a <script> element")
	}
	const esc = "&lt;script&gt;alert(1)&lt;/script&gt;"
	// Title (twice), h1, upstream, route, phases, check, reason row, errors
	// tooltip, breaker tooltip; cut in the errors' and the breaker's legends.
	if n := strings.Count(page, esc); n < 10 {
		t.Errorf("the hostile string is shown escaped %d times, want 10 or more", n)
	}
	if n := strings.Count(page, "&lt;script&gt;alert(1)&lt;/scrip…</text>"); n != 2 {
		t.Errorf("the hostile string is in %d legends, escaped, want 2", n)
	}
	checkCharts(t, page)
}

// TestWriteHTMLEdgeCases: whatever the series holds, the page has its four
// charts, well-formed, every shape inside its chart, and no NaN.
func TestWriteHTMLEdgeCases(t *testing.T) {
	huge := float64(math.MaxInt64)
	for _, tc := range []struct {
		name string
		r    *Report
	}{
		{"zero report", &Report{}},
		{"no series", &Report{Duration: 30 * time.Second, Phases: []Phase{{Name: "fault", Start: time.Second, End: 2 * time.Second}}}},
		{"one sample", &Report{Series: []Sample{{Requests: 1, OK: 1, P50ms: 3, P99ms: 3, MaxMs: 3, Breaker: "closed"}}}},
		{"all zeros", &Report{Duration: 5 * time.Second, Series: make([]Sample, 5)}},
		{"huge values", &Report{Duration: time.Second, Series: []Sample{{
			Requests: math.MaxInt64, OK: math.MaxInt64, Fallbacks: math.MaxInt64,
			Errors: map[string]int{"a": math.MaxInt64, "b": math.MaxInt64},
			P50ms:  1e300, P99ms: math.MaxFloat64, MaxMs: math.MaxFloat64,
		}}, Metrics: Metrics{Requests: math.MaxInt64, P99ms: huge, Amplification: math.MaxFloat64}}},
		{"not numbers", &Report{Rate: math.NaN(), Series: []Sample{{
			Requests: 2, OK: 1, P50ms: math.NaN(), P99ms: math.Inf(1), MaxMs: math.Inf(-1),
		}}, Checks: []Check{{Expect: "p99<=1ms", Value: math.NaN()}}, Metrics: Metrics{Availability: math.Inf(1)}}},
		{"negative values", &Report{Duration: -time.Second, Series: []Sample{{
			At: -time.Second, Requests: -5, OK: -1, Errors: map[string]int{"x": -3}, P50ms: -1,
		}}, Phases: []Phase{{Name: "fault", Start: -time.Second, End: time.Hour}}}},
		{"sparse seconds, missing reasons", &Report{Duration: 10 * time.Second, Series: []Sample{
			{At: 0, Requests: 3, OK: 3, P50ms: 0.01, P99ms: 0.02, MaxMs: 0.02},
			{At: 7 * time.Second, Requests: 3, Errors: map[string]int{"transport": 3}, P50ms: 2e4, P99ms: 3e4, MaxMs: 3e4, Breaker: "forced_open"},
		}}},
		{"many long reasons", manyReasons()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := render(t, tc.r)
			checkSelfContained(t, page)
			checkCharts(t, page)
			if strings.Contains(page, "NaN") || strings.Contains(page, "Inf") {
				t.Errorf("the page prints NaN or Inf")
			}
		})
	}
}

// manyReasons is a report whose errors have more reasons, with longer
// names, than a legend's row holds.
func manyReasons() *Report {
	s := Sample{Requests: 100, Errors: map[string]int{}}
	for i := range 15 {
		s.Errors[strings.Repeat("long_reason_", i%4+1)+strconv.Itoa(i)] = i + 1
	}
	return &Report{Scenario: "errors", Series: []Sample{s}}
}

func TestLegendOverflow(t *testing.T) {
	svgs := checkCharts(t, render(t, manyReasons()))
	if !strings.Contains(svgs[1], "more</text>") || !strings.Contains(svgs[1], "long_reason_long_reason…</text>") {
		t.Errorf("the errors' legend neither cuts long names nor ends in +N more:\n%s", svgs[1])
	}
}

// checkSelfContained fails unless the page forbids any fetch and names no
// URL, script or external resource.
func checkSelfContained(t *testing.T, page string) {
	t.Helper()
	if !strings.Contains(page, `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:;`) {
		t.Error("the page has no Content-Security-Policy forbidding fetches")
	}
	lower := strings.ToLower(page)
	for _, bad := range []string{"http:", "https:", "//", "url(", "<script", "<link", "<img", "<iframe", "@import", "src=", "href="} {
		if strings.Contains(lower, bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
}

var svgRE = regexp.MustCompile(`(?s)<svg id="[^"]*".*?</svg>`)

// checkCharts checks the page's four charts, in order, and returns them:
// each is well-formed XML, and every shape's coordinates lie inside its
// viewBox.
func checkCharts(t *testing.T, page string) []string {
	t.Helper()
	svgs := svgRE.FindAllString(page, -1)
	if len(svgs) != len(chartIDs) {
		t.Fatalf("%d charts, want %d", len(svgs), len(chartIDs))
	}
	for i, svg := range svgs {
		if !strings.HasPrefix(svg, `<svg id="`+chartIDs[i]+`"`) {
			t.Errorf("chart %d is not %s", i, chartIDs[i])
		}
		checkSVG(t, chartIDs[i], svg)
	}
	return svgs
}

// checkSVG parses svg and checks the coordinates of its shapes.
func checkSVG(t *testing.T, id, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	var w, h float64
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("%s is not well-formed: %v\n%s", id, err, svg)
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range el.Attr {
			switch a.Name.Local {
			case "viewBox":
				f := strings.Fields(a.Value)
				w, h = parseNum(t, id, f[2]), parseNum(t, id, f[3])
			case "x", "x1", "x2", "width":
				inside(t, id, el.Name.Local, a, w)
			case "y", "y1", "y2", "height":
				inside(t, id, el.Name.Local, a, h)
			case "d":
				for i, n := range strings.FieldsFunc(a.Value, func(r rune) bool { return r == 'M' || r == 'L' || r == ' ' }) {
					if i%2 == 0 {
						inside(t, id, "path x", xml.Attr{Value: n}, w)
					} else {
						inside(t, id, "path y", xml.Attr{Value: n}, h)
					}
				}
			}
		}
	}
}

func inside(t *testing.T, id, what string, a xml.Attr, limit float64) {
	t.Helper()
	if v := parseNum(t, id, a.Value); v < 0 || v > limit {
		t.Errorf("%s: %s %s=%s outside 0..%v", id, what, a.Name.Local, a.Value, limit)
	}
}

func parseNum(t *testing.T, id, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		t.Errorf("%s: %q is not a number", id, s)
	}
	return v
}

// A second alone between gaps still shows on the latency chart.
func TestPathDataLonePoint(t *testing.T) {
	got := pathData([][]point{{{10, 20}}, nil, {{30, 40}, {50, 60}}})
	if want := "M7.0 20.0L13.0 20.0M30.0 40.0L50.0 60.0"; got != want {
		t.Errorf("pathData = %q, want %q", got, want)
	}
}

func TestCompact(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 0.5: "0.5", 12: "12", 999: "999", 999.9: "1k", 1000: "1k", 1500: "1.5k",
		123456: "123k", 2e6: "2M", math.MaxInt64: "9.22E", 1e300: "1e+300", math.NaN(): "0",
	} {
		if got := compact(v); got != want {
			t.Errorf("compact(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestLinearTicks(t *testing.T) {
	for _, tc := range []struct {
		top, ymax float64
		ticks     int
	}{
		{0, 1, 2}, {1, 1, 2}, {4, 4, 5}, {50, 50, 6}, {51, 60, 4}, {1000, 1000, 6}, {math.NaN(), 1, 2},
	} {
		ymax, ticks := linearTicks(tc.top)
		if ymax != tc.ymax || len(ticks) != tc.ticks || ticks[len(ticks)-1] != ymax {
			t.Errorf("linearTicks(%v) = %v %v, want the top at %v in %d ticks", tc.top, ymax, ticks, tc.ymax, tc.ticks)
		}
	}
}

func TestUnitOf(t *testing.T) {
	for expect, want := range map[string]string{
		"availability>=99.5%": "%", "p99<=250ms": "ms", "amplification<=1.2": "", "time_to_recover<=10s": "s", "": "",
	} {
		if got := unitOf(expect); got != want {
			t.Errorf("unitOf(%q) = %q, want %q", expect, got, want)
		}
	}
}
