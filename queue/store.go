package queue

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Config, as its doc comments state them.
const (
	defaultDir       = "./spillway-data"
	defaultMaxMemory = 64 << 20
	defaultMaxDisk   = 10 << 30
	// statusShare is the status bucket's share of an embedded MaxDisk,
	// and the default share of the dead-letter stream, in tenths; the
	// work stream has the rest.
	statusShare = 1
	deadShare   = 1
	// externalDeadBytes and defaultDeadMsgs bound the dead-letter stream
	// by default: the size of an external cluster's disk is unknown.
	externalDeadBytes   = 1 << 30
	defaultDeadMsgs     = 100_000
	defaultSyncInterval = 2 * time.Minute
	defaultDedupe       = time.Hour
	defaultTimeout      = 2 * time.Second
	defaultPrefix       = "SPILLWAY"
	// embeddedMaxPayload lets a job carry a 1 MiB body (the gateway's
	// max_body default) plus its headers; NATS's own default is 1 MiB.
	embeddedMaxPayload = 8 << 20
	// secretKey holds the per-store HMAC secret in the status bucket. Job
	// ids are 32 hex digits, so it cannot collide with one.
	secretKey = "secret"
	// setupPause separates two attempts of a setup step.
	setupPause = 250 * time.Millisecond
)

// queueImpl is the state behind a *Queue.
type queueImpl struct {
	cfg    Config
	log    *slog.Logger
	srv    *server.Server // nil when external
	nc     *nats.Conn
	js     jetstream.JetStream
	work   jetstream.Stream
	dead   jetstream.Stream
	kv     jetstream.KeyValue
	secret []byte

	subjPrefix string // lowercase prefix for subjects: "<prefix>."
	workName   string // <PREFIX>_JOBS
	deadName   string // <PREFIX>_DEAD
	bucket     string // <prefix>_jobs

	mu      sync.Mutex
	closed  bool
	workers map[*Worker]struct{}

	// External connection only.
	redact *strings.Replacer // hides the servers' user information
	stalls stallGuard        // publishes without an answer, see conn.go
	bg     sync.WaitGroup    // forced reconnections in progress
}

