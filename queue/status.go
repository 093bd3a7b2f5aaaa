package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// record is a job's entry in the status bucket (keyed by id).
type record struct {
	Queue       string    `json:"queue"`
	State       State     `json:"state"`
	Attempts    int       `json:"attempts"`
	LastStatus  int       `json:"last_status,omitempty"`
	LastReason  string    `json:"last_reason,omitempty"`
	Enqueued    time.Time `json:"enqueued"`
	Updated     time.Time `json:"updated"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Digest is the job's hdrDigest, kept here for the duplicates that
	// come once the job has left the work stream.
	Digest string `json:"digest,omitempty"`
}

func (r record) status(id string) Status {
	return Status{ID: id, Queue: r.Queue, State: r.State, Attempts: r.Attempts, LastStatus: r.LastStatus,
		LastReason: r.LastReason, Enqueued: r.Enqueued, Updated: r.Updated, NextAttempt: r.NextAttempt}
}

// recordMsg builds the bucket message of r, living for ttl.
func (q *queueImpl) recordMsg(id string, r record, ttl time.Duration) *nats.Msg {
	b, _ := json.Marshal(r)
	m := &nats.Msg{Subject: "$KV." + q.bucket + "." + id, Data: b, Header: nats.Header{}}
	if ttl > 0 {
		m.Header.Set(jetstream.MsgTTLHeader, strconv.FormatInt(int64((ttl+time.Second-1)/time.Second), 10)+"s")
	}
	return m
}

// putRecord writes r and waits for the store's acknowledgement.
func (q *queueImpl) putRecord(ctx context.Context, id string, r record, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	if _, err := q.js.PublishMsg(ctx, q.recordMsg(id, r, ttl)); err != nil {
		return q.publishError(err)
	}
	return nil
}

// sendRecord writes r without waiting: it costs no round trip, and a lost
// write only makes the status lag (the worker does not depend on it for
// correctness beyond attempt counting).
func (q *queueImpl) sendRecord(id string, r record, ttl time.Duration) {
	if err := q.nc.PublishMsg(q.recordMsg(id, r, ttl)); err != nil {
		q.log.Debug("queue: status write failed", "id", id, "error", err)
	}
}

// getRecord reads the record of id; found is false when there is none.
func (q *queueImpl) getRecord(ctx context.Context, id string) (r record, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	e, err := q.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, fmt.Errorf("%w: status of %s: %w", ErrUnavailable, id, err)
	}
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return record{}, false, fmt.Errorf("queue: status of %s: %w", id, err)
	}
	return r, true, nil
}

func (q *queueImpl) status(ctx context.Context, id string) (Status, error) {
	if !ValidID(id) {
		return Status{}, fmt.Errorf("%w: job %q", ErrNotFound, id)
	}
	if q.isClosed() {
		return Status{}, ErrClosed
	}
	r, found, err := q.getRecord(ctx, id)
	if err != nil {
		return Status{}, err
	}
	if found {
		return r.status(id), nil
	}
	// Not handled yet: the job waits in the work stream, its subject ends
	// with its id.
	m, err := q.lastBySubject(ctx, q.work, q.workSubject("*", id))
	if err == nil {
		name := subjectQueue(m.Subject)
		enq := headerTime(m.Header, hdrEnqueued)
		return Status{ID: id, Queue: name, State: StateQueued, Enqueued: enq, Updated: enq}, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Status{}, err
	}
	// A worker may have taken the job between the two reads: it writes
	// the job's record before it removes the job from the work stream, so
	// a second read of the record finds it.
	if r, found, err := q.getRecord(ctx, id); err != nil {
		return Status{}, err
	} else if found {
		return r.status(id), nil
	}
	d, err := q.deadLetterByID(ctx, id)
	if err != nil {
		return Status{}, err
	}
	return Status{ID: id, Queue: d.Queue, State: StateDead, Attempts: d.Attempts, LastStatus: d.LastStatus,
		LastReason: d.LastReason, Enqueued: d.Enqueued, Updated: d.Died}, nil
}

// lastBySubject returns the last message of s on subject (which may hold
// a '*' wildcard), ErrNotFound if there is none.
func (q *queueImpl) lastBySubject(ctx context.Context, s jetstream.Stream, subject string) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, subject)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: get %s: %w", ErrUnavailable, subject, err)
	}
	return m, nil
}

// subjectQueue extracts the queue name of "<prefix>.<kind>.<queue>.<id>".
func subjectQueue(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) < 4 {
		return ""
	}
	return parts[len(parts)-2]
}
