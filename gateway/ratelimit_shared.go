package gateway

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/async"
	"github.com/spillway-dev/spillway/gateway/sharedlimit"
	"github.com/spillway-dev/spillway/ratelimit"
)

// sharedBucketBytes bounds each key-value bucket of the shared rate limits
// (about 60,000 keys of 130 bytes): a bucket that is full refuses new
// keys' leases, and the replicas fall back to their share until entries
// expire.
const sharedBucketBytes = 8 << 20

// sharedLeaseTimeout is the shared limits' LeaseTimeout; 0: sharedlimit's
// default. Tests on a loaded machine raise it (SetSharedLeaseTimeout).
var sharedLeaseTimeout time.Duration

// sharedBucket is the key-value bucket of the queue's store where a shared
// limit whose buckets refill in refill keeps them, and how long an idle
// entry lives there: <prefix>_ratelimit_1m for the limits that refill
// within a minute (most: per second), <prefix>_ratelimit_1h for the others
// (validate refuses a longer refill). An entry only has to outlive its
// refill (gone, it reads as a full bucket); the shorter TTL keeps the
// per-second limits' memory to the clients of the last minute.
func sharedBucket(refill time.Duration) (name string, ttl time.Duration) {
	if refill <= time.Minute {
		return "ratelimit_1m", time.Minute
	}
	return "ratelimit_1h", config.SharedLimitTTL
}

// NeedsQueue reports whether cfg needs the queue's store: it has an async
// route or a rate limit shared between replicas.
func NeedsQueue(cfg *config.Config) bool {
	if async.HasAsync(cfg) {
		return true
	}
	for _, r := range cfg.Routes {
		if r.RateLimit != nil && r.RateLimit.Shared {
			return true
		}
	}
	return false
}

// newSharedLimit builds route rc's limit shared with the gateway's other
// replicas through the queue's NATS cluster. While NATS does not answer it
// falls back to local, rc's own buckets, when it counted no other replica,
// and to a 1/n share of them (Per × n, ⌈burst/n⌉) when it counted n.
func (g *Gateway) newSharedLimit(rc *config.Route, local *ratelimit.Keyed) (*sharedlimit.Limiter, error) {
	q, rl, kc := g.opts.Queue, rc.RateLimit, local.Config()
	bucket, ttl := sharedBucket(time.Duration(rl.Burst) * rl.Rate.Per / time.Duration(rl.Rate.N))
	return sharedlimit.New(sharedlimit.Config{
		Open: func(ctx context.Context) (jetstream.KeyValue, error) {
			return q.KeyValue(ctx, bucket, ttl, sharedBucketBytes)
		},
		Route:   rc.Name,
		Rate:    float64(rl.Rate.N) / rl.Rate.Per.Seconds(),
		Burst:   rl.Burst,
		MaxKeys: kc.MaxKeys,
		Fallback: func(n int) (sharedlimit.KeyLimiter, error) {
			if n == 1 {
				return local, nil
			}
			share := kc
			share.Per *= time.Duration(n)
			_, share.Burst = sharedlimit.Share(0, kc.Burst, n)
			return ratelimit.NewKeyed(share)
		},
		LeaseTimeout: sharedLeaseTimeout,
		Logger:       g.opts.Logger,
	})
}