func (c *Config) setDefaults() {
	if c.Dir == "" {
		c.Dir = defaultDir
	}
	if c.MaxMemory <= 0 {
		c.MaxMemory = defaultMaxMemory
	}
	if c.MaxDisk <= 0 {
		c.MaxDisk = defaultMaxDisk
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = defaultSyncInterval
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = defaultDedupe
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	if c.Prefix == "" {
		c.Prefix = defaultPrefix
	}
	if c.PingInterval <= 0 {
		c.PingInterval = defaultPingInterval
	}
	if c.DeadLetterMaxBytes <= 0 {
		c.DeadLetterMaxBytes = externalDeadBytes
		if len(c.Servers) == 0 {
			c.DeadLetterMaxBytes = c.MaxDisk / 10 * deadShare
		}
	}
	if c.DeadLetterMaxMessages <= 0 {
		c.DeadLetterMaxMessages = defaultDeadMsgs
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func open(ctx context.Context, cfg Config) (*Queue, error) {
	cfg.setDefaults()
	if !validName(cfg.Prefix) {
		return nil, fmt.Errorf("queue: invalid prefix %q: use letters, digits, '-' and '_'", cfg.Prefix)
	}
	if len(cfg.Servers) == 0 && cfg.DeadLetterMaxBytes > cfg.MaxDisk/2 {
		return nil, fmt.Errorf("queue: DeadLetterMaxBytes (%d) is more than half of MaxDisk (%d): the work stream and the status records need the rest",
			cfg.DeadLetterMaxBytes, cfg.MaxDisk)
	}
	lower := strings.ToLower(cfg.Prefix)
	q := &queueImpl{
		cfg:        cfg,
		log:        cfg.Logger,
		subjPrefix: lower + ".",
		workName:   strings.ToUpper(cfg.Prefix) + "_JOBS",
		deadName:   strings.ToUpper(cfg.Prefix) + "_DEAD",
		bucket:     lower + "_jobs",
		workers:    map[*Worker]struct{}{},
		redact:     secretsReplacer(cfg.Servers),
	}
	var err error
	if len(cfg.Servers) == 0 {
		err = q.startEmbedded()
	} else {
		err = q.connect(ctx)
	}
	if err != nil {
		return nil, err
	}
	if err := q.setup(ctx); err != nil {
		q.shutdown()
		return nil, err
	}
	return &Queue{q: q}, nil
}

// startEmbedded runs a JetStream server in the process, without a TCP
// listener, and connects to it in-process.
func (q *queueImpl) startEmbedded() error {
	if err := os.MkdirAll(q.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("queue: store directory: %w", err)
	}
	opts := &server.Options{
		ServerName:         "spillway",
		JetStream:          true,
		StoreDir:           q.cfg.Dir,
		JetStreamMaxMemory: q.cfg.MaxMemory,
		JetStreamMaxStore:  q.cfg.MaxDisk,
		SyncInterval:       q.cfg.SyncInterval,
		SyncAlways:         q.cfg.SyncAlways,
		MaxPayload:         embeddedMaxPayload,
		DontListen:         true,
		NoSigs:             true,
		NoLog:              true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("queue: embedded server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return fmt.Errorf("queue: embedded server not ready: %w", ErrUnavailable)
	}
	q.srv = s
	nc, err := nats.Connect("", nats.InProcessServer(s), nats.Name("spillway-queue"))
	if err != nil {
		q.shutdown()
		return fmt.Errorf("queue: in-process connection: %w: %w", ErrUnavailable, err)
	}
	q.nc = nc
	return q.newJS()
}

// connect connects to the external servers. While none can be reached
// (refused, or no answer within Timeout) it tries again every
// connectRetry until ctx ends, so that Spillway may start before the
// cluster; any other failure (credentials refused, a TLS or file error)
// ends it at once.
func (q *queueImpl) connect(ctx context.Context) error {
	for {
		timeout := q.cfg.Timeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = max(min(timeout, time.Until(dl)), time.Millisecond)
		}
		err := q.dial(timeout)
		if err == nil || !unreachable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(connectRetry):
		}
	}
}

// connectRetry is the pause between two connection attempts of Open.
const connectRetry = 250 * time.Millisecond

// unreachable reports whether a connection failed for want of a server
// that answers, which waiting may cure.
func unreachable(err error) bool {
	if errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dial makes one connection attempt, each server URL bounded by timeout.
// ReconnectBufSize(-1) makes a publish while disconnected fail at once
// instead of buffering it: the caller must learn quickly that a job was not
// stored. The pings and the flusher timeout make a connection to a server
// that stopped answering fail (see conn.go), and the client reconnects to
// another one. Logs and errors show the URLs without their user
// information.
func (q *queueImpl) dial(timeout time.Duration) error {
	c := q.cfg
	opts := []nats.Option{
		nats.Name("spillway-queue"),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1),
		nats.Timeout(timeout),
		nats.RetryOnFailedConnect(false),
		nats.PingInterval(c.PingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.FlusherTimeout(c.Timeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: closed by us, or a forced reconnection (logged)
				q.log.Warn("queue: disconnected from NATS", "error", q.redact.Replace(err.Error()))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			q.log.Info("queue: reconnected to NATS", "server", nc.ConnectedServerName(), "url", RedactURL(nc.ConnectedUrl()))
		}),
	}
	opts = append(opts, authOptions(c)...)
	nc, err := nats.Connect(strings.Join(c.Servers, ","), opts...)
	if err != nil {
		return q.redactErr(fmt.Errorf("queue: connect %s: %w: %w", redactURLs(c.Servers), ErrUnavailable, err))
	}
	q.nc = nc
	if err := q.newJS(); err != nil {
		return err
	}
	q.js = watchedJS{JetStream: q.js, q: q}
	return nil
}

// authOptions are the credentials and TLS options of c.
func authOptions(c Config) []nats.Option {
	var opts []nats.Option
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if t := c.TLS; t != nil {
		if t.CA != "" {
			opts = append(opts, nats.RootCAs(t.CA))
		}
		if t.Cert != "" {
			opts = append(opts, nats.ClientCert(t.Cert, t.Key))
		}
		if t.CA == "" && t.Cert == "" {
			opts = append(opts, nats.Secure())
		}
	}
	return opts
}

func (q *queueImpl) newJS() error {
	js, err := jetstream.New(q.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return fmt.Errorf("queue: jetstream: %w", err)
	}
	q.js = js
	return nil
}

// shares returns the byte limits of the work stream, the dead-letter
// stream and the status bucket (-1: none). Embedded, they share MaxDisk
// out exactly: JetStream refuses a stream whose MaxBytes does not fit in
// what the others reserved, and each stream refuses what exceeds its own
// (discard new), so none can take another's room — new jobs are refused
// (queue_full) only when the work stream's own share is full, while a
// delivery can still record its status and dead letter. External, the
// account's limits are the operator's; only the dead letters are bounded.
func (q *queueImpl) shares() (work, dead, status int64) {
	if q.srv == nil {
		return -1, q.cfg.DeadLetterMaxBytes, -1
	}
	status = q.cfg.MaxDisk / 10 * statusShare
	dead = q.cfg.DeadLetterMaxBytes
	return q.cfg.MaxDisk - status - dead, dead, status
}

// setup creates or updates the streams and the bucket, and loads the
// secret. Each step is retried in Timeout-long attempts until ctx ends: a
// fresh cluster answers "no leader" or times out until it has elected one.
func (q *queueImpl) setup(ctx context.Context) error {
	if err := q.runSteps(ctx, q.streamSteps()); err != nil {
		return err
	}
	return q.runSteps(ctx, []setupStep{{"secret", q.loadSecret}})
}

// setupStep is one step of setup: what it makes, and how.
type setupStep struct {
	what string
	do   func(context.Context) error
}

// streamSteps creates or updates the work stream, the dead-letter stream
// and the status bucket with their shares of the store.
func (q *queueImpl) streamSteps() []setupStep {
	replicas := q.cfg.Replicas
	workMax, deadMax, statusMax := q.shares()
	return []setupStep{
		{"work stream " + q.workName, func(ctx context.Context) (err error) {
			q.work, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
				Name:        q.workName,
				Description: "Spillway jobs waiting for delivery",
				Subjects:    []string{q.subjPrefix + "jobs.>"},
				Retention:   jetstream.WorkQueuePolicy,
				Discard:     jetstream.DiscardNew,
				Storage:     jetstream.FileStorage,
				Duplicates:  q.cfg.DedupeWindow,
				Replicas:    replicas,
				AllowDirect: true,
				MaxBytes:    workMax,
			})
			return err
		}},
		{"dead-letter stream " + q.deadName, func(ctx context.Context) (err error) {
			q.dead, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
				Name:        q.deadName,
				Description: "Spillway dead letters",
				Subjects:    []string{q.subjPrefix + "dead.>"},
				Retention:   jetstream.LimitsPolicy,
				// Discard new, not old: the worker deletes the oldest
				// letters itself when one does not fit (dropOldestDead),
				// so that it can count and log them.
				Discard:     jetstream.DiscardNew,
				Storage:     jetstream.FileStorage,
				Duplicates:  2 * time.Minute,
				Replicas:    replicas,
				AllowMsgTTL: true,
				AllowDirect: true,
				MaxBytes:    deadMax,
				MaxMsgs:     q.cfg.DeadLetterMaxMessages,
			})
			return err
		}},
		{"status bucket " + q.bucket, func(ctx context.Context) (err error) {
			q.kv, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket:      q.bucket,
				Description: "Spillway job status",
				History:     1,
				Storage:     jetstream.FileStorage,
				Replicas:    replicas,
				MaxBytes:    statusMax,
				// Enables per-key TTLs (each record lives for its queue's
				// Retention); the marker left when one expires is kept
				// briefly.
				LimitMarkerTTL: time.Minute,
			})
			return err
		}},
	}
}

