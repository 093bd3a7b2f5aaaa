package queue

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/internal/natstest"
)

// TestHealthEmbedded: the embedded store reports each stream with one
// replica, its own server, leading and current.
func TestHealthEmbedded(t *testing.T) {
	q := openEmbedded(t, nil)
	h, err := q.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !h.Connected || h.Server != "spillway" || h.Reconnects != 0 {
		t.Errorf("connection: %+v", h)
	}
	want := []string{"T_JOBS", "T_DEAD", "KV_t_jobs"}
	if len(h.Streams) != len(want) {
		t.Fatalf("streams: %+v", h.Streams)
	}
	for i, s := range h.Streams {
		if s.Name != want[i] || s.Leader != "spillway" || s.Err != nil ||
			!slices.Equal(s.Replicas, []ReplicaHealth{{Name: "spillway", Leader: true, Current: true}}) {
			t.Errorf("stream %d: %+v, want %s led by spillway, one current replica", i, s, want[i])
		}
	}
	q.Close()
	if _, err := q.Health(t.Context()); err != ErrClosed {
		t.Errorf("Health after Close = %v, want ErrClosed", err)
	}
}

// replicaStates maps each stream of h to its replicas' states by server
// name ("" for a stream without a known leader).
func replicaStates(h Health) map[string]string {
	out := map[string]string{}
	for _, s := range h.Streams {
		states := map[string]string{}
		for _, r := range s.Replicas {
			states[r.Name] = r.State()
		}
		out[s.Name] = fmt.Sprint(states)
	}
	return out
}

// allStreams reports whether, for every stream of h, a leader is known and
// server (if not "") has state, every other replica being current.
func allStreams(h Health, server, state string) bool {
	for _, s := range h.Streams {
		if s.Leader == "" || len(s.Replicas) != 3 {
			return false
		}
		for _, r := range s.Replicas {
			want := ReplicaCurrent
			if r.Name == server {
				want = state
			}
			if r.State() != want {
				return false
			}
		}
	}
	return true
}

// TestHealthShowsAReplicaDown: on a 3-node cluster with replicas 3, every
// stream shows three current replicas; with one node shut down, that
// node's replica of each stream shows offline while the stream keeps a
// leader; once it is back and has caught up, current again.
func TestHealthShowsAReplicaDown(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	openCtx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, err := Open(openCtx, Config{Servers: c.URLs(), Replicas: 3, Prefix: "HEALTH", Timeout: time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var h Health
	health := func() Health {
		var err error
		if h, err = q.Health(t.Context()); err != nil {
			t.Fatal(err)
		}
		return h
	}
	within(t, 20*time.Second, "three current replicas of every stream", func() bool { return allStreams(health(), "", "") })

	// Shut down a node the connection is not on: the test watches the
	// cluster, not a reconnection.
	down := (c.Index(h.Server) + 1) % 3
	name := fmt.Sprintf("n%d", down+1)
	c.Stop(down)
	within(t, 30*time.Second, name+" offline in every stream", func() bool { return allStreams(health(), name, ReplicaOffline) })
	t.Logf("with %s down: %v", name, replicaStates(h))

	c.Restart(down)
	within(t, 30*time.Second, name+" current again in every stream", func() bool { return allStreams(health(), "", "") })
	for _, s := range h.Streams {
		if s.Replicas[0].Name != s.Leader || !s.Replicas[0].Leader {
			t.Errorf("stream %s: the leader %s is not listed first: %+v", s.Name, s.Leader, s.Replicas)
		}
	}
}

func TestReplicaState(t *testing.T) {
	for _, tt := range []struct {
		r    ReplicaHealth
		want string
	}{
		{ReplicaHealth{Leader: true, Current: true}, ReplicaCurrent},
		{ReplicaHealth{Current: true}, ReplicaCurrent},
		{ReplicaHealth{Lag: 12, Active: time.Minute}, ReplicaLagging},
		{ReplicaHealth{Offline: true, Current: true}, ReplicaOffline},
	} {
		if got := tt.r.State(); got != tt.want {
			t.Errorf("%+v: State() = %s, want %s", tt.r, got, tt.want)
		}
	}
}
