package config

import (
	"strings"
	"time"

	"github.com/goccy/go-yaml/token"
)

// Config is a gateway configuration after loading: ${VAR} expanded, the
// defaults merged into every upstream, every default filled in and every
// field validated. The gateway consumes it as it is; nothing in it is
// optional any more except where a pointer or an empty value says "off".
type Config struct {
	// File is the path the configuration was loaded from ("" when parsed
	// from memory), used in messages.
	File string
	// Listen is the public listener's address. Default 127.0.0.1:8080.
	Listen string
	// TLS, when set, serves the public listener over TLS (and HTTP/2).
	TLS *TLS
	// Server hardens the public listener.
	Server Server
	// Admin is the admin listener.
	Admin Admin
	// Readiness says what the admin /readyz requires (keys under readiness:).
	Readiness Readiness
	// Queue is the durable queue of async routes.
	Queue Queue
	// Telemetry, when the file writes telemetry:, sends traces and metrics
	// to an OpenTelemetry (OTLP) endpoint; nil: none.
	Telemetry *Telemetry
	// Upstreams by name.
	Upstreams map[string]*Upstream
	// Routes in the order they are matched: the first that matches wins.
	Routes []*Route
	// set is where Parse read every key written, by YAML path: WarningAt
	// places the problems found after Parse.
	set map[string]token.Position
}

// WarningAt returns a warning about the value at path (a YAML path like
// $.upstreams.catalog.breaker.min_calls) placed where the file wrote it: the
// key itself, the defaults: entry an upstream inherits it from, or else the
// nearest enclosing key written. gateway.Check uses it for the warnings of
// the policies it builds, which config does not know.
func (c *Config) WarningAt(path, msg string) Warning {
	p, pos := positionIn(c.set, path)
	return Warning{File: c.File, Line: pos.Line, Col: pos.Column, Path: p, Msg: msg}
}

// Readiness (keys under readiness:) is what the gateway needs, beyond
// serving its routes, to report itself ready on the admin /readyz.
type Readiness struct {
	// RequiredUpstreams (required_upstreams) names the upstreams that must
	// each have an instance healthy and not ejected. Default none: an
	// upstream that is down does not make the gateway unready, since its
	// routes still answer (fallbacks, fast errors) and a restart or a
	// load balancer taking the gateway out would not bring it back.
	RequiredUpstreams []string
}

// Telemetry (keys under telemetry:) sends the gateway's traces and metrics
// to an OTLP endpoint: a collector, an agent or a vendor's intake.
type Telemetry struct {
	// ServiceName (service_name) is the service.name resource attribute.
	// Default "spillway".
	ServiceName string
	// OTLP is where and how the signals are sent.
	OTLP OTLP
	// Traces samples the requests traced.
	Traces Traces
	// Metrics is the export of the gateway's metrics.
	Metrics TelemetryMetrics
}

// OTLP (keys under telemetry.otlp:) is the endpoint that receives traces
// and metrics.
type OTLP struct {
	// Endpoint is the base URL, http:// or https://; traces go to its
	// /v1/traces and metrics to its /v1/metrics. Default
	// http://127.0.0.1:4318 (a collector or agent on the same host).
	Endpoint string
	// Protocol is http/protobuf, the only one supported (grpc is refused).
	Protocol string
	// Headers are sent with every export: a vendor's API key, written as
	// ${VAR} to keep it out of the file.
	Headers map[string]string
	// Timeout bounds one export. Default 10s.
	Timeout time.Duration
}

// Traces (keys under telemetry.traces:) says which requests are traced.
type Traces struct {
	// SampleRatio (sample_ratio) is the share of requests without a
	// sampled parent that start a trace, 0 to 1; a request whose
	// traceparent says sampled is traced whatever the ratio. Default 0.01.
	SampleRatio float64
}

// TelemetryMetrics (keys under telemetry.metrics:) is the OTLP export of
// the metrics /metrics serves.
type TelemetryMetrics struct {
	// Interval is how often they are exported. Default 60s; 0: not
	// exported over OTLP (Prometheus still scrapes them).
	Interval time.Duration
}

