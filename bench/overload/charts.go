package overload

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// smoothing is how many buckets the goodput chart averages over (1 s of
// 100 ms buckets): a 100 ms bucket holds about 200 successes, whose Poisson
// noise would hide the lines under each other.
const smoothing = 10

// WriteCharts writes prefix-limit.svg, prefix-goodput.svg and
// prefix-latency.svg into dir: each row's limit, goodput (1 s trailing
// mean) and p99 latency over time. It returns the files' paths.
func WriteCharts(dir, prefix, title string, cfg Config, results []Result) ([]string, error) {
	limit := Chart{Title: title + ": concurrency limit", XLabel: "time (s)", YLabel: "limit (calls)"}
	good := Chart{Title: title + ": goodput (1 s mean)", XLabel: "time (s)", YLabel: "% of capacity C/L"}
	lat := Chart{Title: title + ": p99 latency of successes", XLabel: "time (s)", YLabel: "ms",
		YMax: float64(cfg.Timeout.Milliseconds())}
	for row, r := range results {
		// A row keeps its colour in every chart, the limit chart's included.
		colour := palette[row%len(palette)]
		n := len(r.Series)
		x := make([]float64, n)
		lim, gp, p99 := make([]float64, n), make([]float64, n), make([]float64, n)
		hasLimit := false
		for i, p := range r.Series {
			x[i] = p.T.Seconds()
			lim[i] = float64(p.Limit)
			if p.Limit > 0 {
				hasLimit = true
			} else {
				lim[i] = math.NaN()
			}
			gp[i] = trailingMean(r.Series, i)
			p99[i] = math.NaN()
			if p.P99 > 0 {
				p99[i] = float64(p.P99.Microseconds()) / 1000
			}
		}
		if hasLimit {
			limit.Lines = append(limit.Lines, Line{Name: r.Name, X: x, Y: lim, Colour: colour})
		}
		good.Lines = append(good.Lines, Line{Name: r.Name, X: x, Y: gp, Colour: colour})
		lat.Lines = append(lat.Lines, Line{Name: r.Name, X: x, Y: p99, Colour: colour})
	}
	var paths []string
	for _, c := range []struct {
		suffix string
		chart  Chart
	}{{"limit", limit}, {"goodput", good}, {"latency", lat}} {
		p := filepath.Join(dir, fmt.Sprintf("%s-%s.svg", prefix, c.suffix))
		if err := os.WriteFile(p, c.chart.SVG(), 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func trailingMean(s []Point, i int) float64 {
	from := max(0, i-smoothing+1)
	sum := 0.0
	for _, p := range s[from : i+1] {
		sum += p.Goodput
	}
	return sum / float64(i+1-from)
}