// runSteps runs steps in order, each retried as retrySetup does. A stream
// whose share cannot be reserved yet is tried again after the others: when
// the shares change (queue.dead_letters.max_bytes), a stream that grows
// needs the room that one updated after it gives back.
func (q *queueImpl) runSteps(ctx context.Context, steps []setupStep) error {
	var later []setupStep
	for _, s := range steps {
		err := retrySetup(ctx, q.cfg.Timeout, s.do)
		if cannotReserve(err) {
			later = append(later, s)
			continue
		}
		if err != nil {
			return fmt.Errorf("queue: create %s: %w: %w", s.what, ErrUnavailable, err)
		}
	}
	for _, s := range later {
		err := retrySetup(ctx, q.cfg.Timeout, s.do)
		if cannotReserve(err) {
			return fmt.Errorf("queue: create %s: %w: the store cannot reserve the streams' bounds (dead letters: %d bytes): "+
				"lower DeadLetterMaxBytes or give the account more JetStream storage: %w", s.what, ErrUnavailable, q.cfg.DeadLetterMaxBytes, err)
		}
		if err != nil {
			return fmt.Errorf("queue: create %s: %w: %w", s.what, ErrUnavailable, err)
		}
	}
	return nil
}

// cannotReserve reports whether JetStream refused a stream because its
// MaxBytes does not fit in the storage left unreserved (the server's or
// the account's): waiting does not cure that.
func cannotReserve(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == 10047
}