// TLS names the certificate files of a TLS listener. Relative paths are
// resolved against the configuration file's directory at load time.
type TLS struct {
	CertFile string // key cert_file
	KeyFile  string // key key_file
}

// Server hardens the public listener (keys under server:).
type Server struct {
	ReadHeaderTimeout time.Duration // read_header_timeout, default 10s
	IdleTimeout       time.Duration // idle_timeout, default 120s
	MaxHeaderBytes    int           // max_header_bytes, default 1MiB (1<<20)
	MaxBody           int64         // max_body, default 10MiB: larger request bodies get 413
	ShutdownGrace     time.Duration // shutdown_grace, default 30s: in-flight requests drain this long
	// WriteTimeout is the longest a write to a client may make no progress
	// (write_timeout, default 60s): past it the response is abandoned and
	// its upstream connection closed.
	WriteTimeout time.Duration
	// H2C lets the public listener serve HTTP/2 over cleartext (h2c, with
	// prior knowledge, as gRPC clients speak it) besides HTTP/1 (h2c,
	// default false). With tls: HTTP/2 is on anyway.
	H2C bool
}

// Admin is the admin listener (keys under admin:).
type Admin struct {
	Listen string // listen, default 127.0.0.1:9901
	Token  string // token: Bearer token for mutating calls; required off loopback
	// Tokens are named tokens, each with a role (tokens:), besides Token.
	Tokens []AdminToken
	// AllowedHosts are Host names the admin listener answers besides
	// loopback names and its own address (allowed_hosts): any other Host
	// is refused (DNS rebinding).
	AllowedHosts []string
}

// The roles of an admin token (AdminToken.Role).
const (
	// RoleAdmin may make every admin call.
	RoleAdmin = "admin"
	// RoleRead may make the token-guarded reads (GET) only.
	RoleRead = "read"
)

// AdminToken is a named Bearer token of the admin API (an item of
// admin.tokens): its name says who made a runtime change, in the audit
// log and the overrides.
type AdminToken struct {
	Name  string // name, required, unique
	Token string // token, required, unique
	Role  string // role, required: admin or read
}

// AdminTokenName is the name of admin.token among the named tokens.
const AdminTokenName = "admin"

// AllTokens returns every token of the admin API: admin.token, when set,
// as the token named "admin" with the admin role, then admin.tokens.
func (a Admin) AllTokens() []AdminToken {
	if a.Token == "" {
		return a.Tokens
	}
	return append([]AdminToken{{Name: AdminTokenName, Token: a.Token, Role: RoleAdmin}}, a.Tokens...)
}

// Queue configures the durable queue of async routes (keys under queue:):
// an embedded NATS JetStream server by default, an external NATS cluster
// when Servers is set. The fields map one to one to queue.Config. Relative
// paths (dir, credentials, tls files) are resolved against the
// configuration file's directory at load time.
type Queue struct {
	// Embedded server only.
	Dir       string // dir, default ./spillway-data
	MaxMemory int64  // max_memory, default 64MiB (JetStream's own default takes 75 % of RAM)
	MaxDisk   int64  // max_disk, default 10GiB (JetStream's own default takes 75 % of the disk)
	// SyncAlways (sync: always) fsyncs every write before it is
	// acknowledged; otherwise the store is flushed every SyncInterval
	// (sync: interval, JetStream's 2m default, or a duration such as 30s).
	SyncAlways   bool
	SyncInterval time.Duration

	// External cluster only.
	Servers     []string // servers: nats://, tls:// or ws:// URLs
	Credentials string   // credentials: a .creds file (JWT + nkey)
	User        string   // user
	Password    string   // password
	Token       string   // token
	TLS         *QueueTLS
	// PingInterval (ping_interval) is how often the connection pings the
	// server it is on, default 1s: a server that leaves pings unanswered for
	// 3 intervals is left for another one of the cluster.
	PingInterval time.Duration

	Replicas     int           // replicas of the streams and the status bucket, default 1 (1..5)
	DedupeWindow time.Duration // dedupe_window: how long an Idempotency-Key dedupes, default 1h
	Timeout      time.Duration // timeout of each store operation, default 2s
	Prefix       string        // prefix of the streams, consumers and bucket, default SPILLWAY
	DeadLetters  DeadLetters   // dead_letters: the dead-letter stream's bounds
}

