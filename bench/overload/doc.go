// Package overload is the evidence of docs/benchmarks.md's overload section:
// protection strategies (none, static limits, spillway's adaptive limiter
// and throttler, failsafe-go's adaptive limiter and throttler) in front of a
// downstream that thrashes past its capacity, at twice the load it can take.
//
// Two harnesses share the workload (Config), the downstream model
// (Downstream) and the strategies (Row): Simulate, a discrete-event
// simulation on simulated time (reproducible: same seed, same numbers), and
// RunReal, the same downstream behind a loopback HTTP server driven by an
// open-loop load generator in real time (noisy: reported as measured).
// WriteCharts draws their time series as SVG line charts.
//
// The report that docs/benchmarks.md quotes:
//
//	cd bench && go test ./overload -run TestOverloadReport -overload.report -v
package overload
