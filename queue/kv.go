package queue

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KeyValue creates, or updates, the key-value bucket <prefix>_<name> on
// the queue's store and returns it: state of the gateway that several
// replicas share through the cluster the queue already uses (the shared
// rate limits of package gateway/sharedlimit), without a store of its own.
//
// The bucket keeps one value per key (no history) in memory, with the
// queue's Replicas: its state is cheap to rebuild and written often, so it
// pays no disk write, and it is gone when every server holding it
// restarts (the caller opens it again). Each key expires ttl after its last
// write (0: never); maxBytes bounds the bucket, writes past it are refused
// (0: unbounded, which an embedded store's MaxMemory still bounds). name is
// made of letters, digits, '-' and '_'. Attempts are retried as Open's
// setup steps are, until ctx ends; errors wrap ErrUnavailable.
func (q *Queue) KeyValue(ctx context.Context, name string, ttl time.Duration, maxBytes int64) (jetstream.KeyValue, error) {
	if !validName(name) {
		return nil, fmt.Errorf("queue: invalid bucket name %q: use letters, digits, '-' and '_'", name)
	}
	if maxBytes <= 0 {
		maxBytes = -1
	}
	bucket := strings.ToLower(q.q.cfg.Prefix) + "_" + name
	var kv jetstream.KeyValue
	err := retrySetup(ctx, q.q.cfg.Timeout, func(ctx context.Context) (err error) {
		kv, err = q.q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:   bucket,
			History:  1,
			TTL:      ttl,
			MaxBytes: maxBytes,
			Storage:  jetstream.MemoryStorage,
			Replicas: q.q.cfg.Replicas,
		})
		return err
	})
	if err != nil {
		return nil, q.q.redactErr(fmt.Errorf("queue: create bucket %s: %w: %w", bucket, ErrUnavailable, err))
	}
	return kv, nil
}
