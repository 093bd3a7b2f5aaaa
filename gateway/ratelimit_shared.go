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

// The key-value bucket of the queue's store where the shared rate limits
// (rate_limit.shared) keep their buckets: <prefix>_ratelimit, in memory,
// each entry kept config.SharedLimitTTL after its last write, and bounded
// (a bucket that is full refuses new keys' leases: their replicas fall
// back to their share until entries expire).
const (
	sharedBucket      = "ratelimit"
	sharedBucketBytes = 32 << 20
)

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
	return sharedlimit.New(sharedlimit.Config{
		Open: func(ctx context.Context) (jetstream.KeyValue, error) {
			return q.KeyValue(ctx, sharedBucket, config.SharedLimitTTL, sharedBucketBytes)
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
		Logger: g.opts.Logger,
	})
}
