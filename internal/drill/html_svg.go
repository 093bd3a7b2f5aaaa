package drill

import (
	"cmp"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file lays out the HTML report's charts in Go. A chart is a list of
// shapes whose coordinates are finished strings, so the template only
// places them (and escapes every text from the report); nothing is
// computed in the browser. Every number goes through coord or compact,
// which never print NaN or Inf whatever the report holds.

// Chart geometry, in SVG user units (the SVG scales to the page's width).
const (
	chartW      = 960
	chartH      = 280
	bandH       = 130
	plotLeft    = 64
	plotRight   = 16
	plotTop     = 44
	plotBottom  = 44
	maxXTicks   = 12
	maxLogTicks = 7
	legendRunes = 24
)

// svgChart is one chart, ready for the "chart" template.
type svgChart struct {
	ID, Title      string
	W, H           int
	Left, Right    string // the plot area's edges
	Top, Bottom    string
	TickEnd        string // the x axis' tick marks' lower end
	XLabelX        string // the x axis label's centre
	XLabel, YLabel string
	YLabelY        string // the y axis label's centre (it is turned 90°)
	XTicks, YTicks []tick
	Shades         []shade
	Rects          []rect
	Paths          []path
	Legend         []swatch
}

type tick struct{ At, Label string }

// shade is a fault phase across the plot's height: a tint under the data,
// an outline over it, and its name above the plot.
type shade struct{ X, Y, W, H, Name string }

type rect struct{ X, Y, W, H, Fill, Title string }

type path struct{ D, Stroke, Class, Title string }

type swatch struct{ X, Colour, Label string }

// frame maps seconds and values to the plot area.
type frame struct {
	left, top, w, h float64
	xmax            float64 // seconds shown, > 0
}

func newFrame(r *Report, height int) frame {
	xmax := seconds(r.Duration)
	for _, s := range r.Series {
		xmax = max(xmax, seconds(s.At)+1)
	}
	if xmax <= 0 {
		xmax = 1
	}
	return frame{
		left: plotLeft, top: plotTop,
		w: chartW - plotLeft - plotRight, h: float64(height - plotTop - plotBottom),
		xmax: xmax,
	}
}

// x is the horizontal position of an offset of sec seconds, kept inside
// the plot.
func (f frame) x(sec float64) float64 {
	return f.left + f.w*clamp01(sec/f.xmax)
}

// y is the vertical position of a fraction (0 bottom, 1 top) of the axis.
func (f frame) y(frac float64) float64 { return f.top + f.h*(1-clamp01(frac)) }

func (f frame) bottom() float64 { return f.top + f.h }

// newChart returns an empty chart of the given height and the frame it
// is drawn on: axes, time ticks and fault shades.
func newChart(r *Report, id, title, ylabel string, height int) (svgChart, frame) {
	f := newFrame(r, height)
	c := svgChart{
		ID: id, Title: title, W: chartW, H: height,
		Left: coord(f.left), Right: coord(f.left + f.w), Top: coord(f.top), Bottom: coord(f.bottom()),
		TickEnd: coord(f.bottom() + 5), XLabelX: coord(f.left + f.w/2),
		XLabel: "seconds since the drill started", YLabel: ylabel, YLabelY: coord(f.top + f.h/2),
	}
	step := timeStep(f.xmax)
	for s := 0.0; s <= f.xmax+1e-9; s += step {
		c.XTicks = append(c.XTicks, tick{At: coord(f.x(s)), Label: secs(s)})
	}
	for _, p := range r.Phases {
		if p.Name != "fault" || p.End <= p.Start {
			continue
		}
		x0, x1 := f.x(seconds(p.Start)), f.x(seconds(p.End))
		c.Shades = append(c.Shades, shade{X: coord(x0), Y: coord(f.top), W: coord(x1 - x0), H: coord(f.h), Name: p.Name})
	}
	return c, f
}

// legend lays out swatches in a row above the plot. A label is cut at
// legendRunes; the items that do not fit end in "+N more" (the reasons'
// table and the tooltips name them all).
func (c *svgChart) legend(colours, labels []string) {
	const more = 80 // room kept for "+N more"
	x := float64(plotLeft)
	for i, l := range labels {
		if r := []rune(l); len(r) > legendRunes {
			l = string(r[:legendRunes-1]) + "…"
		}
		w := 28 + 7.5*float64(len([]rune(l)))
		if (i < len(labels)-1 && x+w > chartW-plotRight-more) || x+w > chartW-plotRight {
			c.Legend = append(c.Legend, swatch{X: coord(x), Colour: "none", Label: "+" + strconv.Itoa(len(labels)-i) + " more"})
			return
		}
		c.Legend = append(c.Legend, swatch{X: coord(x), Colour: colours[i], Label: l})
		x += w
	}
}

// Colours of the rate chart's series.
const (
	colourRequests  = "#263238"
	colourOK        = "#2e7d32"
	colourFallbacks = "#1565c0"
	colourErrors    = "#c62828"
)

// rateChart stacks, per second, the requests the upstream answered, those
// a fallback answered and those that failed, under a line of the requests
// sent.
func rateChart(r *Report) svgChart {
	c, f := newChart(r, "chart-rates", "Requests per second", "requests / s", chartH)
	layers := []layer{
		{"ok", colourOK, func(s Sample) float64 { return float64(s.OK) }},
		{"fallbacks", colourFallbacks, func(s Sample) float64 { return float64(s.Fallbacks) }},
		{"errors", colourErrors, errorSum},
	}
	top := 0.0
	for _, s := range r.Series {
		top = max(top, float64(s.Requests))
	}
	ymax := c.stack(f, r, top, layers)
	var line []point
	for _, s := range r.Series {
		line = append(line, point{x: f.x(seconds(s.At) + 0.5), y: f.y(float64(s.Requests) / ymax)})
	}
	c.Paths = append(c.Paths, path{D: pathData([][]point{line}), Stroke: colourRequests, Title: "requests sent"})
	c.legend([]string{colourRequests, colourOK, colourFallbacks, colourErrors}, []string{"requests", "ok (upstream)", "fallbacks", "errors"})
	return c
}

// errorChart stacks, per second, the failed requests by reason.
func errorChart(r *Report) svgChart {
	c, f := newChart(r, "chart-errors", "Errors per second, by reason", "errors / s", chartH)
	reasons := reasonsOf(r)
	layers := make([]layer, len(reasons))
	colours := make([]string, len(reasons))
	for i, reason := range reasons {
		colours[i] = reasonColour(reason)
		layers[i] = layer{reason, colours[i], func(s Sample) float64 { return float64(s.Errors[reason]) }}
	}
	c.stack(f, r, 0, layers)
	c.legend(colours, reasons)
	return c
}

// layer is one part of a stacked bar.
type layer struct {
	name, colour string
	value        func(Sample) float64
}

// stack draws a bar per second, layers stacked from the bottom, on a
// linear axis holding top and every stack; it returns the axis' top.
func (c *svgChart) stack(f frame, r *Report, top float64, layers []layer) (ymax float64) {
	for _, s := range r.Series {
		sum := 0.0
		for _, l := range layers {
			sum += max(0, l.value(s))
		}
		top = max(top, sum)
	}
	ymax, ticks := linearTicks(top)
	for _, v := range ticks {
		c.YTicks = append(c.YTicks, tick{At: coord(f.y(v / ymax)), Label: compact(v)})
	}
	for _, s := range r.Series {
		at, y := seconds(s.At), 0.0
		for _, l := range layers {
			if n := l.value(s); n > 0 {
				c.Rects = append(c.Rects, bar(f, at, y/ymax, (y+n)/ymax, l.colour, sampleTitle(at, l.name, n)))
				y += n
			}
		}
	}
	return ymax
}

// Colours of the latency chart's lines.
const (
	colourP50 = "#1565c0"
	colourP99 = "#ef6c00"
	colourMax = "#c62828"
)

// latencyChart draws p50, p99 and max per second on a log scale (a
// healthy p50 of a few milliseconds and a fault's timeouts of seconds
// both stay readable), with a gap for a second without requests.
func latencyChart(r *Report) svgChart {
	c, f := newChart(r, "chart-latency", "Latency per second (log scale)", "ms", chartH)
	lo, hi := math.Inf(1), 0.0
	for _, s := range r.Series {
		for _, v := range []float64{s.P50ms, s.P99ms, s.MaxMs} {
			if v = finite(v); v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	scale := newLogScale(lo, hi)
	for _, d := range scale.ticks() {
		c.YTicks = append(c.YTicks, tick{At: coord(f.y(scale.frac(d))), Label: compact(d)})
	}
	for _, l := range []struct {
		colour, class, name string
		value               func(Sample) float64
	}{
		{colourP50, "", "p50", func(s Sample) float64 { return s.P50ms }},
		{colourP99, "", "p99", func(s Sample) float64 { return s.P99ms }},
		{colourMax, "dashed", "max", func(s Sample) float64 { return s.MaxMs }},
	} {
		var segs [][]point
		var cur []point
		for _, s := range r.Series {
			if s.Requests <= 0 {
				segs, cur = append(segs, cur), nil
				continue
			}
			cur = append(cur, point{x: f.x(seconds(s.At) + 0.5), y: f.y(scale.frac(l.value(s)))})
		}
		c.Paths = append(c.Paths, path{D: pathData(append(segs, cur)), Stroke: l.colour, Class: l.class, Title: l.name})
	}
	c.legend([]string{colourP50, colourP99, colourMax}, []string{"p50", "p99", "max"})
	return c
}

// breakerColours: closed green, half_open amber, open red, the operator's
// overrides grey. The legend always shows the first three, then any other
// state the band holds; a state not listed here is light grey.
var breakerColours = []struct{ state, colour string }{
	{"closed", "#2e7d32"},
	{"half_open", "#f9a825"},
	{"open", "#c62828"},
	{"forced_open", "#616161"},
	{"disabled", "#9e9e9e"},
	{"metrics_only", "#bdbdbd"},
}

const colourUnknownState = "#e0e0e0"

// breakerBand colours every second by the breaker's state at its end.
func breakerBand(r *Report) svgChart {
	c, f := newChart(r, "chart-breaker", "Breaker state", "breaker", bandH)
	states := []string{"closed", "half_open", "open"}
	for _, s := range r.Series {
		if !slices.Contains(states, s.Breaker) {
			states = append(states, s.Breaker)
		}
		at := seconds(s.At)
		c.Rects = append(c.Rects, bar(f, at, 0, 1, stateColour(s.Breaker), sampleTitle(at, stateName(s.Breaker), -1)))
	}
	colours, labels := make([]string, len(states)), make([]string, len(states))
	for i, s := range states {
		colours[i], labels[i] = stateColour(s), stateName(s)
	}
	c.legend(colours, labels)
	return c
}

func stateColour(state string) string {
	for _, c := range breakerColours {
		if c.state == state {
			return c.colour
		}
	}
	return colourUnknownState
}

func stateName(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// reasonColours are fixed for the reasons a drill reports, so that a
// reason has the same colour in every report.
var reasonColours = map[string]string{
	"breaker_open":        "#c62828",
	"deadline_exceeded":   "#ef6c00",
	"upstream_error":      "#6a1b9a",
	"status_5xx":          "#ad1457",
	"transport":           "#4e342e",
	"bulkhead_full":       "#1565c0",
	"budget_exhausted":    "#00838f",
	"no_healthy_instance": "#37474f",
	"throttled":           "#f9a825",
	"canceled":            "#9e9e9e",
}

// otherColours colour any other reason by a hash of its name: stable from
// one report to the next, though two such reasons may share one.
var otherColours = []string{"#8d6e63", "#5c6bc0", "#26a69a", "#d4e157", "#ec407a", "#78909c", "#ab47bc", "#ffa726"}

func reasonColour(reason string) string {
	if c, ok := reasonColours[reason]; ok {
		return c
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(reason))
	return otherColours[h.Sum32()%uint32(len(otherColours))]
}

// reasonsOf returns every reason the series holds, the most frequent
// first (the bottom of the stack), ties by name.
func reasonsOf(r *Report) []string {
	total := map[string]float64{}
	for _, s := range r.Series {
		for reason, n := range s.Errors {
			if n > 0 {
				total[reason] += float64(n)
			}
		}
	}
	reasons := make([]string, 0, len(total))
	for reason := range total {
		reasons = append(reasons, reason)
	}
	slices.SortFunc(reasons, func(a, b string) int {
		return cmp.Or(cmp.Compare(total[b], total[a]), cmp.Compare(a, b))
	})
	return reasons
}

func errorSum(s Sample) float64 {
	n := 0.0
	for _, v := range s.Errors {
		if v > 0 {
			n += float64(v)
		}
	}
	return n
}

// bar is the second starting at `at`, from fraction y0 to y1 of the axis.
func bar(f frame, at, y0, y1 float64, fill, title string) rect {
	x0, x1 := f.x(at), f.x(at+1)
	top, bottom := f.y(y1), f.y(y0)
	return rect{X: coord(x0), Y: coord(top), W: coord(x1 - x0), H: coord(bottom - top), Fill: fill, Title: title}
}

// sampleTitle is a shape's tooltip: "7 s: breaker_open 12", or without
// the count when n < 0.
func sampleTitle(at float64, what string, n float64) string {
	if n < 0 {
		return secs(at) + " s: " + what
	}
	return secs(at) + " s: " + what + " " + compact(n)
}

type point struct{ x, y float64 }

// pathData joins each run of points into a line; runs are drawn apart,
// and a run of one point is a short dash (a line needs two).
func pathData(runs [][]point) string {
	var b []byte
	for _, run := range runs {
		if len(run) == 1 {
			p := run[0]
			run = []point{{p.x - 3, p.y}, {p.x + 3, p.y}}
		}
		for i, p := range run {
			if i == 0 {
				b = append(b, 'M')
			} else {
				b = append(b, 'L')
			}
			b = append(b, coord(p.x)...)
			b = append(b, ' ')
			b = append(b, coord(p.y)...)
		}
	}
	return string(b)
}

// linearTicks returns the top of an axis holding top (a count: steps of at
// least 1) and its ticks at round steps (1, 2 or 5 × 10ⁿ), about five.
func linearTicks(top float64) (ymax float64, ticks []float64) {
	top = finite(top)
	if top < 1 {
		top = 1
	}
	step := max(1, niceStep(top/5))
	ymax = math.Ceil(top/step) * step
	for i := 0.0; i*step <= ymax*(1+1e-9); i++ {
		ticks = append(ticks, i*step)
	}
	return ymax, ticks
}

// niceStep is the smallest of 1, 2 and 5 × 10ⁿ at least v (v > 0).
func niceStep(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// timeStep is the x axis' tick step in seconds: a round one, at most
// maxXTicks ticks.
func timeStep(xmax float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600} {
		if xmax/s <= maxXTicks {
			return s
		}
	}
	return niceStep(xmax / maxXTicks)
}

// logScale is a latency axis from decade lo to decade hi (exponents).
type logScale struct{ lo, hi float64 }

// newLogScale spans the decades holding every positive value between lo
// and hi; 1 to 10 ms when there is none.
func newLogScale(lo, hi float64) logScale {
	if hi <= 0 || lo > hi {
		return logScale{0, 1}
	}
	s := logScale{math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))}
	if s.hi <= s.lo {
		s.hi = s.lo + 1
	}
	return s
}

// frac is v's place on the axis; 0 and below sit at its bottom.
func (s logScale) frac(v float64) float64 {
	if v = finite(v); v <= 0 {
		return 0
	}
	return (math.Log10(v) - s.lo) / (s.hi - s.lo)
}

// ticks are decades, every one of them or every few on a wide axis.
func (s logScale) ticks() []float64 {
	step := math.Max(1, math.Ceil((s.hi-s.lo)/maxLogTicks))
	var ticks []float64
	for e := s.lo; e <= s.hi; e += step {
		ticks = append(ticks, math.Pow(10, e))
	}
	return ticks
}

func seconds(d time.Duration) float64 { return max(0, d.Seconds()) }

func clamp01(v float64) float64 {
	if v = finite(v); v < 0 {
		return 0
	}
	return min(v, 1)
}

// finite is v, or 0 when v is NaN or infinite: a report built in Go may
// hold them (JSON cannot), and SVG must not.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// coord prints an SVG coordinate, to a tenth of a unit.
func coord(v float64) string { return strconv.FormatFloat(finite(v), 'f', 1, 64) }

// compact prints a value for a label: at most three significant digits,
// with an SI suffix from a thousand up (1.5k, 20M).
func compact(v float64) string {
	v = finite(v)
	for _, unit := range []string{"", "k", "M", "G", "T", "P", "E"} {
		// 'g' turns to an exponent once three digits no longer hold the
		// value (999.9 is "1e+03"): then it is the next unit's.
		if s := strconv.FormatFloat(v, 'g', 3, 64); !strings.Contains(s, "e+") {
			return s + unit
		}
		v /= 1000
	}
	return strconv.FormatFloat(v*1e21, 'g', 3, 64)
}

// secs prints a whole or fractional number of seconds as is.
func secs(v float64) string { return strconv.FormatFloat(finite(v), 'f', -1, 64) }
