package async

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/queue"
)

// QueueStatus is an async route's queue, read from the store.
type QueueStatus struct {
	Pending                 int     `json:"pending"`
	InFlight                int     `json:"in_flight"`
	DeadLetters             int     `json:"dead_letters"`
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
}

// StoreStatus is the state of the queue's store (queue.Health), the
// "store" object of GET /api/v1/status.
type StoreStatus struct {
	Embedded   bool   `json:"embedded"`
	Connected  bool   `json:"connected"`
	Server     string `json:"server"` // the NATS server the connection is on; "" while disconnected
	Reconnects uint64 `json:"reconnects"`
	// Streams are the work stream, the dead-letter stream and the status
	// bucket's stream.
	Streams []StreamStatus `json:"streams"`
}

// StreamStatus is one stream's replication state.
type StreamStatus struct {
	Name string `json:"name"`
	// Leader is the server leading the stream; "" when none is known
	// (Error says why): the stream takes no write then.
	Leader   string          `json:"leader"`
	Replicas []ReplicaStatus `json:"replicas"`
	Error    string          `json:"error,omitempty"`
}

// ReplicaStatus is one server holding a copy of a stream: its state is
// current, lagging (behind the leader, or not heard from lately) or
// offline; lag counts operations behind the leader and active_seconds the
// time since the leader last heard from it.
type ReplicaStatus struct {
	Name          string  `json:"name"`
	Leader        bool    `json:"leader"`
	State         string  `json:"state"`
	Lag           uint64  `json:"lag"`
	ActiveSeconds float64 `json:"active_seconds"`
}

// Status returns the queues of cfg's async routes whose stats the store
// gave, and the store's state when it answered; each read within
// queueProbeTimeout.
func (rs *Routes) Status(cfg *config.Config) (map[string]QueueStatus, *StoreStatus) {
	var qs map[string]QueueStatus
	for name, st := range rs.queueStats(cfg) {
		if qs == nil {
			qs = map[string]QueueStatus{}
		}
		qs[name] = QueueStatus{Pending: st.Pending, InFlight: st.InFlight, DeadLetters: st.DeadLetters,
			OldestPendingAgeSeconds: st.OldestPendingAge.Seconds()}
	}
	h, ok := rs.storeHealth()
	if !ok {
		return qs, nil
	}
	return qs, storeStatus(h, rs.q.Embedded())
}

// queueStats reads the stats of cfg's async routes from the store, each
// within queueProbeTimeout; a route whose stats cannot be read is left out
// (logged at debug level).
func (rs *Routes) queueStats(cfg *config.Config) map[string]queue.Stats {
	var out map[string]queue.Stats
	for _, r := range cfg.Routes {
		if r.Async == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), queueProbeTimeout)
		st, err := rs.q.Stats(ctx, r.Name)
		cancel()
		if err != nil {
			rs.opts.Logger.Debug("gateway: queue stats unavailable", "route", r.Name, "error", err)
			continue
		}
		if out == nil {
			out = map[string]queue.Stats{}
		}
		out[r.Name] = st
	}
	return out
}

// storeHealth reads the store's health within queueProbeTimeout; ok is
// false when the queue is closed or the store did not answer.
func (rs *Routes) storeHealth() (h queue.Health, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), queueProbeTimeout)
	defer cancel()
	h, err := rs.q.Health(ctx)
	if err != nil {
		rs.opts.Logger.Debug("gateway: store health unavailable", "error", err)
		return h, false
	}
	for _, s := range h.Streams {
		if s.Err != nil {
			rs.opts.Logger.Debug("gateway: stream state unavailable", "stream", s.Name, "error", s.Err)
		}
	}
	return h, true
}