// DeadLetters bounds the dead-letter stream (keys under
// queue.dead_letters:); when a new dead letter does not fit, the oldest
// are dropped (and counted). Defaults: max_bytes 10 % of max_disk
// embedded (at most half of it), 1GiB with an external cluster;
// max_messages 100000.
type DeadLetters struct {
	MaxBytes    int64 // max_bytes
	MaxMessages int   // max_messages
}

// QueueTLS names the files of a TLS connection to an external cluster
// (keys under queue.tls:); empty fields use the system defaults.
type QueueTLS struct {
	CA   string // ca: CA bundle
	Cert string // cert: client certificate (with key)
	Key  string // key
}

// Upstream is one upstream after merging defaults (keys under
// upstreams.NAME, and defaults: for everything but instances).
type Upstream struct {
	Name      string
	Instances []string // instances: http:// or https:// URLs, at least one
	Balance   string   // balance: round_robin (default) | least_request | random
	Timeouts  Timeouts
	Retry     Retry
	Breaker   Breaker
	Bulkhead  Bulkhead
	// Throttle is the client-side adaptive throttle (throttle:); nil when
	// none is configured.
	Throttle *Throttle
	// Hedge hedges the upstream's GET, HEAD and OPTIONS requests (hedge:);
	// nil when none is configured.
	Hedge *Hedge
	// Health is the active health check; nil when none is configured.
	Health  *Health
	Outlier Outlier
	// MaxReplayBody bounds the request body buffered for retries
	// (max_replay_body, default 1MiB); a larger body is sent once.
	MaxReplayBody int64
	// TLS is how the gateway connects to the https:// instances and
	// health-checks them (tls:); nil: the system's roots, TLS 1.2 or later.
	TLS *UpstreamTLS
	// HTTP2 speaks HTTP/2 only to the instances (http2, default false):
	// cleartext h2c with prior knowledge to http:// ones, ALPN h2 to
	// https:// ones. gRPC upstreams need it for http:// instances.
	HTTP2 bool
	// Shed is priority load shedding against the upstream's bulkhead
	// (shed:); nil: none, every priority is admitted up to the bulkhead.
	Shed *Shed
	// SlowStart ramps the traffic up after an instance comes back and
	// after the breaker closes (slow_start:).
	SlowStart SlowStart
}

// Shed is priority load shedding (keys under shed:): a request of a class
// is refused (503 bulkhead_full) once the upstream's bulkhead is that full;
// critical requests are never shed, only refused by the full bulkhead.
type Shed struct {
	SheddableAt float64 // sheddable_at, default 0.5 (50%)
	DefaultAt   float64 // default_at, default 0.9 (90%); at least sheddable_at
}

// DefaultShed is the Shed of an upstream that writes shed: {}.
func DefaultShed() Shed { return Shed{SheddableAt: 0.5, DefaultAt: 0.9} }

// SlowStart (keys under slow_start:) is the window over which an instance
// that comes back (health, end of an ejection, restored, added by a reload)
// and the breaker after it closes ramp up from 10 % of their traffic.
type SlowStart struct {
	Window time.Duration // window, default 0: off
}

// UpstreamTLS is the client side of the TLS connections to an upstream's
// https:// instances (keys under tls: of an upstream or of defaults:).
// Relative paths are resolved against the configuration file's directory
// at load time, and every file is read and parsed there.
type UpstreamTLS struct {
	// CAFile (ca_file) is a PEM bundle of the CAs that sign the instances'
	// certificates, trusted instead of the system's roots; "": the system's.
	CAFile string
	// CertFile and KeyFile (cert_file, key_file), together, are the client
	// certificate presented to an instance that asks for one (mutual TLS).
	CertFile string
	KeyFile  string
	// ServerName (server_name) is the name the instances' certificates are
	// checked against, and sent as SNI; "": each instance's host.
	ServerName string
	// MinVersion (min_version) is the lowest TLS version accepted: "1.2"
	// (default) or "1.3".
	MinVersion string
	// InsecureSkipVerify (insecure_skip_verify, default false) accepts any
	// certificate the instances present: anyone on the path can read and
	// change the traffic. validate and serve warn of it.
	InsecureSkipVerify bool
}

