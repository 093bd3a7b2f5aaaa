package main

import (
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/spillway-dev/spillway/internal/otlptest"
)

// traceRatio is the -trace-ratio flag: the telemetry.traces.sample_ratio of
// the "spillway+traces" target, the gateway of "spillway" exporting its
// traces (and its metrics, every 60s) over OTLP to a receiver in gwbench;
// 0 leaves the target out.
var traceRatio float64

// traceSink is the OTLP receiver of "spillway+traces", nil without it.
var traceSink *otlptest.Receiver

// tracesConfig is spillwayConfig with telemetry: sending to endpoint.
func tracesConfig(endpoint string) string {
	return spillwayConfig + "telemetry:\n  otlp: {endpoint: '" + endpoint + "'}\n  traces: {sample_ratio: " +
		strconv.FormatFloat(traceRatio, 'f', -1, 64) + "}\n"
}

// startTraces starts the receiver and the gateway of "spillway+traces".
func startTraces(dir, bin, up string, startCmd func(string, ...string) (*exec.Cmd, error)) (target, error) {
	traceSink = otlptest.NewReceiver()
	gw, admin := freeAddr(), freeAddr()
	if strings.Contains(traceSink.URL, "%") {
		return target{}, fmt.Errorf("-trace-ratio: the receiver's URL %q would break the template", traceSink.URL)
	}
	err := startSpillway(dir, "traces", bin, gw, admin, up, tracesConfig(traceSink.URL), startCmd)
	return target{name: "spillway+traces", url: "http://" + gw + "/"}, err
}

// reportTraces prints the cost of tracing: "spillway+traces" against
// "spillway", and what the receiver got.
func reportTraces(w io.Writer, ratio func(a, b string) string, rounds string) {
	spans := traceSink.Spans()
	fmt.Fprintf(w, "\nspillway+traces (sample_ratio %g, OTLP/HTTP to a receiver on loopback) vs spillway: %s (rounds: %s); %d spans received, %d metric names\n",
		traceRatio, ratio("spillway+traces", "spillway"), rounds, len(spans), len(traceSink.MetricNames()))
	if err := traceSink.Err(); err != nil {
		fmt.Fprintf(w, "receiver: %v\n", err)
	}
}
