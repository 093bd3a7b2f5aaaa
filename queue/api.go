package queue

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// Sentinel errors. Each is wrapped with context (fmt.Errorf("...: %w")) and
// usable with errors.Is.
var (
	// ErrUnavailable: the store refused the job or could not be reached
	// before it was sent (not connected, no stream answering, no JetStream
	// leader). Reason code "queue_unavailable". Nothing was stored.
	ErrUnavailable = errors.New("queue: store unavailable")
	// ErrFull: the store refused the job for lack of space (disk/memory
	// limit, stream limits with discard new). Reason code "queue_full".
	// Nothing was stored.
	ErrFull = errors.New("queue: store full")
	// ErrUncertain: the job was sent but its outcome is unknown: no
	// acknowledgement came within Config.Timeout (or the caller's context
	// ended first), or the connection was lost while waiting for it. The
	// store may have kept it. Reason code "queue_timeout". Retrying with
	// the same Message.Key stores it at most once (within the dedupe
	// window); without a key a retry may store it twice.
	ErrUncertain = errors.New("queue: outcome unknown, the job may have been stored")
	// ErrInvalidKey: Message.Key is longer than MaxKeyLen bytes or holds a
	// byte that is not visible ASCII. Reason code "idempotency_key_invalid".
	// Nothing was sent.
	ErrInvalidKey = errors.New("queue: invalid idempotency key")
	// ErrKeyReused: Message.Key was used within the dedupe window for a
	// message with another Fingerprint (or one that can no longer be
	// compared). Reason code "idempotency_key_reused". Nothing new was
	// stored, and the stored job's id is not returned.
	ErrKeyReused = errors.New("queue: idempotency key already used for another message")
	// ErrNotFound: no job, status or dead letter with that id.
	ErrNotFound = errors.New("queue: not found")
	// ErrClosed: the Queue was closed. A call under way when Close began
	// may also wrap ErrUncertain.
	ErrClosed = errors.New("queue: closed")
)

// Reason codes of the sentinels, for Spillway-Reason headers and metrics.
const (
	ReasonUnavailable = "queue_unavailable"
	ReasonFull        = "queue_full"
	ReasonTimeout     = "queue_timeout"
	ReasonKeyInvalid  = "idempotency_key_invalid"
	ReasonKeyReused   = "idempotency_key_reused"
)

// ReasonOf maps an error of this package to its reason code: ReasonTimeout
// for ErrUncertain, ReasonFull for ErrFull, ReasonKeyInvalid for
// ErrInvalidKey, ReasonKeyReused for ErrKeyReused, ReasonUnavailable for
// ErrUnavailable, ErrClosed and any other error; "" for nil.
func ReasonOf(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrUncertain):
		return ReasonTimeout
	case errors.Is(err, ErrFull):
		return ReasonFull
	case errors.Is(err, ErrInvalidKey):
		return ReasonKeyInvalid
	case errors.Is(err, ErrKeyReused):
		return ReasonKeyReused
	default:
		return ReasonUnavailable
	}
}

// MaxKeyLen bounds Message.Key, in bytes. The store remembers every key
// of the dedupe window (as a fixed-size id derived from it, not the key
// itself), and the key travels in the job's headers.
const MaxKeyLen = 256

// ValidKey reports whether key is a usable idempotency key: 1 to MaxKeyLen
// bytes of visible ASCII ('!' to '~'), as a header value can carry it
// unchanged.
func ValidKey(key string) bool {
	if key == "" || len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < '!' || key[i] > '~' {
			return false
		}
	}
	return true
}