// Timeouts (keys under timeouts:). Defaults: connect 2s, attempt 5s, total 15s.
type Timeouts struct {
	Connect time.Duration
	Attempt time.Duration
	Total   time.Duration
	// BodyIdle (body_idle, default 30s) fails a response body that sends no
	// byte for this long once its headers came: a stream (server-sent
	// events, a long download) may last as long as it keeps moving.
	BodyIdle time.Duration
}

// Retry (keys under retry:). Defaults as retry.Config{} and retry.BudgetConfig{}.
type Retry struct {
	MaxAttempts int // max_attempts, total, the first included; default 3
	Backoff     Backoff
	// On lists what is retried: connect_failure, timeout, reset, and status
	// codes (502, 503, 504, ...). Default [connect_failure, timeout, reset, 502, 503, 504].
	On     []string
	Budget Budget
	// RetryAfterMax caps a Retry-After the upstream sends
	// (retry_after_max, default 300s, the brief's gateway cap).
	RetryAfterMax time.Duration
}

// Backoff (keys under backoff:).
type Backoff struct {
	Type       string        // type: exponential (default) | constant | decorrelated
	Initial    time.Duration // initial, default 100ms
	Max        time.Duration // max, default 5s
	Multiplier float64       // multiplier, default 2
	Jitter     string        // jitter: full (default) | none | equal | decorrelated
}

// Budget (keys under budget:). Ratio and MinPerSecond may be 0 (none);
// both 0 is a budget that allows no retry (one attempt per request).
// Note that retry.BudgetConfig reads 0 as "default" and refuses both
// negative: [Upstream.BudgetConfig] writes a negative number for one 0,
// and no budget (and [Upstream.RetryConfig] a single attempt) for both.
type Budget struct {
	Ratio        float64       // ratio, default 0.2 (percentages accepted: 20%)
	Window       time.Duration // window, default 10s
	MinPerSecond float64       // min_per_second, default 10
}

// Breaker (keys under breaker:).
type Breaker struct {
	// Mode is closed (normal, default) | disabled | forced_open | metrics_only.
	Mode           string
	Window         Window
	MinCalls       int     // min_calls, default 20
	FailureRate    float64 // failure_rate, default 0.5 (50%)
	SlowCall       SlowCall
	OpenFor        time.Duration // open_for, default 30s
	MaxOpenFor     time.Duration // max_open_for, default 5m
	HalfOpenProbes int           // half_open_probes, default 5
}

// Window (keys under window:).
type Window struct {
	Type string        // type: count (default) | time
	Size int           // size for a count window, default 100
	Time time.Duration // size for a time window ("size: 10s"), default 10s
}

// SlowCall (keys under slow_call:). Duration 0 turns slow-call detection off.
type SlowCall struct {
	Duration time.Duration // duration
	Rate     float64       // rate, default 1.0 (100%)
}

// Bulkhead (keys under bulkhead:). Defaults: 100 concurrent, no queue.
type Bulkhead struct {
	// Adaptive is "" (a fixed max_concurrent, default) | gradient2 | aimd |
	// vegas: the limit then moves in [min_concurrent, max_concurrent],
	// starting at 20 (clamped).
	Adaptive      string
	MinConcurrent int           // min_concurrent, default 1; adaptive only
	MaxConcurrent int           // max_concurrent; adaptive: the upper bound
	MaxWaiting    int           // max_waiting
	MaxWait       time.Duration // max_wait
}

// Throttle is the client-side adaptive throttle (keys under throttle:):
// the gateway refuses a request locally with probability
// max(0, (requests − K·accepts) / (requests + 1)) over Window, at most
// MaxRejection. Defaults: k 2, window 2m, max_rejection 90%.
type Throttle struct {
	K            float64       // k, at least 1
	Window       time.Duration // window
	MaxRejection float64       // max_rejection, in (0, 1]
}

// Hedge (keys under hedge:): a hedge of an attempt unanswered after Delay,
// or, when Delay is 0, after the Quantile of the upstream's latency.
// Defaults: delay p95, max 1.
type Hedge struct {
	Delay    time.Duration // delay: a duration
	Quantile float64       // delay: pNN, the quantile NN/100 (p95: 0.95)
	Max      int           // max: hedges per attempt, default 1
}

