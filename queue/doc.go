// Package queue is a durable job queue on NATS JetStream: the store behind
// Spillway's async routes, usable on its own.
//
// # Model
//
// [Open] runs an embedded NATS server with JetStream in a data directory
// (the default; reached in-process, no TCP port) or connects to an
// external NATS cluster ([Config.Servers]); the code path is the same.
//
//   - Work stream PREFIX_JOBS (file storage, work-queue retention, discard
//     new): one message per job on subject prefix.jobs.<queue>.<id>.
//     [Queue.Enqueue] is one publish, and returns the id only once the
//     store has acknowledged it.
//   - One durable pull consumer per queue name, shared by every [Worker]
//     of that name in every process: a job is held by one worker at a
//     time, and the store redelivers it if that worker stops answering
//     (AckWait, extended while the handler runs).
//   - Status bucket prefix_jobs (a JetStream key-value bucket): one record
//     per job (state, attempts, last status and reason), kept for the
//     queue's [Policy.Retention]. Its attempt count is the authority, so a
//     paused delivery ([Paused]) is not an attempt.
//   - Dead-letter stream PREFIX_DEAD: a job that was [Rejected] or failed
//     [Policy.MaxAttempts] times is copied there (kept for Retention), then
//     removed from the work stream. [Queue.Replay] puts it back. It is
//     bounded ([Config.DeadLetterMaxBytes], [Config.DeadLetterMaxMessages]):
//     the oldest letters are dropped to make room, and reported
//     ([WorkerOptions.OnDeadLetterDropped]).
//
// Embedded, [Config.MaxDisk] is shared out: dead letters 10 % (by
// default), status records 10 %, the work stream the rest. Each share is
// its stream's MaxBytes, which JetStream reserves when it creates the
// stream: a full dead-letter stream never stops new jobs.
//
// # Ids and deduplication
//
// A job id is 32 hex digits: 128 random bits, or, for a job with an
// idempotency key ([Message.Key], at most [MaxKeyLen] bytes), an HMAC of
// the queue name, key and [Message.Scope] under a secret kept in the
// store (stable, unguessable). A keyed job is published with its id as
// Nats-Msg-Id (a fixed size, whatever the key): within
// [Config.DedupeWindow] (default 1h) a second Enqueue with the same key
// stores nothing and returns the same id with duplicate set — if its
// [Message.Fingerprint] is the stored job's; otherwise it fails with
// [ErrKeyReused].
//
// # An external cluster
//
// The connection moves to another server of the cluster when its server
// stops answering: pings every [Config.PingInterval] (default 1s, the
// server left after 3 unanswered intervals), and a forced reconnection
// after 3 publishes in a row got no answer within 5 × [Config.Timeout],
// at most every 30 s. [Queue.Health] reports the server the connection is
// on and, for each stream, its leader and the state of its replicas
// (current, lagging, offline). Logs and errors show the server URLs
// without their user information ([RedactURL]).
//
// # Guarantees
//
// Delivery is at least once: a handler may see a job again when a worker
// crashes mid-delivery or an ack is lost; attempts made then are counted.
// Handlers should be idempotent (the job id and key help). Without
// [Policy.Ordered], jobs of one queue start in acceptance order but a
// retried job is overtaken; with it, one job at a time is handled and a
// failing job blocks those behind it until it is delivered or dead.
//
// An acknowledged job survives a crash of the process: the embedded
// server writes each message to its file before acknowledging it. It is
// fsynced every [Config.SyncInterval] (default 2 minutes), so a power loss
// can lose the last interval; [Config.SyncAlways] fsyncs before each ack,
// at a large cost in throughput.
//
// # Errors
//
// Enqueue fails with [ErrUnavailable] (store unreachable, or it refused
// the job) or [ErrFull] (no room): nothing was stored in either case; or
// with [ErrUncertain] when the job was sent but no acknowledgement came
// within [Config.Timeout]: it may have been stored, and a retry with the
// same key finds it. [ReasonOf] maps them to reason codes.
package queue