// Config configures Open. The zero value runs an embedded NATS server with
// JetStream in ./spillway-data.
type Config struct {
	// Servers are the URLs of an external NATS cluster (nats://host:4222,
	// tls://...). Empty: run an embedded server in the process, reached
	// through an in-process connection (no TCP port is opened).
	Servers []string

	// Embedded server only.
	Dir string // JetStream store directory; default "./spillway-data"
	// MaxMemory and MaxDisk are the JetStream limits given to the embedded
	// server (JetStream's own defaults would take 75 % of RAM and of the
	// disk). Defaults: 64 MiB and 10 GiB. MaxDisk is shared out: the
	// dead-letter stream gets DeadLetterMaxBytes, the status bucket 10 %,
	// the work stream the rest (80 % by default). JetStream reserves each
	// share when it creates the stream, and no stream can grow past its
	// own: dead letters and status records never take the room of new jobs.
	MaxMemory int64
	MaxDisk   int64
	// SyncAlways makes the embedded server fsync every write before it
	// acknowledges (sync: always). Otherwise SyncInterval applies.
	SyncAlways bool
	// SyncInterval is how often the embedded server fsyncs; default 2m
	// (JetStream's default).
	SyncInterval time.Duration

	// External cluster only: credentials and TLS.
	CredsFile string // a .creds file (JWT + nkey)
	User      string
	Password  string
	Token     string
	TLS       *TLS
	// PingInterval is how often the client pings the server it is
	// connected to (external cluster only); default 1s. A server that
	// leaves two pings unanswered at the next tick (3 × PingInterval) is
	// left for another one of the cluster. Raise it with Timeout on a
	// high-latency link. Apart from pings, stallLimit (3) publishes in a
	// row without an answer within 5 × Timeout also move the connection
	// (see Health and docs/async.md).
	PingInterval time.Duration

	// Replicas of each stream and of the status bucket; default 1. Use 3 on
	// a three-node cluster.
	Replicas int
	// DeadLetterMaxBytes and DeadLetterMaxMessages bound the dead-letter
	// stream. When a new dead letter does not fit, the oldest ones are
	// deleted to make room (WorkerOptions.OnDeadLetterDropped counts them);
	// a dead letter larger than the whole bound is dropped itself.
	// Defaults: 10 % of MaxDisk embedded (at most half of it), 1 GiB on an
	// external cluster (where it is reserved against the account's
	// JetStream storage, times Replicas); 100,000 messages.
	DeadLetterMaxBytes    int64
	DeadLetterMaxMessages int64
	// DedupeWindow is how long an idempotency key dedupes (JetStream's
	// Duplicates window on the work stream); default 1h.
	DedupeWindow time.Duration
	// Timeout bounds each store operation (publish ack, stream or bucket
	// creation attempt, status lookup); default 2s. Setup retries short
	// attempts until Open's context ends rather than waiting once for long
	// (a fresh cluster elects a leader first).
	Timeout time.Duration
	// Prefix names the streams, consumers and bucket (PREFIX_JOBS,
	// PREFIX_DEAD, bucket prefix_jobs, ...); default "SPILLWAY". Tests and
	// several independent deployments on one cluster use different
	// prefixes.
	Prefix string
	// Logger receives operational messages; nil: slog.Default().
	Logger *slog.Logger
}

// TLS configures a TLS connection to an external cluster. Empty fields use
// the system defaults.
type TLS struct {
	CA   string // CA bundle file
	Cert string // client certificate file (with Key)
	Key  string
}

// Queue is a durable job queue on NATS JetStream: jobs are published to a
// work stream, delivered to workers through a durable consumer per queue
// name, retried with backoff, dead-lettered after MaxAttempts, and tracked
// in a key-value bucket. Safe for concurrent use.
type Queue struct {
	q *queueImpl
}

// Open connects to the store (starting the embedded server when
// cfg.Servers is empty) and creates or updates the streams and the status
// bucket it needs. It retries short attempts until ctx ends.
func Open(ctx context.Context, cfg Config) (*Queue, error) { return open(ctx, cfg) }

// Close stops the workers still running (as Worker.Stop), closes the
// connection and, when embedded, shuts the server down cleanly (flushing
// its store). Idempotent.
func (q *Queue) Close() error { return q.q.close() }

// Embedded reports whether the queue runs its own embedded server.
func (q *Queue) Embedded() bool { return q.q.srv != nil }

// Message is what Enqueue stores.
type Message struct {
	// Key is the idempotency key; "" for none; otherwise 1 to MaxKeyLen
	// bytes of visible ASCII (ValidKey). Two Enqueue calls with the same
	// queue name, Scope and Key within the dedupe window store one job and
	// return the same id (the id of a keyed job is derived from them with a
	// per-store secret, so it is stable and still unguessable).
	Key string
	// Scope is the identity of the client that owns Key (an API key, an
	// authenticated subject): keys dedupe only within one Scope, so that a
	// client cannot reach another's job by guessing its key. It enters the
	// id's derivation and is not stored. "" for none (keys shared by every
	// caller of the queue).
	Scope string
	// Fingerprint identifies what a keyed message asks for, so that a retry
	// can be told from another message reusing its key: a duplicate whose
	// Fingerprint differs from the stored job's fails with ErrKeyReused.
	// nil: a digest of Header and Data. Only a digest of it is stored.
	Fingerprint []byte
	// Header is metadata stored with the job and given back in Job.Header.
	Header http.Header
	// Data is the payload.
	Data []byte
}