// Health is the active health check (keys under health:).
type Health struct {
	Path           string        // path, required
	Interval       time.Duration // interval, default 5s (jittered ±10 %)
	Timeout        time.Duration // timeout, default 1s
	UnhealthyAfter int           // unhealthy_after, default 3
	HealthyAfter   int           // healthy_after, default 2
}

// Outlier is passive outlier ejection (keys under outlier:).
type Outlier struct {
	ConsecutiveFailures int           // consecutive_failures, default 5; 0 turns ejection off
	Ejection            time.Duration // ejection, default 30s (× number of ejections)
	MaxEjection         time.Duration // max_ejection, default 300s
	MaxEjected          float64       // max_ejected, default 0.5 (50%)
	// PanicThreshold: when the share of usable instances falls below it,
	// balance over all instances (panic_threshold, default 0.5 (50%)).
	PanicThreshold float64
}

// Route is one route (an item of routes:).
type Route struct {
	Name        string
	Match       Match
	StripPrefix bool // strip_prefix: remove Match.PathPrefix before proxying
	// AllowUnsafePaths (allow_unsafe_paths) forwards paths that some
	// upstreams resolve outside the route (a leading //, a backslash, a
	// control character, /..;/, double-encoded dots), refused by default.
	AllowUnsafePaths bool
	Upstream         string // upstream: the name of an upstream, required unless async-only
	// Timeout is the route's total timeout (timeout, default: the upstream's total).
	Timeout time.Duration
	// MaxBody bounds the request body (max_body, default server.max_body,
	// at most that): a Content-Length over it is answered 413 before
	// anything is sent; a longer chunked body is cut where it passes it,
	// unless BufferBody.
	MaxBody int64
	// BufferBody (buffer_body, default false) reads a body without a
	// Content-Length, up to MaxBody, before sending it: one over the limit
	// is answered 413 and never reaches the upstream, at the cost of
	// holding up to MaxBody in memory per request in flight.
	BufferBody bool
	Fallback   []Fallback // fallback: tried in order
	Optional   bool       // optional: answer Default at once while the upstream fails
	Default    *Static    // default: required when Optional
	Async      *Async     // async: accept the request into the queue, deliver it later
	// Fault is the fault the gateway injects into the route's attempts
	// (fault:); nil when none.
	Fault *Fault
	// Upgrade says which protocol upgrades (WebSocket...) the route
	// proxies and how long an upgraded connection may live (upgrade:);
	// nil: DefaultUpgrade.
	Upgrade *Upgrade
	// RateLimit caps how often each client may call the route
	// (rate_limit:), checked before anything else is done for the
	// request; nil when none.
	RateLimit *RateLimit
	// Priority is the class of the route's requests for load shedding
	// (priority:); nil: DefaultPriority.
	Priority *Priority
}

// Priority (keys under priority:) classes a route's requests for priority
// load shedding (an upstream's shed:).
type Priority struct {
	// Default is the class of a request without a valid Spillway-Priority
	// header, or of every request when the header is not trusted:
	// critical, default or sheddable (default, default "default").
	Default string
	// TrustHeader (trust_header, default true) takes the class from the
	// request's Spillway-Priority header. The header is the client's word:
	// where clients must not choose, set it false, or overwrite the header
	// at the edge in front of the gateway.
	TrustHeader bool
}

// DefaultPriority is the Priority of a route that writes no priority:.
func DefaultPriority() Priority { return Priority{Default: "default", TrustHeader: true} }

// Upgrade (keys under upgrade:): the HTTP/1.1 Upgrade protocols a route
// proxies as a tunnel once its upstream answered 101, and the limits of
// such a connection. A request for a protocol not listed is proxied as an
// ordinary request, its Upgrade header dropped (RFC 9110 §7.8).
type Upgrade struct {
	// Protocols are the Upgrade tokens allowed, lower case (protocols,
	// default [websocket]; [] allows none).
	Protocols []string
	// IdleTimeout closes a connection that carried no byte either way for
	// this long (idle_timeout, default 5m; 0: never).
	IdleTimeout time.Duration
	// MaxLifetime closes a connection this long after its upgrade
	// (max_lifetime, default 0: never).
	MaxLifetime time.Duration
}

