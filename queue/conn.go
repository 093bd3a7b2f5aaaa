package queue

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spillway-dev/spillway/internal/redact"
)

// How an external connection leaves a server that stopped answering.
//
// A stalled server (a paused process, a full disk, a network that drops
// packets without resetting the connection) keeps the TCP connection open,
// so the client does not notice by itself: with nats.go's default pings (every
// 2 minutes) the queue would refuse every job for minutes while the other
// nodes serve. Two mechanisms bound that:
//
//   - the client pings every Config.PingInterval (default 1 s) and declares
//     the connection stale when maxPingsOut pings are unanswered at the next
//     tick: a silent server is left after 3 × PingInterval;
//   - a server that answers pings but cannot get a publish acknowledged (cut
//     off from the stream leader's quorum, or whose routes are gone) is left
//     after stallLimit publishes in a row got no answer, the first of them at
//     most stallWindow × Timeout before the last: the connection is closed and
//     the client reconnects to the next server of its pool (the one it left
//     goes to the end). A single slow acknowledgement never does it, and
//     forced reconnections are at least forceCooldown apart, so that a
//     cluster without a leader anywhere is not answered with a reconnection
//     loop.
const (
	defaultPingInterval = time.Second
	maxPingsOut         = 2
	stallLimit          = 3
	stallWindow         = 5 // × Timeout
	forceCooldown       = 30 * time.Second
)

// stallGuard counts the publishes in a row that got no answer from the
// server the connection is on. Any answer resets the count; that common
// path is one atomic load. The mutex guards the run's start time and the
// time of the last forced reconnection.
type stallGuard struct {
	run    atomic.Int32
	mu     sync.Mutex
	first  time.Time // when the current run began
	forced time.Time // when a reconnection was last forced
}

// answered records a publish the server answered (acknowledged or
// refused).
func (g *stallGuard) answered() {
	if g.run.Load() != 0 {
		g.run.Store(0)
	}
}

// stalled records a publish that got no answer at now, and reports whether
// the connection must be moved to another server: stallLimit of them in a
// row within window, and no forced reconnection for forceCooldown.
func (g *stallGuard) stalled(now time.Time, window time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.run.Load() == 0 || now.Sub(g.first) > window {
		g.run.Store(0)
		g.first = now
	}
	if g.run.Add(1) < stallLimit || (!g.forced.IsZero() && now.Sub(g.forced) < forceCooldown) {
		return false
	}
	g.run.Store(0)
	g.forced = now
	return true
}

// noAnswer reports whether a publish that failed with err after waiting
// waited got no answer from the server: no responders (no stream leader
// reachable from that server), or its own deadline of timeout passed. A
// publish cut short by its caller (a client that went away, a shorter
// deadline than half the store's timeout) says nothing about the server.
func noAnswer(err error, waited, timeout time.Duration) bool {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return true
	}
	return (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) && waited >= timeout/2
}

// watchedJS is the JetStream context of an external connection: it
// reports the outcome of every publish to the queue's stallGuard. Every
// publish of the package goes through PublishMsg.
type watchedJS struct {
	jetstream.JetStream
	q *queueImpl
}

func (w watchedJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	start := time.Now()
	ack, err := w.JetStream.PublishMsg(ctx, m, opts...)
	w.q.observePublish(err, time.Since(start))
	return ack, err
}

// observePublish feeds the stall guard with one publish's outcome and
// forces a reconnection when it says so.
func (q *queueImpl) observePublish(err error, waited time.Duration) {
	var apiErr *jetstream.APIError
	switch {
	case err == nil, errors.As(err, &apiErr):
		q.stalls.answered()
	case noAnswer(err, waited, q.cfg.Timeout):
		if q.stalls.stalled(time.Now(), stallWindow*q.cfg.Timeout) {
			q.forceReconnect()
		}
	}
}

// forceReconnect moves the connection to another server, in the
// background: ForceReconnect flushes what is buffered first (bounded by the
// flusher timeout), which the publisher that tripped it must not wait for.
func (q *queueImpl) forceReconnect() {
	server, url := q.nc.ConnectedServerName(), RedactURL(q.nc.ConnectedUrl())
	// Added under mu, so that close, which sets closed first, waits for it.
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.bg.Add(1)
	q.mu.Unlock()
	go func() {
		defer q.bg.Done()
		q.log.Warn("queue: the NATS server acknowledges no publish; moving to another server",
			"server", server, "url", url, "failed_publishes", stallLimit)
		if err := q.nc.ForceReconnect(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			q.log.Warn("queue: reconnection failed", "error", q.redact.Replace(err.Error()))
		}
	}()
}

// RedactURL hides the user information of a server URL, user and password
// alike (a token may stand in the user's place): nats://user:pass@host:4222
// becomes nats://REDACTED@host:4222. Everything before the last '@' after
// the scheme is hidden, so that a URL that does not parse (a password with
// a '/' or a '#') is hidden too. For logs and error messages.
func RedactURL(s string) string { return redact.URL(s) }

// redactURLs is RedactURL of each of servers, comma separated.
func redactURLs(servers []string) string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = RedactURL(s)
	}
	return strings.Join(out, ",")
}

// secretsReplacer hides in a text the server URLs of servers and the user
// information they carry, for the errors of the client library, which may
// quote a URL (one that does not parse is quoted whole). Passwords and
// tokens given apart from the URLs are sent only in the protocol's CONNECT
// and never quoted.
func secretsReplacer(servers []string) *strings.Replacer {
	var pairs []string
	for _, s := range servers {
		if start, at := redact.UserInfo(s); at > start { // a non-empty user information
			pairs = append(pairs, s, RedactURL(s), s[start:at], "REDACTED")
		}
	}
	return strings.NewReplacer(pairs...)
}

// redactedError is an error whose text had secrets hidden; errors.Is and
// errors.As see the original.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr hides q's secrets in err's text.
func (q *queueImpl) redactErr(err error) error {
	if msg := q.redact.Replace(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}