// loadSecret creates the store's HMAC secret, or reads the one another
// gateway created first.
func (q *queueImpl) loadSecret(ctx context.Context) error {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	if _, err := q.kv.Create(ctx, secretKey, b); err == nil {
		q.secret = b
		return nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return err
	}
	e, err := q.kv.Get(ctx, secretKey)
	if err != nil {
		return err
	}
	q.secret = e.Value()
	return nil
}

// retrySetup runs do in attempts bounded by timeout, pausing between them,
// until one succeeds or ctx ends (returning the last error).
func retrySetup(ctx context.Context, timeout time.Duration, do func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := do(actx)
		cancel()
		if err == nil {
			return nil
		}
		if !retryableSetup(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(setupPause):
		}
	}
}

// retryableSetup tells transient setup failures (no leader yet, timeouts,
// no responders) from configuration errors that another attempt cannot fix.
func retryableSetup(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 503: no leader yet, cluster or JetStream not available; 4xx:
		// a configuration the server refuses.
		return apiErr.Code >= 500 && !cannotReserve(err)
	}
	return true
}

func (q *queueImpl) shutdown() {
	if q.nc != nil {
		if q.nc.IsConnected() {
			// Status writes sent without an ack are on their way.
			_ = q.nc.FlushTimeout(q.cfg.Timeout)
		}
		q.nc.Close()
	}
	q.bg.Wait()
	if q.srv != nil {
		q.srv.Shutdown()
		q.srv.WaitForShutdown()
	}
}

func (q *queueImpl) close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	workers := make([]*Worker, 0, len(q.workers))
	for w := range q.workers {
		workers = append(workers, w)
	}
	q.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), q.cfg.Timeout)
	defer cancel()
	for _, w := range workers {
		_ = w.Stop(ctx)
	}
	q.shutdown()
	return nil
}

func (q *queueImpl) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// validName reports whether s is a queue name: letters, digits, '-', '_'.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}