// DefaultUpgrade is the Upgrade of a route that writes no upgrade:.
func DefaultUpgrade() Upgrade {
	return Upgrade{Protocols: []string{"websocket"}, IdleTimeout: 5 * time.Minute}
}

// Allows reports whether u allows the Upgrade token proto (any case).
func (u *Upgrade) Allows(proto string) bool {
	for _, p := range u.Protocols {
		if strings.EqualFold(p, proto) {
			return true
		}
	}
	return false
}

// Fault is the fault a route injects into the attempts it sends to its
// upstream (keys under fault:): each attempt draws its delay and its abort
// apart, each at its percentage.
type Fault struct {
	Delay *FaultDelay // delay: the attempt waits before it is sent
	Abort *FaultAbort // abort: the attempt is answered Status without being sent
	// Headers (headers, default false) lets a request ask for a fault with
	// the Spillway-Fault-Delay and Spillway-Fault-Abort headers.
	Headers bool
}

// FaultDelay delays Percent % of the attempts by Duration (keys under
// fault.delay:, both required).
type FaultDelay struct {
	Percent  float64       // percent: 0 to 100
	Duration time.Duration // duration: more than 0, at most MaxFaultDelay
}

// FaultAbort answers Percent % of the attempts with Status (keys under
// fault.abort:, both required).
type FaultAbort struct {
	Percent float64 // percent: 0 to 100
	Status  int     // status: 400 to 599
}

// Match (keys under match:). Every set condition must hold.
type Match struct {
	Host       string            // host, exact, without port
	PathPrefix string            // path_prefix
	Path       string            // path: exact
	Methods    []string          // methods, upper case
	Headers    map[string]string // headers: name → exact value
}

// Fallback is one step of a fallback chain: exactly one field is set.
type Fallback struct {
	Upstream   string      // upstream: a replica or alternative provider
	StaleCache *StaleCache // stale_cache
	Static     *Static     // static
}

// StaleCache (keys under stale_cache:).
type StaleCache struct {
	TTL           time.Duration // ttl: how long an entry is fresh (served only as fallback anyway), default 10s
	ServeStaleFor time.Duration // serve_stale_for: how long after ttl it may still be served, default 24h
	MaxEntries    int           // max_entries, default 10000
	// MaxBytes bounds the bytes held (keys, header names and values,
	// bodies): max_bytes, default 64MiB.
	MaxBytes int64
	// MaxEntryBytes is the largest entry stored, counted as MaxBytes counts:
	// max_entry_bytes, default 1MiB (max_bytes when smaller), at most
	// max_bytes.
	MaxEntryBytes int64
	// IgnoreCookies names the cookies that do not make a request personal
	// (analytics, consent): ignore_cookies. A request with any other cookie
	// is neither stored nor answered from the cache.
	IgnoreCookies []string
}

// Static is a fixed response (keys under static: and default:).
type Static struct {
	Status  int               // status, default 200
	Headers map[string]string // headers
	Body    string            // body, inline
	File    string            // file: read at load time into Body, relative to the config file
}

// Async makes a route asynchronous (keys under async:): its requests are
// stored in the queue, answered 202, and delivered to the route's upstream
// by a worker. Defaults, the brief's example: max_attempts 20, backoff
// {initial 1s, max 5m, multiplier 2, jitter full}, retention 72h, max_body
// 1MiB; concurrency 8, ordered false.
type Async struct {
	MaxAttempts int           // max_attempts, delivery attempts before the dead-letter queue
	Backoff     Backoff       // backoff between attempts (exponential; jitter none, full or equal)
	Retention   time.Duration // retention of a job's status and of its dead letter
	MaxBody     int64         // max_body: larger request bodies get 413
	Concurrency int           // concurrency: deliveries at once per gateway process
	Ordered     bool          // ordered: one at a time, in acceptance order
	// KeyScopeHeader scopes Idempotency-Key by a client identity, the
	// value of this header (key_scope: header:NAME, canonical name): two
	// clients' keys never meet. "" (key_scope: route, the default): the
	// keys are shared by every client of the route.
	KeyScopeHeader string
}
