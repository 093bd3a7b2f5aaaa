package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func (q *queueImpl) stats(ctx context.Context, name string) (Stats, error) {
	if !validName(name) {
		return Stats{}, fmt.Errorf("queue: invalid queue name %q", name)
	}
	if q.isClosed() {
		return Stats{}, ErrClosed
	}
	var st Stats
	ictx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	// The work stream keeps only pending jobs (work-queue retention): the
	// consumer's counts are this queue's, without listing subjects.
	info, err := q.work.Consumer(ictx, name)
	switch {
	case err == nil:
		ci := info.CachedInfo()
		st.Pending = int(ci.NumPending) + ci.NumAckPending
		st.InFlight = ci.NumAckPending
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		// No worker yet: count what is stored.
		if st.Pending, err = countSubjects(ictx, q.work, q.workSubject(name, ">")); err != nil {
			return Stats{}, err
		}
	default:
		return Stats{}, fmt.Errorf("%w: consumer %s: %w", ErrUnavailable, name, err)
	}
	if st.DeadLetters, err = q.countDead(ctx, name); err != nil {
		return Stats{}, err
	}
	if st.Pending > 0 {
		m, err := q.work.GetMsg(ictx, 1, jetstream.WithGetMsgSubject(q.workSubject(name, ">")))
		switch {
		case err == nil:
			st.OldestPendingAge = max(time.Since(m.Time), 0)
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return Stats{}, fmt.Errorf("%w: oldest job of %s: %w", ErrUnavailable, name, err)
		}
	}
	return st, nil
}