// Enqueue stores m in the named queue and returns its id only once the
// store has acknowledged it (persisted). The id is 32 lowercase hex digits:
// random 128 bits, or derived from m.Key. duplicate is true when the key
// was seen within the dedupe window for the same Fingerprint (nothing new
// was stored). Errors wrap ErrUnavailable or ErrFull (nothing stored),
// ErrUncertain (sent, outcome unknown), ErrInvalidKey (nothing sent),
// ErrKeyReused (the key belongs to another message), or ErrClosed. name
// must be a valid queue name: letters, digits, '-' and '_'.
func (q *Queue) Enqueue(ctx context.Context, name string, m Message) (id string, duplicate bool, err error) {
	return q.q.enqueue(ctx, name, m)
}

// Backoff is the delay before the n-th retry: Initial × Multiplier^(n-1),
// capped at Max, with Jitter ("none", "full", "equal"; default full).
type Backoff struct {
	Initial    time.Duration // default 1s
	Max        time.Duration // default 5m
	Multiplier float64       // default 2
	Jitter     string
}

// Policy is how one queue's jobs are delivered.
type Policy struct {
	// MaxAttempts is the number of delivery attempts (first included) after
	// which a failing job is dead-lettered; default 20.
	MaxAttempts int
	Backoff     Backoff
	// Retention is how long a job's status and its dead letter are kept;
	// default 72h.
	Retention time.Duration
	// Concurrency is how many jobs are handled at once by one Worker;
	// default 8. Ordered forces 1.
	Concurrency int
	// Ordered delivers in acceptance order: one job at a time, and a failing
	// job is retried in place (blocking the ones behind it) until it is
	// delivered or dead-lettered.
	Ordered bool
	// AckWait is how long a handler may run before the store redelivers the
	// job elsewhere (a crashed worker); default 30s. The worker extends it
	// while the handler runs.
	AckWait time.Duration
}

// Outcome is what a handler made of a job.
type Outcome int

const (
	// Delivered: done; the job is acknowledged and removed.
	Delivered Outcome = iota
	// Failed: this attempt failed; retried after the backoff (or
	// Result.RetryAfter if longer), dead-lettered once MaxAttempts attempts
	// failed.
	Failed
	// Rejected: the job can never succeed (e.g. the downstream answered
	// 400); dead-lettered at once.
	Rejected
	// Paused: no attempt was made (the downstream's breaker is open, its
	// bulkhead is full); the job goes back to wait Result.RetryAfter
	// (default 1s) and the attempt is not counted.
	Paused
)

// String returns "delivered", "failed", "rejected" or "paused".
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	case Rejected:
		return "rejected"
	case Paused:
		return "paused"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result is a handler's verdict on one attempt.
type Result struct {
	Outcome Outcome
	// Status is the downstream's answer (e.g. an HTTP status), recorded in
	// the job's status; 0 if none.
	Status int
	// Reason explains a failure (a reason code such as "upstream_error",
	// "deadline_exceeded", "breaker_open"); recorded as the last reason.
	Reason     string
	RetryAfter time.Duration
}

// Job is one delivery of a stored message to a handler.
type Job struct {
	ID     string
	Queue  string
	Key    string
	Header http.Header
	Data   []byte
	// Attempt is the number of this attempt, 1 for the first.
	Attempt  int
	Enqueued time.Time

	digest string // of a keyed job's fingerprint (hdrDigest)
}

// Handler delivers one job. ctx ends when the worker stops (the job is then
// left for redelivery) or the job's ack wait cannot be extended.
type Handler func(ctx context.Context, j *Job) Result

// WorkerOptions tune a Worker.
type WorkerOptions struct {
	// Gate, if set, is called before fetching more jobs: a positive answer
	// pauses fetching for that long (the downstream's breaker is open), so
	// that no attempt is burnt while it cannot succeed.
	Gate func() time.Duration
	// OnResult, if set, is called after each handled job with the final
	// outcome: Delivered, Failed (will be retried), Rejected or Failed that
	// exhausted MaxAttempts (dead is true), Paused. For metrics.
	OnResult func(queue string, r Result, dead bool)
	// OnDeadLetterDropped, if set, is called for each dead letter this
	// worker deleted to make room in the dead-letter stream (the oldest,
	// of any queue), or did not keep because it alone exceeds the stream's
	// bound; queue and id are the dropped letter's.
	OnDeadLetterDropped func(queue, id string)
}

