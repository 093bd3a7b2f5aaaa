package sharedlimit

import "github.com/prometheus/client_golang/prometheus"

var (
	descShared = prometheus.NewDesc("spillway_rate_limit_shared",
		"1 while the route's rate limit is shared with the other replicas through NATS, 0 while this replica answers with its local share.",
		[]string{"route"}, nil)
	descFallbacks = prometheus.NewDesc("spillway_rate_limit_shared_fallbacks_total",
		"Times the route's shared rate limit fell back to this replica's local share because NATS did not answer.",
		[]string{"route"}, nil)
	descReplicas = prometheus.NewDesc("spillway_rate_limit_shared_replicas",
		"Live replicas the route's shared rate limit last counted; its local share is 1/N of the limit.",
		[]string{"route"}, nil)
)

// Describe sends the descriptors of the metrics Collect sends.
func Describe(ch chan<- *prometheus.Desc) {
	ch <- descShared
	ch <- descFallbacks
	ch <- descReplicas
}

// Collect sends the limiter's mode, fallbacks and replica count, labelled
// with its route.
func (l *Limiter) Collect(ch chan<- prometheus.Metric) {
	shared := 0.0
	if l.Shared() {
		shared = 1
	}
	ch <- prometheus.MustNewConstMetric(descShared, prometheus.GaugeValue, shared, l.cfg.Route)
	ch <- prometheus.MustNewConstMetric(descFallbacks, prometheus.CounterValue, float64(l.Fallbacks()), l.cfg.Route)
	ch <- prometheus.MustNewConstMetric(descReplicas, prometheus.GaugeValue, float64(l.Replicas()), l.cfg.Route)
}
