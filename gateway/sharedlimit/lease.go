package sharedlimit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// casAttempts bounds the compare-and-swap attempts of one lease or
// heartbeat: each conflict is another replica's write, which NATS
// answered.
const casAttempts = 4

// errUnavailable marks a bucket that cannot be opened now (NATS does not
// answer), as opposed to one that is configured wrong.
var errUnavailable = errors.New("sharedlimit: bucket unavailable")

// open opens the bucket and checks that its entries live long enough.
func (l *Limiter) open(ctx context.Context) error {
	kv, err := l.cfg.Open(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	// An entry that expires is a full bucket: that is only true once the
	// refill time has passed since its last write.
	refill := time.Duration(float64(l.cfg.Burst) / l.cfg.Rate * float64(time.Second))
	if ttl := st.TTL(); ttl > 0 && ttl < refill {
		return fmt.Errorf("sharedlimit: route %s: bucket %s keeps entries %v, less than the refill time burst/rate %v: "+
			"an idle key would come back full too early", l.cfg.Route, st.Bucket(), ttl, refill)
	}
	l.kv.Store(&kvRef{kv})
	return nil
}

// state is one bucket as stored: its tokens at a time (Unix nanoseconds
// of the writer's wall clock). 16 bytes: the float64's bits and the time,
// big-endian.
type state struct {
	tokens float64
	at     int64
}

func (s state) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, math.Float64bits(s.tokens))
	binary.BigEndian.PutUint64(b[8:], uint64(s.at))
	return b
}

// decode reads a stored state; anything else reads as a full bucket.
func decode(b []byte, burst float64) state {
	if len(b) != 16 {
		return state{tokens: burst}
	}
	s := state{tokens: math.Float64frombits(binary.BigEndian.Uint64(b)), at: int64(binary.BigEndian.Uint64(b[8:]))}
	if math.IsNaN(s.tokens) || s.tokens < 0 || s.tokens > burst {
		return state{tokens: burst}
	}
	return s
}

// refill counts the tokens at now. A time before the stored one (another
// replica's clock is ahead) counts as no time: the stored time is kept, so
// that skew never refills a bucket twice.
func (s state) refill(now time.Time, rate, burst float64) state {
	t := now.UnixNano()
	if t <= s.at {
		return s
	}
	return state{tokens: min(burst, s.tokens+rate*float64(t-s.at)/1e9), at: t}
}

// until is how long the bucket takes to hold want tokens.
func (s state) until(want, rate float64) time.Duration {
	return time.Duration(math.Ceil((want - s.tokens) / rate * 1e9))
}

// grant is the size of a lease out of tokens for n replicas that want
// batches of want: at most want, at most 1/n of the tokens (so that a
// bucket running low is shared out rather than taken by the first
// replica), at least 1 when the bucket has one.
func grant(tokens float64, want, n int64) int64 {
	avail := int64(tokens)
	if avail < 1 {
		return 0
	}
	return min(want, max(1, avail/n), avail)
}

// leaseSize is the batch a replica asks for: a quarter of the burst
// shared out among the live replicas, at least 1.
func (l *Limiter) leaseSize(n int64) int64 { return max(1, int64(l.cfg.Burst)/(4*n)) }

// lease takes a batch of tokens from key's bucket. got is 0 when the
// bucket is empty; wait is then how long until it holds a batch again.
// An error means NATS did not answer within LeaseTimeout.
func (l *Limiter) lease(kv jetstream.KeyValue, key string) (got int, wait time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.LeaseTimeout)
	defer cancel()
	k := l.stateKey(key)
	n := l.n.Load()
	want := l.leaseSize(n)
	rate, burst := l.cfg.Rate, float64(l.cfg.Burst)
	for range casAttempts {
		var s state
		var rev uint64
		switch e, err := kv.Get(ctx, k); {
		case errors.Is(err, jetstream.ErrKeyNotFound): // never written, or expired: full
			s = state{tokens: burst}
		case err != nil:
			return 0, 0, err
		default:
			s, rev = decode(e.Value(), burst), e.Revision()
		}
		s = s.refill(l.cfg.Now(), rate, burst)
		take := grant(s.tokens, want, n)
		if take == 0 {
			return 0, s.until(float64(want), rate), nil
		}
		s.tokens -= float64(take)
		if err := put(ctx, kv, k, s.encode(), rev); err == nil {
			return int(take), 0, nil
		} else if !conflict(err) {
			return 0, 0, err
		}
	}
	// Every attempt lost to another replica's lease: NATS answers, the
	// bucket is busy. Refuse this one for the time of a token.
	return 0, time.Duration(1e9 / rate), nil
}

// stateKey is the entry of key's bucket: the route's prefix and a hash of
// the key (a client's key can hold any byte; an entry's name cannot).
func (l *Limiter) stateKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return l.prefix + hex.EncodeToString(sum[:16])
}

// put writes value as key's next revision after rev (0: a new key).
func put(ctx context.Context, kv jetstream.KeyValue, key string, value []byte, rev uint64) error {
	var err error
	if rev == 0 {
		_, err = kv.Create(ctx, key, value)
	} else {
		_, err = kv.Update(ctx, key, value, rev)
	}
	return err
}

// conflict reports a compare-and-swap that lost to another writer.
func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}
