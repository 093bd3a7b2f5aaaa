package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Health is the state of the store as the queue's connection sees it: the
// server it is on and, for each stream the queue uses, the stream's leader
// and replicas.
type Health struct {
	// Connected reports whether the connection is up; Server names the
	// NATS server it is on ("" while it is not).
	Connected bool
	Server    string
	// Reconnects counts the times the connection moved to a server since
	// Open (0 for the embedded store).
	Reconnects uint64
	// Streams are the work stream, the dead-letter stream and the status
	// bucket's stream, in that order.
	Streams []StreamHealth
}

// StreamHealth is the replication state of one stream, as its leader
// reports it.
type StreamHealth struct {
	Name string // the stream's name: PREFIX_JOBS, PREFIX_DEAD, KV_prefix_jobs
	// Leader is the server that leads the stream; "" when none is known
	// (no quorum, an election under way, or the state could not be read:
	// then Err says why). Without a leader the stream takes no write.
	Leader string
	// Replicas are the servers that hold the stream, the leader first,
	// then the others by name; empty when no leader is known.
	Replicas []ReplicaHealth
	// Err is why the state could not be read; nil when it was.
	Err error
}

// ReplicaHealth is one server holding a copy of a stream.
type ReplicaHealth struct {
	Name   string // the server's name (its peer id while the name is unknown)
	Leader bool
	// Current: the replica has every operation the leader committed and was
	// heard from recently. Offline: the cluster sees the server as gone.
	// A replica neither current nor offline is lagging: it cannot take the
	// place of a lost node until it has caught up.
	Current bool
	Offline bool
	// Lag is how many operations the replica is behind the leader, and
	// Active how long ago the leader last heard from it (0 for the leader).
	Lag    uint64
	Active time.Duration
}

// The states of a replica, as Health's figures and the gateway's metrics
// count them.
const (
	ReplicaCurrent = "current"
	ReplicaLagging = "lagging"
	ReplicaOffline = "offline"
)

// State is ReplicaCurrent, ReplicaLagging or ReplicaOffline.
func (r ReplicaHealth) State() string {
	switch {
	case r.Offline:
		return ReplicaOffline
	case r.Current:
		return ReplicaCurrent
	}
	return ReplicaLagging
}

// Health reads the state of the store: the connection's server, and the
// state of each stream from its leader, each stream within Timeout and
// all at once, so that a stuck store costs one Timeout (or ctx, if it ends
// first). A stream whose state cannot be read has its Err set; the call
// itself fails only when the queue is closed. The embedded store reports
// one replica per stream, its own server, always the leader.
func (q *Queue) Health(ctx context.Context) (Health, error) { return q.q.health(ctx) }

func (q *queueImpl) health(ctx context.Context) (Health, error) {
	if q.isClosed() {
		return Health{}, ErrClosed
	}
	h := Health{Connected: q.nc.IsConnected(), Server: q.nc.ConnectedServerName()}
	if q.srv == nil {
		h.Reconnects = q.nc.Stats().Reconnects
	}
	names := []string{q.workName, q.deadName, "KV_" + q.bucket}
	h.Streams = make([]StreamHealth, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { h.Streams[i] = q.streamHealth(ctx, name) })
	}
	wg.Wait()
	return h, nil
}

// streamHealth reads one stream's replication state from its leader.
func (q *queueImpl) streamHealth(ctx context.Context, name string) StreamHealth {
	sh := StreamHealth{Name: name}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	st, err := q.js.Stream(ctx, name)
	if err != nil {
		sh.Err = fmt.Errorf("%w: stream %s: %w", ErrUnavailable, name, err)
		return sh
	}
	ci := st.CachedInfo().Cluster
	if ci == nil || ci.Leader == "" {
		sh.Err = fmt.Errorf("%w: stream %s: %w", ErrUnavailable, name, errNoLeader)
		return sh
	}
	sh.Leader = ci.Leader
	sh.Replicas = append(sh.Replicas, ReplicaHealth{Name: ci.Leader, Leader: true, Current: true})
	for _, p := range ci.Replicas {
		sh.Replicas = append(sh.Replicas, ReplicaHealth{Name: peerName(p), Current: p.Current, Offline: p.Offline,
			Lag: p.Lag, Active: p.Active})
	}
	slices.SortFunc(sh.Replicas[1:], func(a, b ReplicaHealth) int { return strings.Compare(a.Name, b.Name) })
	return sh
}

// errNoLeader: the stream answered without naming a leader.
var errNoLeader = errors.New("no leader")

// peerName is a replica's server name, or its peer id while the leader
// does not know the name (it then says so in a sentence, which would make
// a poor label).
func peerName(p *jetstream.PeerInfo) string {
	if p.Name == "" || strings.Contains(p.Name, " ") {
		return p.Peer
	}
	return p.Name
}
