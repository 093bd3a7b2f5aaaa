// Package spillwaygrpc applies Spillway's policies to gRPC: client
// interceptors that run every call through a breaker, a bulkhead, an attempt
// timeout and a retry policy with a budget, chosen per downstream, and server
// interceptors that shed load with a bulkhead.
//
// # Model
//
// DialOptions installs both client interceptors over one set of
// downstreams (UnaryClientInterceptor and StreamClientInterceptor make
// them one by one, each with its own). They key each call to a
// downstream, by default the connection's target (grpc.ClientConn.Target; see
// Config.Key), and create that downstream's policies once, lazily, with
// Config.NewDownstream: a Downstream holds a breaker, a retry policy (whose
// budget is the downstream's one shared budget), a bulkhead and an attempt
// timeout. A unary call runs as Spillway's standard pipeline does, on the
// same engine (spillway.Engine for each attempt, spillway.Retry for the
// retries), so permits, classification and events work alike everywhere:
//
//	retry (budget) → breaker → bulkhead → attempt timeout → call
//
// Config.Observer receives one EventAttempt (Policy "grpc", Name the key) per
// attempt of a unary call and per attempt to open a stream; NewDownstream
// gets it for the policies it makes (DefaultDownstream passes it on), and an
// Observer with a method Register(policies ...any) error (spillwayprom's
// Metrics, spillwayotel's Observer) gets every new downstream's breaker,
// bulkhead and retry budget registered: spillwaygrpc.Config{Observer:
// metrics} instruments every downstream.
//
// gRPC's deadline is the total timeout: the caller's context deadline travels
// to the server in grpc-timeout, and retries never start an attempt that
// could not finish before it. Spillway's HTTP header Spillway-Timeout-Ms is
// not used here.
//
// # Defaults
//
// The zero Config keys by target and gives each downstream DefaultDownstream:
// the brief's breaker (100-call window, 20 calls minimum, opens at 50 %
// failures, for 30 s), 3 attempts with exponential backoff from 100 ms to 5 s,
// full jitter and a budget of 20 % of requests plus 10 retries a second, a
// bulkhead of 100 concurrent calls without a queue, and 5 s per attempt.
//
// # Status codes
//
// Classify says how a call's outcome counts for the breaker and Retryable
// whether it is retried; both can be replaced (Config.Classify,
// Config.Retryable):
//
//	UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED     failure, retried
//	DEADLINE_EXCEEDED                            failure, retried while the caller's deadline leaves time
//	INTERNAL, UNKNOWN, DATA_LOSS, other errors   failure, not retried (the request may have had effects)
//	INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED, ALREADY_EXISTS,
//	FAILED_PRECONDITION, OUT_OF_RANGE, UNIMPLEMENTED, CANCELED
//	                                             success, not retried (the server answered)
//
// Nothing is retried once the caller's context has ended. The caller's
// cancellation is not counted against the downstream (whatever error the
// call then ends with, a CANCELED status included); the caller's deadline
// is, unlike in a spillway.Pipeline: in gRPC the caller's deadline is the only
// timeout most calls have, and a server that hangs until every deadline
// passes must trip the breaker. (A stream is the exception: its context,
// deadline included, is how long its caller wants it, so a stream that its
// context ends is not counted.) The server's grpc-retry-pushback-ms trailer is a Retry-After
// hint (spillway.WithRetryAfter): the next attempt waits at least that long,
// capped by the retry policy's maximum backoff; a negative or malformed
// pushback means "do not retry", as gRPC's retry design (A6) says.
//
// # Streams
//
// StreamClientInterceptor applies the policies to a stream's establishment:
// each attempt to open a stream runs on the engine, which keeps the
// attempt's permits for the stream once it is open (EngineConfig.Keep).
// A stream is established when the server proves it answers: the first
// RecvMsg succeeds, or Header returns the server's headers. Then the
// breaker's permit is released as a success, so that a stream that lives for
// hours is neither a failed half-open probe once it outlives the breaker's
// ProbeTimeout nor a slow call: the breaker judges how fast a stream is
// established, not how long it lives. A failure before that is released as
// classified above; a failure after it is not counted by the breaker (its
// permit is gone; the next streams' establishment shows a downstream that is
// down). The bulkhead's slot is held while the stream lives and released
// exactly once, when RecvMsg returns io.EOF or an error, when a RecvMsg
// succeeds on a stream whose server sends a single message, when Header
// fails, or when the stream's context ends (the caller's doing: not
// counted). A stream is retried only until it is established and while
// every message sent so far (at most Config.MaxReplay) is kept for replay:
// the failed stream's permits are released, new ones are taken, the stream
// is opened again, the messages and a CloseSend are replayed, and RecvMsg
// goes on transparently. The attempt timeout does not apply to streams: a
// stream lives as long as its context.
//
// # Servers
//
// UnaryServerInterceptor and StreamServerInterceptor admit each call through
// a bulkhead and release its slot when the handler returns. A call the
// bulkhead refuses is answered at once with RESOURCE_EXHAUSTED, the reason
// (bulkhead_full) in the message and in a spillway-reason trailer, and a
// grpc-retry-pushback-ms trailer.
//
// # Errors
//
// A call's own failure is returned as gRPC made it (a status error), possibly
// wrapped by Spillway: a retry policy that ran out of attempts returns a
// *spillway.Error whose Cause is the last status error, and an attempt timeout
// a deadline_exceeded *spillway.Error; status.Code sees through both.
// A failure made locally, before any server was called (breaker_open,
// bulkhead_full, budget_exhausted), is an *Error with code UNAVAILABLE that
// wraps the *spillway.Error: status.Code(err) is codes.Unavailable and
// spillway.ReasonOf(err) is the reason. The caller's context ending during a
// backoff or a bulkhead wait is an *Error with code DEADLINE_EXCEEDED or
// CANCELED.
//
// # Concurrency and cost
//
// Interceptors are safe for concurrent use and start no goroutine per call.
// Finding a call's downstream is a lock-free map read; the policies' own
// costs are those of their packages. A unary call allocates for the trailer
// it reads (the pushback) and for the attempt timeout's context; a stream
// allocates its wrapper and registers a context.AfterFunc, which runs a
// goroutine only if the context ends before the stream does.
package spillwaygrpc
