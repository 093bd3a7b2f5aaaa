package overload

import (
	"bytes"
	"cmp"
	"fmt"
	"html"
	"math"
	"strconv"
)

// Chart is a line chart: a few series over a common x axis.
type Chart struct {
	Title, XLabel, YLabel string
	// YMax caps the y axis (0: the data's maximum).
	YMax  float64
	Lines []Line
}

// Line is one series of a Chart. A NaN Y breaks the line.
type Line struct {
	Name string
	X, Y []float64
	// Colour is the line's SVG colour; default the palette's i-th for the
	// chart's i-th line.
	Colour string
}

// The chart's geometry, in SVG user units.
const (
	chartW, chartH           = 860, 380
	padL, padR, padT, padB   = 64, 220, 36, 48
	plotW, plotH             = chartW - padL - padR, chartH - padT - padB
	legendX, legendY, legend = chartW - padR + 16, padT + 8, 18
)

// palette holds a distinct colour per row of the comparison.
var palette = []string{"#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd",
	"#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#000000"}

// SVG renders the chart as a standalone SVG document.
func (c Chart) SVG() []byte {
	xmax, ymax := c.extent()
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", padL, html.EscapeString(c.Title))
	c.axes(&b, xmax, ymax)
	for i, l := range c.Lines {
		colour := cmp.Or(l.Colour, palette[i%len(palette)])
		for _, pts := range segments(l, xmax, ymax) {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", colour, pts)
		}
		y := legendY + i*legend
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`, legendX, y, legendX+20, y, colour)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", legendX+26, y+4, html.EscapeString(l.Name))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// extent returns the axes' maxima, rounded up to a nice number.
func (c Chart) extent() (xmax, ymax float64) {
	for _, l := range c.Lines {
		for i, x := range l.X {
			xmax = max(xmax, x)
			if !math.IsNaN(l.Y[i]) {
				ymax = max(ymax, l.Y[i])
			}
		}
	}
	if c.YMax > 0 {
		ymax = min(ymax, c.YMax)
	}
	// The x axis ends with the data (a run's duration, whose last real-time
	// sample may come a little early), the y axis at a round value.
	return max(math.Ceil(xmax), 1), nice(ymax)
}

func (c Chart) axes(b *bytes.Buffer, xmax, ymax float64) {
	fmt.Fprintf(b, `<g stroke="#999" stroke-width="1">`)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL, padT+plotH, padL+plotW, padT+plotH)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d"/></g>`+"\n", padL, padT, padL, padT+plotH)
	// y: 5 steps of a round ymax (nice) are round too.
	const yTicks = 5
	for i := 0; i <= yTicks; i++ {
		f := float64(i) / yTicks
		y := padT + plotH - f*plotH
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`, padL, y, padL+plotW, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", padL-6, y+4, label(f*ymax))
	}
	ticks := xTicks(xmax)
	for i := 0; i <= ticks; i++ {
		f := float64(i) / float64(ticks)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", padL+f*plotW, padT+plotH+16, label(f*xmax))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", padL+plotW/2, chartH-8, html.EscapeString(c.XLabel))
	fmt.Fprintf(b, `<text transform="translate(16 %d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padT+plotH/2, html.EscapeString(c.YLabel))
}

// xTicks divides the x axis into 4 to 6 steps, of a multiple of 5 if it
// can (a run of 60 s or 90 s: 6 steps), else of a whole number (12 s: 6).
func xTicks(xmax float64) int {
	for _, mult := range []int{5, 1} {
		for _, n := range []int{6, 5, 4} {
			if step := xmax / float64(n); step == math.Trunc(step) && int(step)%mult == 0 {
				return n
			}
		}
	}
	return 5
}

// segments returns the line's runs of defined points as SVG point lists,
// values above ymax drawn at ymax.
func segments(l Line, xmax, ymax float64) []string {
	var out []string
	var cur bytes.Buffer
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for i, x := range l.X {
		if math.IsNaN(l.Y[i]) {
			flush()
			continue
		}
		px := padL + x/xmax*plotW
		py := padT + plotH - min(l.Y[i], ymax)/ymax*plotH
		fmt.Fprintf(&cur, "%.1f,%.1f ", px, py)
	}
	flush()
	return out
}

// nice rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func nice(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func label(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