// Worker delivers the jobs of one queue. Several Workers on the same queue
// name, in one process or many, share the jobs through one durable
// consumer: each job goes to one of them at a time.
type Worker struct {
	w *workerImpl
}

// Consume starts a Worker for the named queue with policy p and handler h.
// Its goroutines (a fetch loop and up to p.Concurrency handlers) stop with
// Stop or Queue.Close.
func (q *Queue) Consume(name string, p Policy, h Handler, o WorkerOptions) (*Worker, error) {
	return q.q.consume(name, p, h, o)
}

// Stop stops fetching, waits for the handlers in flight until ctx ends
// (then cancels them: their jobs are redelivered later), and returns.
func (w *Worker) Stop(ctx context.Context) error { return w.w.stop(ctx, w) }

// State is where a job is.
type State string

const (
	StateQueued    State = "queued"    // stored, waiting for a worker
	StateInFlight  State = "in_flight" // a handler has it
	StateRetrying  State = "retrying"  // an attempt failed; waiting for the next
	StateDelivered State = "delivered" // done
	StateDead      State = "dead"      // in the dead-letter stream
)

// Status is what the store knows of a job.
type Status struct {
	ID    string `json:"id"`
	Queue string `json:"queue"`
	State State  `json:"state"`
	// Attempts made so far; LastStatus and LastReason are those of the last
	// one (the downstream's status when delivered).
	Attempts    int       `json:"attempts"`
	LastStatus  int       `json:"last_status,omitempty"`
	LastReason  string    `json:"last_reason,omitempty"`
	Enqueued    time.Time `json:"enqueued"`
	Updated     time.Time `json:"updated"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// Status returns the status of job id, wherever it is; ErrNotFound when
// the id is unknown or its status has expired (Policy.Retention).
func (q *Queue) Status(ctx context.Context, id string) (Status, error) { return q.q.status(ctx, id) }

// DeadLetter is a job in the dead-letter stream.
type DeadLetter struct {
	Job
	Seq        uint64    `json:"seq"` // position in the dead-letter stream, the paging cursor
	Attempts   int       `json:"attempts"`
	LastStatus int       `json:"last_status,omitempty"`
	LastReason string    `json:"last_reason,omitempty"`
	Died       time.Time `json:"died"`

	retention time.Duration // its queue's Retention, for the replayed status
}

// DeadLetters lists up to limit dead letters of the named queue ("" for
// every queue) with Seq > after, oldest first; next is the cursor for the
// following page (0 when there is none).
func (q *Queue) DeadLetters(ctx context.Context, name string, after uint64, limit int) (page []DeadLetter, next uint64, err error) {
	return q.q.deadLetters(ctx, name, after, limit)
}

// DeadLetterByID returns one dead letter; ErrNotFound if there is none.
func (q *Queue) DeadLetterByID(ctx context.Context, id string) (DeadLetter, error) {
	return q.q.deadLetterByID(ctx, id)
}

// Replay moves dead letter id back to its queue (same id, attempts reset to
// 0, not subject to the dedupe window) and removes it from the dead-letter
// stream once the work stream has acknowledged it.
func (q *Queue) Replay(ctx context.Context, id string) error { return q.q.replay(ctx, id) }

// ReplayAll replays every dead letter of the named queue ("" for all) and
// returns how many it replayed.
func (q *Queue) ReplayAll(ctx context.Context, name string) (int, error) {
	return q.q.replayAll(ctx, name)
}

// Purge deletes dead letter id.
func (q *Queue) Purge(ctx context.Context, id string) error { return q.q.purge(ctx, id) }

// PurgeAll deletes every dead letter of the named queue ("" for all) and
// returns how many it deleted.
func (q *Queue) PurgeAll(ctx context.Context, name string) (int, error) {
	return q.q.purgeAll(ctx, name)
}

// Stats is a snapshot of one queue, for metrics and status pages.
type Stats struct {
	Pending          int           // stored and not yet delivered (waiting + in flight)
	InFlight         int           // held by handlers (acks pending)
	DeadLetters      int           // in the dead-letter stream
	OldestPendingAge time.Duration // age of the oldest pending job; 0 when none
}

// Stats returns the named queue's counts, read from the store.
func (q *Queue) Stats(ctx context.Context, name string) (Stats, error) { return q.q.stats(ctx, name) }
