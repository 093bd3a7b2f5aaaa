package sharedlimit

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// run writes the heartbeats until Close.
func (l *Limiter) run() {
	defer close(l.done)
	t := time.NewTicker(l.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			// On its share, NATS did not answer the last time: closing
			// does not wait for it again (a gateway closes its limits one
			// after the other).
			if l.shared.Load() {
				l.leave()
			}
			return
		case <-t.C:
			l.tick()
		}
	}
}

// tick opens the bucket if it is not open, writes the heartbeat, and
// moves the limiter to sharing when NATS answered within LeaseTimeout, to
// its local share when it did not answer.
func (l *Limiter) tick() {
	ctx, cancel := context.WithTimeout(context.Background(), l.beatTimeout())
	defer cancel()
	if l.kv.Load() == nil {
		if err := l.open(ctx); err != nil {
			if !errors.Is(err, errUnavailable) {
				l.log.Error("sharedlimit: cannot share the limit", "route", l.cfg.Route, "error", err)
			}
			l.toFallback(err)
			return
		}
	}
	start := time.Now()
	if err := l.beat(ctx); err != nil {
		// Open it again next time: a cluster that restarted lost it.
		l.kv.Store(nil)
		l.toFallback(err)
		return
	}
	// A heartbeat is a lease's two round trips: one slower than a lease
	// may take says that leases would time out, and the replica would go
	// back and forth.
	if time.Since(start) <= l.cfg.LeaseTimeout {
		l.toShared()
	}
}

// beats are the live replicas of a route, stored in one entry: each
// replica's ID and the Unix milliseconds of its last heartbeat.
type beats map[string]int64

// beat records this replica's heartbeat, drops the replicas silent for
// three heartbeats, and counts the rest.
func (l *Limiter) beat(ctx context.Context) error {
	return l.updateBeats(ctx, func(b beats) {
		now := l.cfg.Now()
		live := now.Add(-3 * l.cfg.Heartbeat).UnixMilli()
		for id, at := range b {
			if at < live {
				delete(b, id)
			}
		}
		b[l.cfg.ID] = now.UnixMilli()
	})
}

// leave removes this replica's heartbeat, so that the others count it out
// at once rather than after three heartbeats.
func (l *Limiter) leave() {
	if l.kv.Load() == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.beatTimeout())
	defer cancel()
	_ = l.updateBeats(ctx, func(b beats) { delete(b, l.cfg.ID) })
}

// updateBeats applies change to the heartbeats with a compare-and-swap,
// and keeps their count.
func (l *Limiter) updateBeats(ctx context.Context, change func(beats)) error {
	ref := l.kv.Load()
	if ref == nil {
		return errUnavailable
	}
	for range casAttempts {
		b, rev := beats{}, uint64(0)
		switch e, err := ref.kv.Get(ctx, l.hbKey); {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			rev = e.Revision()
			if json.Unmarshal(e.Value(), &b) != nil || b == nil { // a damaged entry is rewritten
				b = beats{}
			}
		}
		change(b)
		v, _ := json.Marshal(b)
		err := put(ctx, ref.kv, l.hbKey, v, rev)
		if err == nil {
			l.n.Store(int64(max(1, len(b))))
			return nil
		}
		if !conflict(err) {
			return err
		}
	}
	return nil // the others are writing theirs: NATS answers
}
