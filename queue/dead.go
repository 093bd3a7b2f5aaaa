package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// deadFilter is the dead-letter subject filter of queue name ("" for all).
func (q *queueImpl) deadFilter(name string) string {
	if name == "" {
		return q.subjPrefix + "dead.>"
	}
	return q.subjPrefix + "dead." + name + ".>"
}

// toDead publishes the dead-letter copy of job j and waits for its
// acknowledgement. The message id makes a second copy of the same death
// (after a crash between this and the work message's ack) a duplicate.
// When the dead-letter stream is at its bound, the oldest letters are
// deleted until the copy fits; a copy that cannot fit even in an empty
// stream is not kept. dropped (if set) is told of each letter lost so.
// Either way toDead returns nil: the job may leave the work stream.
func (q *queueImpl) toDead(ctx context.Context, j *Job, r record, retention time.Duration, dropped func(queue, id string)) error {
	m := &nats.Msg{Subject: q.deadSubject(j.Queue, j.ID), Data: j.Data, Header: nats.Header{}}
	putUserHeader(m.Header, j.Header)
	if j.Key != "" {
		m.Header.Set(hdrKey, j.Key)
		m.Header.Set(hdrDigest, j.digest)
	}
	m.Header.Set(hdrEnqueued, j.Enqueued.UTC().Format(time.RFC3339Nano))
	m.Header.Set(hdrAttempts, strconv.Itoa(r.Attempts))
	m.Header.Set(hdrLastStatus, strconv.Itoa(r.LastStatus))
	m.Header.Set(hdrLastReason, r.LastReason)
	m.Header.Set(hdrDied, r.Updated.UTC().Format(time.RFC3339Nano))
	opts := []jetstream.PublishOpt{jetstream.WithMsgID("dead:" + j.ID + ":" + strconv.Itoa(r.Attempts))}
	if retention > 0 {
		opts = append(opts, jetstream.WithMsgTTL(retention))
	}
	if deadSize(m) > q.cfg.DeadLetterMaxBytes {
		q.droppedLetter(j.Queue, j.ID, "larger than the dead-letter stream's bound, not kept", dropped)
		return nil
	}
	for {
		err := q.publishDead(ctx, m, opts)
		if err == nil || !atStreamLimit(err) {
			return err
		}
		switch err := q.dropOldestDead(ctx, dropped); {
		case errors.Is(err, ErrNotFound):
			// Empty, and it still does not fit.
			q.droppedLetter(j.Queue, j.ID, "does not fit in the empty dead-letter stream, not kept", dropped)
			return nil
		case err != nil:
			return err
		}
	}
}

func (q *queueImpl) publishDead(ctx context.Context, m *nats.Msg, opts []jetstream.PublishOpt) error {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	if _, err := q.js.PublishMsg(ctx, m, opts...); err != nil {
		return q.publishError(err)
	}
	return nil
}

// deadSize estimates the bytes m takes in the dead-letter stream, as
// JetStream counts them against MaxBytes (its own record overhead, and
// the headers the publish options add, included).
func deadSize(m *nats.Msg) int64 {
	n := len(m.Subject) + len(m.Data) + 128
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return int64(n)
}

// atStreamLimit reports whether a publish was refused by the stream's own
// bound (MaxBytes or MaxMsgs, discard new), not by the server's or the
// account's: deleting letters of this stream makes room only then.
func atStreamLimit(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	d := strings.ToLower(apiErr.Description)
	return strings.Contains(d, "maximum bytes") || strings.Contains(d, "maximum messages")
}

// dropOldestDead deletes the oldest dead letter of any queue, to make room
// for a new one: ErrNotFound when there is none. A letter deleted by
// someone else meanwhile is not counted; the caller tries again.
func (q *queueImpl) dropOldestDead(ctx context.Context, dropped func(queue, id string)) error {
	m, err := q.nextDead(ctx, q.deadFilter(""), 1)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	err = q.dead.DeleteMsg(dctx, m.Sequence)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound), errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful):
		return nil
	case err != nil:
		return fmt.Errorf("%w: delete dead letter %d: %w", ErrUnavailable, m.Sequence, err)
	}
	d := deadLetterOf(m)
	q.droppedLetter(d.Queue, d.ID, "the oldest, deleted: the dead-letter stream is full", dropped)
	return nil
}

// droppedLetter logs a dead letter lost to the stream's bound and reports
// it to dropped.
func (q *queueImpl) droppedLetter(queue, id, why string, dropped func(queue, id string)) {
	q.log.Warn("queue: dead letter dropped: "+why, "queue", queue, "id", id,
		"max_bytes", q.cfg.DeadLetterMaxBytes, "max_messages", q.cfg.DeadLetterMaxMessages)
	if dropped != nil {
		dropped(queue, id)
	}
}

func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	h := m.Header
	attempts, _ := strconv.Atoi(h.Get(hdrAttempts))
	status, _ := strconv.Atoi(h.Get(hdrLastStatus))
	ttl, _ := time.ParseDuration(h.Get(jetstream.MsgTTLHeader))
	id := ""
	if i := len(m.Subject) - 32; i > 0 {
		id = m.Subject[i:]
	}
	return DeadLetter{
		Job: Job{
			ID:       id,
			Queue:    subjectQueue(m.Subject),
			Key:      h.Get(hdrKey),
			Header:   userHeader(h),
			Data:     m.Data,
			Attempt:  attempts,
			Enqueued: headerTime(h, hdrEnqueued),
			digest:   h.Get(hdrDigest),
		},
		Seq:        m.Sequence,
		Attempts:   attempts,
		LastStatus: status,
		LastReason: h.Get(hdrLastReason),
		Died:       headerTime(h, hdrDied),
		retention:  ttl,
	}
}

