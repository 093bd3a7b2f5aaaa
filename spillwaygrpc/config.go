package spillwaygrpc

import (
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/internal/gauges"
	"github.com/spillway-dev/spillway/internal/keyed"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

// DefaultAttemptTimeout is the attempt timeout of DefaultDownstream: the
// brief's 5 s per attempt.
const DefaultAttemptTimeout = 5 * time.Second

// DefaultMaxReplay is the Config.MaxReplay of a zero Config.
const DefaultMaxReplay = 16

// Downstream holds the policies of one downstream, shared by every call keyed
// to it. Any field may be nil to go without that policy. The retry policy's
// budget is the downstream's retry budget: give each Downstream a Policy with
// a budget of its own (retry.Config's default) or a Budget shared on purpose.
//
// The breaker should keep breaker.DefaultClassify: the interceptors classify
// status codes themselves (Config.Classify) and release the breaker's permit
// with nil for a success, with a spillway.ErrCallerDone-marked error for an
// ignored outcome, and with the call's error for a failure.
type Downstream struct {
	Breaker  *breaker.Breaker
	Retry    *retry.Policy
	Bulkhead *bulkhead.Bulkhead
	// Attempt bounds each attempt of a unary call. Streams do not use it.
	Attempt *timeout.Timeout
}

// DefaultDownstream returns the brief's policies for key, each named key and
// reporting to obs (nil: no events): breaker.Config{}, retry.Config{} (3
// attempts, 100 ms to 5 s exponential backoff with full jitter, a budget of
// its own), bulkhead.Config{} (100 concurrent calls, no queue) and
// DefaultAttemptTimeout. A Config.NewDownstream that adjusts the defaults
// calls it with the observer it was given, so that no event is lost.
func DefaultDownstream(key string, obs spillway.Observer) (*Downstream, error) {
	b, err := breaker.New(breaker.Config{Name: key, Observer: obs})
	if err != nil {
		return nil, err
	}
	r, err := retry.New(retry.Config{Name: key, Observer: obs})
	if err != nil {
		return nil, err
	}
	bh, err := bulkhead.New(bulkhead.Config{Name: key, Observer: obs})
	if err != nil {
		return nil, err
	}
	t, err := timeout.New(timeout.Config{Name: key, Duration: DefaultAttemptTimeout, Observer: obs})
	if err != nil {
		return nil, err
	}
	return &Downstream{Breaker: b, Retry: r, Bulkhead: bh, Attempt: t}, nil
}

// Config configures the client interceptors. The zero value of every field
// means its default. DialOptions installs both interceptors over one set of
// downstreams; each call to UnaryClientInterceptor or
// StreamClientInterceptor makes an interceptor with downstreams of its own
// (to share them, NewDownstream must return the same Downstream for a key;
// with an Observer that registers gauges, two interceptors making their own
// policies under one key fail on the second's registration).
type Config struct {
	// Key names the downstream a call belongs to. Default: cc.Target(),
	// which is also the key of a call for which Key returns "", so that
	// every downstream has a name its policies and gauges can carry. Keys
	// must come from a small, fixed set (targets, services, methods): each
	// key keeps its Downstream for the interceptor's life.
	Key func(cc *grpc.ClientConn, method string) string
	// NewDownstream creates the policies of a key, once, on the key's first
	// call, reporting to obs (the Config's Observer, which its policies
	// should get as their Config.Observer). Default DefaultDownstream. An
	// error fails that call with an INTERNAL status, and the next call tries
	// again.
	NewDownstream func(key string, obs spillway.Observer) (*Downstream, error)
	// Classify says how a call's error counts for the breaker (nil is never
	// passed). Default Classify. It must be safe for concurrent use.
	Classify func(err error) spillway.Outcome
	// Retryable says whether a call's error may be retried; the retry policy's
	// safe defaults still apply (no retry of rejections or after the caller's
	// context ended). Default Retryable. It must be safe for concurrent use.
	Retryable func(err error) bool
	// MaxReplay is how many sent messages a stream keeps so that it can be
	// opened again and replayed; a stream that sent more is not retried.
	// Default DefaultMaxReplay; negative means none (a stream is retried only
	// when it cannot be opened, never once it is open).
	MaxReplay int
	// Observer receives an EventAttempt (Policy "grpc", Name the key) per
	// attempt of a unary call and per attempt to open a stream, as a
	// spillway.Pipeline and a spillwayhttp.Transport report theirs;
	// NewDownstream gets it for the downstreams' policies. When it has a
	// method Register(policies ...any) error, as *spillwayprom.Metrics and
	// *spillwayotel.Observer have (in a spillway.Observers too), each new
	// downstream's breaker, bulkhead and retry budget are registered with
	// it, so that their gauges are exported; a registration error (another
	// policy under the same name) fails the call as NewDownstream's would.
	// Default nil.
	Observer spillway.Observer
}

// client is the state behind one interceptor.
type client struct {
	key             func(cc *grpc.ClientConn, method string) string
	newDownstreamOf func(key string, obs spillway.Observer) (*Downstream, error)
	classify        func(error) spillway.Outcome
	retryable       func(error) bool
	maxReplay       int
	obs             spillway.Observer

	// downstreams holds the downstreams made so far: a lookup takes no lock
	// and allocates nothing.
	downstreams keyed.Map[*downstream]
}

// downstream is a Downstream with the engines its calls run on: one for
// unary calls, which counts the caller's deadline against the downstream,
// and one for streams, which keeps a stream's permits while it lives.
type downstream struct {
	*Downstream
	unary, stream spillway.Engine[struct{}]
}

func (c *client) newDownstream(key string, d *Downstream) *downstream {
	// A nil policy must stay out of the guards: a typed nil is not a nil Guard.
	var guards []spillway.Guard
	if d.Breaker != nil {
		guards = append(guards, d.Breaker)
	}
	if d.Bulkhead != nil {
		guards = append(guards, d.Bulkhead)
	}
	cfg := spillway.EngineConfig[struct{}]{Guards: guards, Classify: c.classifyAttempt, CallerDeadlineCounts: true,
		Observer: c.obs, Policy: "grpc", Name: key}
	if d.Attempt != nil {
		cfg.Timeout = d.Attempt
	}
	dd := &downstream{Downstream: d, unary: spillway.NewEngine(cfg)}
	// A stream's context, deadline included, is how long its caller wants
	// it; the attempt timeout does not apply to streams.
	cfg.CallerDeadlineCounts, cfg.Timeout, cfg.Keep = false, nil, guards
	dd.stream = spillway.NewEngine(cfg)
	return dd
}

func newClient(cfg Config) *client {
	c := &client{
		key: cfg.Key, newDownstreamOf: cfg.NewDownstream, classify: cfg.Classify,
		retryable: cfg.Retryable, maxReplay: cfg.MaxReplay, obs: cfg.Observer,
	}
	if c.key == nil {
		c.key = targetKey
	}
	if c.newDownstreamOf == nil {
		c.newDownstreamOf = DefaultDownstream
	}
	if c.classify == nil {
		c.classify = Classify
	}
	if c.retryable == nil {
		c.retryable = Retryable
	}
	switch {
	case c.maxReplay == 0:
		c.maxReplay = DefaultMaxReplay
	case c.maxReplay < 0:
		c.maxReplay = 0
	}
	return c
}

func targetKey(cc *grpc.ClientConn, _ string) string { return cc.Target() }

// downstream returns the policies of the call's key, creating them on the
// key's first call.
func (c *client) downstream(cc *grpc.ClientConn, method string) (*downstream, error) {
	key := c.key(cc, method)
	if key == "" {
		key = cc.Target()
	}
	if d, ok := c.downstreams.Load(key); ok {
		return d, nil
	}
	return c.downstreams.Make(key, c.makeDownstream)
}

// makeDownstream makes the policies of key, on its first call, and
// registers their gauges with the Observer.
func (c *client) makeDownstream(key string) (*downstream, error) {
	pub, err := c.newDownstreamOf(key, c.obs)
	if err == nil && pub == nil {
		pub = &Downstream{}
	}
	if err == nil {
		err = gauges.RegisterWith(c.obs, pub.Breaker, pub.Bulkhead, pub.Retry)
	}
	if err != nil {
		return nil, fmt.Errorf("spillwaygrpc: policies of %q: %w", key, err)
	}
	return c.newDownstream(key, pub), nil
}
