package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/internal/natstest"
	"github.com/spillway-dev/spillway/queue"
)

// TestStatusShowsTheEmbeddedStore: the status's store object and the store
// metrics of an embedded queue: one server, every stream led by it with
// one current replica.
func TestStatusShowsTheEmbeddedStore(t *testing.T) {
	h := startAsync(t, asyncConfig(t, newRecording(t), "", ""), openQueue(t))
	b, err := json.Marshal(h.gw.Status())
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Upstreams map[string]any      `json:"upstreams"`
		Store     gateway.StoreStatus `json:"store"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	s := st.Store
	if st.Upstreams["orders"] == nil || !s.Embedded || !s.Connected || s.Server != "spillway" || len(s.Streams) != 3 {
		t.Fatalf("status: %s", b)
	}
	for _, ss := range s.Streams {
		want := []gateway.ReplicaStatus{{Name: "spillway", Leader: true, State: "current"}}
		if ss.Leader != "spillway" || ss.Error != "" || fmt.Sprint(ss.Replicas) != fmt.Sprint(want) {
			t.Errorf("stream %+v, want led by spillway with one current replica", ss)
		}
		if v := metricValue(t, h, "spillway_queue_store_leader", "stream", ss.Name); v != 1 {
			t.Errorf("spillway_queue_store_leader{stream=%s} = %v, want 1", ss.Name, v)
		}
		for state, want := range map[string]float64{"current": 1, "lagging": 0, "offline": 0} {
			if v := metricValue(t, h, "spillway_queue_store_replicas", "stream", ss.Name, "state", state); v != want {
				t.Errorf("spillway_queue_store_replicas{stream=%s,state=%s} = %v, want %v", ss.Name, state, v, want)
			}
		}
	}
	if v := metricValue(t, h, "spillway_queue_store_connected"); v != 1 {
		t.Errorf("spillway_queue_store_connected = %v, want 1", v)
	}
}

// TestStatusShowsAStoreReplicaDown: with a 3-node cluster (replicas 3) the
// status and the metrics show the replica of a node that was shut down as
// offline in every stream, and current again once it is back.
func TestStatusShowsAStoreReplicaDown(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, queue.Config{Servers: c.URLs(), Replicas: 3, Prefix: "GWH", Timeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	h := startAsync(t, asyncConfig(t, newRecording(t), "", ""), q)

	// replicas counts, over every stream, the replicas of server in state;
	// -1 while a stream has no leader.
	var last *gateway.StoreStatus
	replicas := func(server, state string) int {
		last = h.gw.Status().Store
		n := 0
		for _, s := range last.Streams {
			if s.Leader == "" {
				return -1
			}
			for _, r := range s.Replicas {
				if r.Name == server && r.State == state {
					n++
				}
			}
		}
		return n
	}
	eventually(t, "every replica current", func() bool {
		return replicas("n1", "current")+replicas("n2", "current")+replicas("n3", "current") == 9
	})
	if last.Embedded || !last.Connected || last.Server == "" {
		t.Fatalf("store: %+v", last)
	}
	down := (c.Index(last.Server) + 1) % 3 // not the one the connection is on
	name := fmt.Sprintf("n%d", down+1)
	c.Stop(down)
	eventually(t, name+" offline in every stream", func() bool { return replicas(name, "offline") == 3 })
	for _, s := range last.Streams {
		if v := metricValue(t, h, "spillway_queue_store_replicas", "stream", s.Name, "state", "offline"); v != 1 {
			t.Errorf("spillway_queue_store_replicas{stream=%s,state=offline} = %v, want 1", s.Name, v)
		}
		if v := metricValue(t, h, "spillway_queue_store_leader", "stream", s.Name); v != 1 {
			t.Errorf("spillway_queue_store_leader{stream=%s} = %v, want 1", s.Name, v)
		}
		if v := metricValue(t, h, "spillway_queue_store_replica_last_seen_seconds", "stream", s.Name, "replica", name); v < 0 {
			t.Errorf("no spillway_queue_store_replica_last_seen_seconds{stream=%s,replica=%s}", s.Name, name)
		}
	}

	c.Restart(down)
	eventually(t, name+" current again", func() bool { return replicas(name, "current") == 3 })
	for _, s := range last.Streams {
		if v := metricValue(t, h, "spillway_queue_store_replicas", "stream", s.Name, "state", "current"); v != 3 {
			t.Errorf("spillway_queue_store_replicas{stream=%s,state=current} = %v, want 3", s.Name, v)
		}
		if v := metricValue(t, h, "spillway_queue_store_replica_lag", "stream", s.Name, "replica", name); v < 0 {
			t.Errorf("no spillway_queue_store_replica_lag{stream=%s,replica=%s}", s.Name, name)
		}
	}
}
