package drill

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// InputError is a drill refused before any load was sent: an unknown
// scenario, upstream, route or expectation, a rate or a duration out of
// range. spillway drill exits 2 on it.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func badInput(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// unitKind is what an expectation's unit may be.
type unitKind int

const (
	percentUnit  unitKind = iota // "%" or nothing; the value is a percentage
	durationUnit                 // "ms" (the default) or "s"
	plainUnit                    // no unit: a ratio or a count
)

// metricDef is a metric an expectation may name: its JSON name in
// Metrics, its short alias, its unit and how to read it.
type metricDef struct {
	name, alias string
	unit        unitKind
	// never is true for the times that are -1 when the event never
	// happened: such a value fails every comparison.
	never bool
	get   func(*Metrics) float64
}

var metricDefs = []metricDef{
	{name: "availability", unit: percentUnit, get: func(m *Metrics) float64 { return m.Availability }},
	{name: "error_rate", unit: percentUnit, get: func(m *Metrics) float64 { return m.ErrorRate }},
	{name: "fallback_share", unit: percentUnit, get: func(m *Metrics) float64 { return m.FallbackShare }},
	{name: "p50_ms", alias: "p50", unit: durationUnit, get: func(m *Metrics) float64 { return m.P50ms }},
	{name: "p99_ms", alias: "p99", unit: durationUnit, get: func(m *Metrics) float64 { return m.P99ms }},
	{name: "max_ms", alias: "max", unit: durationUnit, get: func(m *Metrics) float64 { return m.MaxMs }},
	{name: "amplification", unit: plainUnit, get: func(m *Metrics) float64 { return m.Amplification }},
	{name: "time_to_open_ms", alias: "time_to_open", unit: durationUnit, never: true, get: func(m *Metrics) float64 { return m.TimeToOpenMs }},
	{name: "time_to_recover_ms", alias: "time_to_recover", unit: durationUnit, never: true, get: func(m *Metrics) float64 { return m.TimeToRecoverMs }},
	{name: "queue_backlog", unit: plainUnit, get: func(m *Metrics) float64 { return float64(m.QueueBacklog) }},
	{name: "queue_backlog_max", unit: plainUnit, get: func(m *Metrics) float64 { return float64(m.QueueBacklogMax) }},
}

// operators in the order they are tried: the two-character ones first.
var operators = []string{">=", "<=", "==", ">", "<"}

// Expectation is one --expect parsed: metric op value, the value in the
// metric's unit (milliseconds for a time, a percentage for a rate).
type Expectation struct {
	Text   string // as written, spaces removed
	Metric string // the Metrics JSON name
	Op     string
	Value  float64
	// scale converts the metric's unit to the one written (1/1000 for a
	// time written in s), so that a Check reports the value as written.
	scale float64
	def   *metricDef
}

// ParseExpect parses an expectation such as "availability>=99.5%",
// "p99<=250ms", "time_to_open<2s" or "amplification<=1.2". Metric names
// are the Metrics JSON names or their short aliases (p50, p99, max,
// time_to_open, time_to_recover); units are % for the percentages (which
// may omit it), ms or s for the times (ms when omitted), none for
// amplification and the queue backlogs. The error is an *InputError.
func ParseExpect(s string) (Expectation, error) {
	text := strings.Join(strings.Fields(s), "")
	var e Expectation
	i, op := -1, ""
	for _, o := range operators {
		if j := strings.Index(text, o); j > 0 && (i < 0 || j < i) {
			i, op = j, o
		}
	}
	if i < 0 {
		return e, badInput("--expect %q: want METRIC OP VALUE, OP one of %s", s, strings.Join(operators, " "))
	}
	name, rest := text[:i], text[i+len(op):]
	k := slices.IndexFunc(metricDefs, func(d metricDef) bool { return d.name == name || d.alias != "" && d.alias == name })
	if k < 0 {
		return e, badInput("--expect %q: unknown metric %q (metrics: %s)", s, name, metricNames())
	}
	def := &metricDefs[k]
	num, unit := splitUnit(rest)
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return e, badInput("--expect %q: %q is not a number and a unit (99.5%%, 250ms, 2s, 1.2)", s, rest)
	}
	scale, err := unitScale(def, unit)
	if err != nil {
		return e, badInput("--expect %q: %v", s, err)
	}
	return Expectation{Text: text, Metric: def.name, Op: op, Value: v / scale, scale: scale, def: def}, nil
}

// splitUnit splits "250ms" into "250" and "ms".
func splitUnit(s string) (num, unit string) {
	i := strings.LastIndexFunc(s, func(r rune) bool { return r >= '0' && r <= '9' || r == '.' })
	return s[:i+1], s[i+1:]
}

// unitScale returns the factor from the metric's unit to unit.
func unitScale(def *metricDef, unit string) (float64, error) {
	switch {
	case def.unit == percentUnit && (unit == "%" || unit == ""):
		return 1, nil
	case def.unit == durationUnit && (unit == "ms" || unit == ""):
		return 1, nil
	case def.unit == durationUnit && unit == "s":
		return 0.001, nil
	case def.unit == plainUnit && unit == "":
		return 1, nil
	}
	want := map[unitKind]string{percentUnit: "% or none", durationUnit: "ms, s or none (ms)", plainUnit: "none"}[def.unit]
	return 0, fmt.Errorf("unit %q does not fit %s (want %s)", unit, def.name, want)
}

func metricNames() string {
	var names []string
	for _, d := range metricDefs {
		n := d.name
		if d.alias != "" {
			n = d.alias + "|" + d.name
		}
		names = append(names, n)
	}
	return strings.Join(names, ", ")
}

// Judge checks the expectation against m. A time that never came (-1:
// the breaker never opened, the upstream never recovered) fails every
// comparison.
func (e Expectation) Judge(m *Metrics) Check {
	v := e.def.get(m)
	c := Check{Expect: e.Text, Value: v * e.scale}
	if e.def.never && v < 0 {
		c.Value, c.Never = -1, true
		return c
	}
	switch e.Op {
	case ">=":
		c.Pass = v >= e.Value
	case "<=":
		c.Pass = v <= e.Value
	case ">":
		c.Pass = v > e.Value
	case "<":
		c.Pass = v < e.Value
	case "==":
		c.Pass = v == e.Value
	}
	return c
}

// Verdict judges every expectation against m: the checks in order, and
// whether all of them pass.
func Verdict(exps []Expectation, m *Metrics) ([]Check, bool) {
	checks := make([]Check, len(exps))
	pass := true
	for i, e := range exps {
		checks[i] = e.Judge(m)
		pass = pass && checks[i].Pass
	}
	return checks, pass
}
