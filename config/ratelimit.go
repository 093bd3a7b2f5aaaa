package config

import (
	"strconv"
	"strings"
	"time"

	"github.com/spillway-dev/spillway/ratelimit"
)

// RateLimit caps how often a route's clients may call it (keys under
// rate_limit:): a token bucket per client key, Rate.N tokens per Rate.Per,
// Burst at most at once.
type RateLimit struct {
	// Rate is the average rate (rate: N/s, N/m or N/h; required, N >= 1).
	Rate Rate
	// Burst is how many requests a client may send at once after a quiet
	// spell (burst, default: the rate's N, a period's worth).
	Burst int
	// Key says whose bucket a request takes from (key): RateLimitClientIP
	// (client_ip, the default: the TCP peer's address, never a header a
	// client can forge), RateLimitRoute (route: one bucket for the whole
	// route) or "header:NAME" (the header's value, canonical NAME; the
	// requests without it share one bucket).
	Key string
	// MaxKeys bounds the keys tracked at once (max_keys, default 100000);
	// ignored for key: route.
	MaxKeys int
	// A limit shared by the gateway's replicas through the queue's NATS
	// cluster (shared:) is issue 16's next step; it adds its keys here.
}

// The values of RateLimit.Key that are not a header.
const (
	RateLimitClientIP = "client_ip"
	RateLimitRoute    = "route"
)

// Rate is a rate limit's average: N requests per Per.
type Rate struct {
	N   int
	Per time.Duration
}

// ratePeriods are the units a rate may be written per, by suffix.
var ratePeriods = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}

// String writes r as the file does: 100/s.
func (r Rate) String() string {
	unit := "s"
	for u, d := range ratePeriods {
		if d == r.Per {
			unit = u
		}
	}
	return strconv.Itoa(r.N) + "/" + unit
}

// Header returns the header whose value keys the buckets, and whether the
// key is a header.
func (rl *RateLimit) Header() (string, bool) {
	return strings.CutPrefix(rl.Key, "header:")
}

// LimitConfig is the configuration of the route's buckets. The gateway
// sets its Name (the route's).
func (rl *RateLimit) LimitConfig() ratelimit.KeyedConfig {
	maxKeys := rl.MaxKeys
	if rl.Key == RateLimitRoute {
		maxKeys = 1
	}
	return ratelimit.KeyedConfig{Config: ratelimit.Config{Limit: rl.Rate.N, Per: rl.Rate.Per, Burst: rl.Burst}, MaxKeys: maxKeys}
}

// rateLimitDefaults is the section before the file's keys: burst follows
// the rate (decoder.route) when not written.
func rateLimitDefaults() *RateLimit {
	return &RateLimit{Key: RateLimitClientIP, MaxKeys: ratelimit.DefaultMaxKeys}
}

// limitRate accepts N/s, N/m or N/h with N >= 1.
func (d *decoder) limitRate(f field, dst *Rate) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(num), "_", ""))
	per, known := ratePeriods[strings.TrimSpace(unit)]
	switch {
	case err != nil || !known:
		d.errorf(f.node(), f.path, "%s: %q is not a rate: write N/s, N/m or N/h (such as 100/s)", key(f.path), s)
	case n < 1:
		d.errorf(f.node(), f.path, "%s: %s admits no request: N must be at least 1 (remove rate_limit: for no limit)", key(f.path), s)
	default:
		*dst = Rate{N: n, Per: per}
	}
}

// limitKey accepts client_ip, route or header:NAME (NAME kept canonical).
func (d *decoder) limitKey(f field, dst *string) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	switch name, isHeader := headerName(s); {
	case s == RateLimitClientIP || s == RateLimitRoute:
		*dst = s
	case isHeader:
		*dst = "header:" + name
	default:
		d.errorf(f.node(), f.path, "%s: %q is not one of client_ip, route or header:NAME (such as header:X-Api-Key)", key(f.path), s)
	}
}

// validateRateLimit checks a route's rate_limit: rate is required, and the
// buckets it makes must be ones the ratelimit package builds (the gateway
// builds the same).
func (d *decoder) validateRateLimit(r *Route, rp, label string) {
	rl := r.RateLimit
	d.required(rp, "rate_limit", "rate", label, rl.Rate.N == 0)
	if rl.Rate.N == 0 {
		return
	}
	if _, err := ratelimit.New(rl.LimitConfig().Config); err != nil {
		// Only a burst whose refill takes more than a century fails.
		d.errPath(rp+".rate_limit.burst", "%s: rate_limit: burst %d at %s takes too long to refill (more than 100 years)", label, rl.Burst, rl.Rate)
	}
	if pos, ok := d.set[rp+".rate_limit.max_keys"]; ok && rl.Key == RateLimitRoute {
		d.warnAt(pos, rp+".rate_limit.max_keys", "%s: rate_limit.max_keys is ignored: key: route has one bucket", label)
	}
}

// rateLimitBurst gives a rate limit without burst: a period's worth.
func rateLimitBurst(rl *RateLimit, y *rateLimitYAML) {
	if y.Burst.f == nil {
		rl.Burst = rl.Rate.N
	}
}