func (q *queueImpl) deadLetterByID(ctx context.Context, id string) (DeadLetter, error) {
	if !ValidID(id) {
		return DeadLetter{}, fmt.Errorf("%w: dead letter %q", ErrNotFound, id)
	}
	m, err := q.lastBySubject(ctx, q.dead, q.deadSubject("*", id))
	if err != nil {
		return DeadLetter{}, err
	}
	return deadLetterOf(m), nil
}

// nextDead returns the first dead letter of filter with a sequence >= seq.
func (q *queueImpl) nextDead(ctx context.Context, filter string, seq uint64) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	m, err := q.dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: dead letters: %w", ErrUnavailable, err)
	}
	return m, nil
}

func (q *queueImpl) deadLetters(ctx context.Context, name string, after uint64, limit int) ([]DeadLetter, uint64, error) {
	if name != "" && !validName(name) {
		return nil, 0, fmt.Errorf("queue: invalid queue name %q", name)
	}
	if limit <= 0 {
		limit = 100
	}
	filter := q.deadFilter(name)
	var page []DeadLetter
	seq := after + 1
	for len(page) < limit {
		m, err := q.nextDead(ctx, filter, seq)
		if errors.Is(err, ErrNotFound) {
			return page, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		page = append(page, deadLetterOf(m))
		seq = m.Sequence + 1
	}
	// A full page: is there anything after it?
	if _, err := q.nextDead(ctx, filter, seq); errors.Is(err, ErrNotFound) {
		return page, 0, nil
	} else if err != nil {
		return nil, 0, err
	}
	return page, seq - 1, nil
}

func (q *queueImpl) replay(ctx context.Context, id string) error {
	d, err := q.deadLetterByID(ctx, id)
	if err != nil {
		return err
	}
	return q.replayLetter(ctx, d)
}

// replayLetter resets d's status, publishes it back to its queue and then
// deletes the dead copy. Its message id is tied to the dead copy's
// sequence: a replay repeated after a crash stores one job, and a replay
// is never taken for a duplicate of the original idempotency key.
func (q *queueImpl) replayLetter(ctx context.Context, d DeadLetter) error {
	now := time.Now().UTC()
	r := record{Queue: d.Queue, State: StateQueued, Enqueued: d.Enqueued, Updated: now, Digest: d.digest}
	if err := q.putRecord(ctx, d.ID, r, d.retention); err != nil {
		return err
	}
	m := &nats.Msg{Subject: q.workSubject(d.Queue, d.ID), Data: d.Data, Header: nats.Header{}}
	putUserHeader(m.Header, d.Header)
	if d.Key != "" {
		m.Header.Set(hdrKey, d.Key)
		m.Header.Set(hdrDigest, d.digest)
	}
	m.Header.Set(hdrEnqueued, d.Enqueued.UTC().Format(time.RFC3339Nano))
	pctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	if _, err := q.js.PublishMsg(pctx, m, jetstream.WithMsgID("replay:"+d.ID+":"+strconv.FormatUint(d.Seq, 10))); err != nil {
		return q.publishError(err)
	}
	return q.deleteDead(ctx, d.Seq)
}

func (q *queueImpl) deleteDead(ctx context.Context, seq uint64) error {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	err := q.dead.DeleteMsg(ctx, seq)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return fmt.Errorf("%w: delete dead letter %d: %w", ErrUnavailable, seq, err)
	}
	return nil
}

func (q *queueImpl) replayAll(ctx context.Context, name string) (int, error) {
	n := 0
	var after uint64
	for {
		page, next, err := q.deadLetters(ctx, name, after, 100)
		if err != nil {
			return n, err
		}
		for _, d := range page {
			if err := q.replayLetter(ctx, d); err != nil {
				return n, err
			}
			n++
		}
		if next == 0 {
			return n, nil
		}
		after = next
	}
}

func (q *queueImpl) purge(ctx context.Context, id string) error {
	d, err := q.deadLetterByID(ctx, id)
	if err != nil {
		return err
	}
	return q.deleteDead(ctx, d.Seq)
}

func (q *queueImpl) purgeAll(ctx context.Context, name string) (int, error) {
	if name != "" && !validName(name) {
		return 0, fmt.Errorf("queue: invalid queue name %q", name)
	}
	n, err := q.countDead(ctx, name)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	if err := q.dead.Purge(ctx, jetstream.WithPurgeSubject(q.deadFilter(name))); err != nil {
		return 0, fmt.Errorf("%w: purge dead letters: %w", ErrUnavailable, err)
	}
	return n, nil
}

// countDead counts the dead letters of name ("" for all).
func (q *queueImpl) countDead(ctx context.Context, name string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	if name == "" {
		info, err := q.dead.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("%w: dead letters: %w", ErrUnavailable, err)
		}
		return int(info.State.Msgs), nil
	}
	return countSubjects(ctx, q.dead, q.deadFilter(name))
}

// countSubjects counts the messages of s under filter. Every job has a
// subject of its own, so this is the number of subjects the server lists.
func countSubjects(ctx context.Context, s jetstream.Stream, filter string) (int, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, fmt.Errorf("%w: stream info: %w", ErrUnavailable, err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n, nil
}