// storeStatus is h in the status's shape.
func storeStatus(h queue.Health, embedded bool) *StoreStatus {
	s := &StoreStatus{Embedded: embedded, Connected: h.Connected, Server: h.Server, Reconnects: h.Reconnects,
		Streams: make([]StreamStatus, len(h.Streams))}
	for i, sh := range h.Streams {
		ss := StreamStatus{Name: sh.Name, Leader: sh.Leader, Replicas: make([]ReplicaStatus, len(sh.Replicas))}
		if sh.Err != nil {
			ss.Error = sh.Err.Error()
		}
		for j, r := range sh.Replicas {
			ss.Replicas[j] = ReplicaStatus{Name: r.Name, Leader: r.Leader, State: r.State(), Lag: r.Lag,
				ActiveSeconds: r.Active.Seconds()}
		}
		s.Streams[i] = ss
	}
	return s
}

var (
	descPending = prometheus.NewDesc("spillway_queue_pending",
		"Jobs of an async route stored and not yet delivered (waiting and in flight).", []string{"route"}, nil)
	descDead = prometheus.NewDesc("spillway_queue_dead_letters",
		"Jobs of an async route in the dead-letter queue.", []string{"route"}, nil)
	descOldest = prometheus.NewDesc("spillway_queue_oldest_pending_age_seconds",
		"Age of an async route's oldest pending job; 0 when none.", []string{"route"}, nil)
	descStoreConnected = prometheus.NewDesc("spillway_queue_store_connected",
		"1 while the queue's connection to its store is up.", nil, nil)
	descStoreReconnects = prometheus.NewDesc("spillway_queue_store_reconnects_total",
		"Times the queue's connection moved to a store server since the start.", nil, nil)
	descStoreLeader = prometheus.NewDesc("spillway_queue_store_leader",
		"1 when the stream has a known leader (it takes writes), 0 when none is known.", []string{"stream"}, nil)
	descStoreReplicas = prometheus.NewDesc("spillway_queue_store_replicas",
		"The stream's replicas by state: current, lagging (behind the leader or not heard from lately), offline.",
		[]string{"stream", "state"}, nil)
	descStoreLag = prometheus.NewDesc("spillway_queue_store_replica_lag",
		"Operations a replica of the stream is behind its leader.", []string{"stream", "replica"}, nil)
	descStoreActive = prometheus.NewDesc("spillway_queue_store_replica_last_seen_seconds",
		"Time since the stream's leader last heard from the replica; 0 for the leader.", []string{"stream", "replica"}, nil)
)

var descs = []*prometheus.Desc{descPending, descDead, descOldest, descStoreConnected, descStoreReconnects, descStoreLeader, descStoreReplicas,
	descStoreLag, descStoreActive}

var replicaStates = [...]string{queue.ReplicaCurrent, queue.ReplicaLagging, queue.ReplicaOffline}

// Describe sends the descriptors of the gauges Collect sends.
func Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

// Collect sends the gauges of the queues of cfg's async routes and of the
// store, read from the store at scrape time.
func (rs *Routes) Collect(ch chan<- prometheus.Metric, cfg *config.Config) {
	for name, st := range rs.queueStats(cfg) {
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Pending), name)
		ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(st.DeadLetters), name)
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, st.OldestPendingAge.Seconds(), name)
	}
	if h, ok := rs.storeHealth(); ok {
		collectStore(ch, h)
	}
}

// collectStore sends the store's health as metrics. A stream without a
// known leader has its leader series at 0 and no replica series (only its
// leader can tell them).
func collectStore(ch chan<- prometheus.Metric, h queue.Health) {
	metric := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	metric(descStoreConnected, prometheus.GaugeValue, boolValue(h.Connected))
	metric(descStoreReconnects, prometheus.CounterValue, float64(h.Reconnects))
	for _, s := range h.Streams {
		metric(descStoreLeader, prometheus.GaugeValue, boolValue(s.Leader != ""), s.Name)
		if s.Leader == "" {
			continue
		}
		var counts [len(replicaStates)]int
		for _, r := range s.Replicas {
			for i, st := range replicaStates {
				if r.State() == st {
					counts[i]++
				}
			}
			metric(descStoreLag, prometheus.GaugeValue, float64(r.Lag), s.Name, r.Name)
			metric(descStoreActive, prometheus.GaugeValue, r.Active.Seconds(), s.Name, r.Name)
		}
		for i, st := range replicaStates {
			metric(descStoreReplicas, prometheus.GaugeValue, float64(counts[i]), s.Name, st)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
