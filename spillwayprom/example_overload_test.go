package spillwayprom_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/ratelimit"
	"github.com/spillway-dev/spillway/spillwayprom"
	"github.com/spillway-dev/spillway/throttle"
)

// The overload policies of a pipeline are exported by its Observer alone:
// the rate limiter's tokens and the throttle's rejection probability are
// read at scrape time, and the rate limiter's refusals are throttled
// rejections under its name. No Register call.
func ExampleMetrics_overloadPolicies() {
	reg := prometheus.NewRegistry()
	metrics, err := spillwayprom.New(reg)
	if err != nil {
		panic(err)
	}
	clock := spillway.NewManualClock(time.Second) // a still clock: no token comes back
	rl := ratelimit.MustNew(ratelimit.Config{Name: "catalog", Limit: 10, Burst: 3, Clock: clock, Observer: metrics})
	th := throttle.MustNew(throttle.Config{Name: "catalog", Clock: clock, Observer: metrics})
	pl := spillway.MustNewPipeline(spillway.Policies[string]{Guards: []spillway.Guard{rl, th},
		Observer: metrics, Name: "catalog"})

	for range 4 {
		_, _ = pl.Execute(context.Background(), func(context.Context) (string, error) { return "item", nil })
	}

	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if name := mf.GetName(); name == "spillway_rate_limit_tokens" || name == "spillway_rejected_total" ||
			strings.HasPrefix(name, "spillway_throttle_") {
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue() // one of them is nil: 0
				fmt.Printf("%s{%s} %v\n", name, strings.Join(labels, ","), v)
			}
		}
	}
	// Output:
	// spillway_rate_limit_tokens{name="catalog"} 0
	// spillway_rejected_total{name="catalog",reason="throttled"} 1
	// spillway_throttle_rejection_probability{name="catalog"} 0
	// spillway_throttle_window_accepts{name="catalog"} 3
	// spillway_throttle_window_requests{name="catalog"} 3
}
