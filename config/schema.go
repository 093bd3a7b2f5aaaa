package config

// The file's schema: one Go type per mapping of the file, one field per
// key. A key is spelled once, in its field's yaml tag; the decoder (the
// shape check of walk.go, goccy/go-yaml's strict struct decoding, and apply
// of apply.go) and Keys read the tags, so a key written in a file, accepted
// by the decoder and listed by Keys is the same key.
//
// A field is named as the field of the resolved type (types.go) it fills,
// and a leaf holds a value as written until apply parses it into that
// field, by the field's Go type and the cfg tag's options:
//
//   - time.Duration: a duration, more than 0; zero: 0 allowed.
//   - int64: a size (1MiB, 512KiB, 10MB, bytes), more than 0; zero: 0 allowed.
//   - int, float64: a number, at least 1; zero: at least 0.
//   - float64 with percent: a share 50% or 0.5; with rate: a share above 0%.
//   - string with a values tag: one of the values listed.
//   - any other option names a parser of its own (parsers in apply.go).
//
// answer:"degraded" marks a route key that gives a degraded answer, which
// an async route (answered 202) cannot have.
//
// only:"embedded" or only:"external" marks a queue: key that one kind of
// store ignores (validate warns when it is written for the other).
//
// refuse:"KEY: MSG" marks the key of the mapping below that is known but
// refused there, with MSG.

// fileYAML: the top level of the file (Config).
type fileYAML struct {
	Listen    leaf           `yaml:"listen"`
	TLS       *tlsYAML       `yaml:"tls"`
	Server    serverYAML     `yaml:"server"`
	Admin     adminYAML      `yaml:"admin"`
	Readiness readinessYAML  `yaml:"readiness"`
	Queue     queueYAML      `yaml:"queue"`
	Telemetry *telemetryYAML `yaml:"telemetry"`
	// The defaults: mapping, the upstreams and the routes are resolved
	// apart (decode.go): the defaults are merged into every upstream.
	Defaults  upstreamYAML             `yaml:"defaults" cfg:"apart" refuse:"instances: instances are not inherited; list them under each upstream"`
	Upstreams map[string]*upstreamYAML `yaml:"upstreams" cfg:"apart"`
	Routes    []routeYAML              `yaml:"routes" cfg:"apart"`
}

// telemetryYAML: keys under telemetry: (Telemetry).
type telemetryYAML struct {
	ServiceName leaf                 `yaml:"service_name"`
	OTLP        otlpYAML             `yaml:"otlp"`
	Traces      tracesYAML           `yaml:"traces"`
	Metrics     telemetryMetricsYAML `yaml:"metrics"`
}

// otlpYAML: keys under telemetry.otlp: (OTLP).
type otlpYAML struct {
	Endpoint leaf            `yaml:"endpoint" cfg:"otlp_endpoint"`
	Protocol leaf            `yaml:"protocol" cfg:"otlp_protocol"`
	Headers  map[string]leaf `yaml:"headers"`
	Timeout  leaf            `yaml:"timeout"`
}

// tracesYAML: keys under telemetry.traces: (Traces).
type tracesYAML struct {
	SampleRatio leaf `yaml:"sample_ratio" cfg:"percent"`
}

// telemetryMetricsYAML: keys under telemetry.metrics: (TelemetryMetrics).
type telemetryMetricsYAML struct {
	Interval leaf `yaml:"interval" cfg:"zero"` // 0: no metrics over OTLP
}

// tlsYAML: keys under tls: (TLS).
type tlsYAML struct {
	CertFile leaf `yaml:"cert_file"`
	KeyFile  leaf `yaml:"key_file"`
}

// serverYAML: keys under server: (Server).
type serverYAML struct {
	ReadHeaderTimeout leaf `yaml:"read_header_timeout"`
	IdleTimeout       leaf `yaml:"idle_timeout"`
	MaxHeaderBytes    leaf `yaml:"max_header_bytes" cfg:"header_bytes"`
	MaxBody           leaf `yaml:"max_body"`
	ShutdownGrace     leaf `yaml:"shutdown_grace" cfg:"zero"`
	WriteTimeout      leaf `yaml:"write_timeout"`
	H2C               leaf `yaml:"h2c"`
}

// adminYAML: keys under admin: (Admin).
type adminYAML struct {
	Listen       leaf             `yaml:"listen"`
	Token        leaf             `yaml:"token"`
	Tokens       []adminTokenYAML `yaml:"tokens"`
	AllowedHosts []leaf           `yaml:"allowed_hosts"`
}

// adminTokenYAML: keys of a named admin token (AdminToken).
type adminTokenYAML struct {
	Name  leaf `yaml:"name"`
	Token leaf `yaml:"token"`
	Role  leaf `yaml:"role" values:"admin read"`
}

// readinessYAML: keys under readiness: (Readiness).
type readinessYAML struct {
	RequiredUpstreams []leaf `yaml:"required_upstreams"`
}

// queueYAML: keys under queue: (Queue).
type queueYAML struct {
	Dir          leaf            `yaml:"dir" only:"embedded"`
	MaxMemory    leaf            `yaml:"max_memory" only:"embedded"`
	MaxDisk      leaf            `yaml:"max_disk" only:"embedded"`
	SyncAlways   leaf            `yaml:"sync" cfg:"sync" only:"embedded"`
	Servers      []leaf          `yaml:"servers"`
	Credentials  leaf            `yaml:"credentials" only:"external"`
	User         leaf            `yaml:"user" only:"external"`
	Password     leaf            `yaml:"password" only:"external"`
	Token        leaf            `yaml:"token" only:"external"`
	TLS          *queueTLSYAML   `yaml:"tls" only:"external"`
	Replicas     leaf            `yaml:"replicas"`
	DedupeWindow leaf            `yaml:"dedupe_window"`
	Timeout      leaf            `yaml:"timeout"`
	Prefix       leaf            `yaml:"prefix"`
	PingInterval leaf            `yaml:"ping_interval" only:"external"`
	DeadLetters  deadLettersYAML `yaml:"dead_letters"`
}

// queueTLSYAML: keys under queue.tls: (QueueTLS).
type queueTLSYAML struct {
	CA   leaf `yaml:"ca"`
	Cert leaf `yaml:"cert"`
	Key  leaf `yaml:"key"`
}

// deadLettersYAML: keys under queue.dead_letters: (DeadLetters).
type deadLettersYAML struct {
	MaxBytes    leaf `yaml:"max_bytes"`
	MaxMessages leaf `yaml:"max_messages"`
}

// upstreamYAML: keys under upstreams.NAME: and defaults: (Upstream).
type upstreamYAML struct {
	Instances     []leaf           `yaml:"instances"`
	Balance       leaf             `yaml:"balance" values:"round_robin least_request random"`
	Timeouts      timeoutsYAML     `yaml:"timeouts"`
	Retry         retryYAML        `yaml:"retry"`
	Breaker       breakerYAML      `yaml:"breaker"`
	Bulkhead      bulkheadYAML     `yaml:"bulkhead"`
	Throttle      *throttleYAML    `yaml:"throttle"`
	Hedge         *hedgeYAML       `yaml:"hedge"`
	Health        *healthYAML      `yaml:"health"`
	Outlier       outlierYAML      `yaml:"outlier"`
	MaxReplayBody leaf             `yaml:"max_replay_body" cfg:"zero"`
	TLS           *upstreamTLSYAML `yaml:"tls"`
	HTTP2         leaf             `yaml:"http2"`
	Shed          *shedYAML        `yaml:"shed"`
	SlowStart     slowStartYAML    `yaml:"slow_start"`
}

// shedYAML: keys under shed: (Shed).
type shedYAML struct {
	SheddableAt leaf `yaml:"sheddable_at" cfg:"shed_share"`
	DefaultAt   leaf `yaml:"default_at" cfg:"shed_share"`
}

// slowStartYAML: keys under slow_start: (SlowStart).
type slowStartYAML struct {
	Window leaf `yaml:"window" cfg:"zero"` // 0: no slow start
}

// upstreamTLSYAML: keys under upstreams.NAME.tls: and defaults.tls:
// (UpstreamTLS), spelled as the listener's tls: keys.
type upstreamTLSYAML struct {
	CAFile             leaf `yaml:"ca_file"`
	CertFile           leaf `yaml:"cert_file"`
	KeyFile            leaf `yaml:"key_file"`
	ServerName         leaf `yaml:"server_name"`
	MinVersion         leaf `yaml:"min_version" values:"1.2 1.3"`
	InsecureSkipVerify leaf `yaml:"insecure_skip_verify"`
}

// timeoutsYAML: keys under timeouts: (Timeouts).
type timeoutsYAML struct {
	Connect  leaf `yaml:"connect"`
	Attempt  leaf `yaml:"attempt"`
	Total    leaf `yaml:"total"`
	BodyIdle leaf `yaml:"body_idle"`
}

// retryYAML: keys under retry: (Retry).
type retryYAML struct {
	MaxAttempts   leaf        `yaml:"max_attempts"`
	Backoff       backoffYAML `yaml:"backoff"`
	On            []leaf      `yaml:"on" cfg:"retry_on"`
	Budget        budgetYAML  `yaml:"budget"`
	RetryAfterMax leaf        `yaml:"retry_after_max"`
}

// backoffYAML: keys under backoff:, of retry: and of async: (Backoff).
type backoffYAML struct {
	Type       leaf `yaml:"type" values:"exponential constant decorrelated"`
	Initial    leaf `yaml:"initial"`
	Max        leaf `yaml:"max"`
	Multiplier leaf `yaml:"multiplier"`
	Jitter     leaf `yaml:"jitter" values:"full none equal decorrelated"`
}

// budgetYAML: keys under retry.budget: (Budget).
type budgetYAML struct {
	Ratio        leaf `yaml:"ratio" cfg:"percent"`
	Window       leaf `yaml:"window"`
	MinPerSecond leaf `yaml:"min_per_second" cfg:"zero"`
}

// breakerYAML: keys under breaker: (Breaker).
type breakerYAML struct {
	Mode           leaf         `yaml:"mode" values:"closed disabled forced_open metrics_only"`
	Window         windowYAML   `yaml:"window"`
	MinCalls       leaf         `yaml:"min_calls"`
	FailureRate    leaf         `yaml:"failure_rate" cfg:"rate"`
	SlowCall       slowCallYAML `yaml:"slow_call"`
	OpenFor        leaf         `yaml:"open_for"`
	MaxOpenFor     leaf         `yaml:"max_open_for"`
	HalfOpenProbes leaf         `yaml:"half_open_probes"`
}

// windowYAML's size is a number of calls or a duration, as the type says:
// it is parsed after type (the field order), with the type inherited or
// written beside it.
type windowYAML struct {
	Type leaf `yaml:"type" values:"count time"`
	Size leaf `yaml:"size" cfg:"window_size"`
}

// slowCallYAML: keys under breaker.slow_call: (SlowCall).
type slowCallYAML struct {
	Duration leaf `yaml:"duration" cfg:"zero"`
	Rate     leaf `yaml:"rate" cfg:"rate"`
}

// bulkheadYAML: keys under bulkhead: (Bulkhead).
type bulkheadYAML struct {
	Adaptive      leaf `yaml:"adaptive" values:"gradient2 aimd vegas"` // absent: a fixed limit
	MinConcurrent leaf `yaml:"min_concurrent"`
	MaxConcurrent leaf `yaml:"max_concurrent"`
	MaxWaiting    leaf `yaml:"max_waiting" cfg:"zero"` // 0: rejected at once when full
	MaxWait       leaf `yaml:"max_wait" cfg:"zero"`    // 0: a queued call waits for its deadline
}

// throttleYAML: keys under throttle: (Throttle).
type throttleYAML struct {
	K            leaf `yaml:"k"` // at least 1
	Window       leaf `yaml:"window"`
	MaxRejection leaf `yaml:"max_rejection" cfg:"rate"`
}

// hedgeYAML: keys under hedge: (Hedge).
type hedgeYAML struct {
	Delay leaf `yaml:"delay" cfg:"hedge_delay"`
	Max   leaf `yaml:"max"`
}

// outlierYAML: keys under outlier: (Outlier).
type outlierYAML struct {
	ConsecutiveFailures leaf `yaml:"consecutive_failures" cfg:"zero"` // 0 turns ejection off
	Ejection            leaf `yaml:"ejection"`
	MaxEjection         leaf `yaml:"max_ejection"`
	MaxEjected          leaf `yaml:"max_ejected" cfg:"percent"`
	PanicThreshold      leaf `yaml:"panic_threshold" cfg:"percent"`
}

// healthYAML: keys under health: (Health).
type healthYAML struct {
	// Path has no default: validate requires it once health: is written.
	Path           leaf `yaml:"path"`
	Interval       leaf `yaml:"interval"`
	Timeout        leaf `yaml:"timeout"`
	UnhealthyAfter leaf `yaml:"unhealthy_after"`
	HealthyAfter   leaf `yaml:"healthy_after"`
}

// routeYAML: keys of an item of routes: (Route).
type routeYAML struct {
	Name             leaf           `yaml:"name"`
	Match            matchYAML      `yaml:"match"`
	StripPrefix      leaf           `yaml:"strip_prefix"`
	AllowUnsafePaths leaf           `yaml:"allow_unsafe_paths"`
	Upstream         leaf           `yaml:"upstream"`
	Timeout          leaf           `yaml:"timeout"`
	MaxBody          leaf           `yaml:"max_body"`
	BufferBody       leaf           `yaml:"buffer_body"`
	Fallback         []fallbackYAML `yaml:"fallback" answer:"degraded"`
	Optional         leaf           `yaml:"optional" answer:"degraded"`
	Default          *staticYAML    `yaml:"default" answer:"degraded"`
	Async            *asyncYAML     `yaml:"async"`
	Fault            *faultYAML     `yaml:"fault"`
	Upgrade          *upgradeYAML   `yaml:"upgrade"`
	RateLimit        *rateLimitYAML `yaml:"rate_limit"`
	Priority         *priorityYAML  `yaml:"priority"`
}

// rateLimitYAML: keys under rate_limit: (RateLimit). A limit shared
// between replicas (shared:) will be a key of its own here.
type rateLimitYAML struct {
	Rate    leaf `yaml:"rate" cfg:"limit_rate"`
	Burst   leaf `yaml:"burst"`
	Key     leaf `yaml:"key" cfg:"limit_key"`
	MaxKeys leaf `yaml:"max_keys"`
}

// priorityYAML: keys under priority: (Priority).
type priorityYAML struct {
	Default     leaf `yaml:"default" values:"critical default sheddable"`
	TrustHeader leaf `yaml:"trust_header"`
}

// upgradeYAML: keys under upgrade: (Upgrade).
type upgradeYAML struct {
	Protocols   []leaf `yaml:"protocols" cfg:"protocol"`
	IdleTimeout leaf   `yaml:"idle_timeout" cfg:"zero"`
	MaxLifetime leaf   `yaml:"max_lifetime" cfg:"zero"`
}

// faultYAML: keys under fault: (Fault).
type faultYAML struct {
	Delay   *faultDelayYAML `yaml:"delay"`
	Abort   *faultAbortYAML `yaml:"abort"`
	Headers leaf            `yaml:"headers"`
}

// faultDelayYAML: keys under fault.delay: (FaultDelay).
type faultDelayYAML struct {
	Percent  leaf `yaml:"percent" cfg:"fault_percent"`
	Duration leaf `yaml:"duration" cfg:"fault_delay"`
}

// faultAbortYAML: keys under fault.abort: (FaultAbort).
type faultAbortYAML struct {
	Percent leaf `yaml:"percent" cfg:"fault_percent"`
	Status  leaf `yaml:"status" cfg:"fault_status"`
}

// matchYAML: keys under match: (Match).
type matchYAML struct {
	Host       leaf            `yaml:"host" cfg:"host"`
	PathPrefix leaf            `yaml:"path_prefix"`
	Path       leaf            `yaml:"path"`
	Methods    []leaf          `yaml:"methods" cfg:"method"`
	Headers    map[string]leaf `yaml:"headers"`
}

// fallbackYAML: keys of a fallback step (Fallback): exactly one is written.
type fallbackYAML struct {
	Upstream   leaf            `yaml:"upstream"`
	StaleCache *staleCacheYAML `yaml:"stale_cache"`
	Static     *staticYAML     `yaml:"static"`
}

// staleCacheYAML: keys under stale_cache: (StaleCache).
type staleCacheYAML struct {
	TTL           leaf   `yaml:"ttl"`
	ServeStaleFor leaf   `yaml:"serve_stale_for" cfg:"zero"`
	MaxEntries    leaf   `yaml:"max_entries"`
	MaxBytes      leaf   `yaml:"max_bytes"`
	MaxEntryBytes leaf   `yaml:"max_entry_bytes"`
	IgnoreCookies []leaf `yaml:"ignore_cookies" cfg:"cookie"`
}

// staticYAML: keys under static: and default: (Static).
type staticYAML struct {
	Status  leaf            `yaml:"status" cfg:"status"`
	Headers map[string]leaf `yaml:"headers"`
	Body    leaf            `yaml:"body"`
	File    leaf            `yaml:"file"`
}

// asyncYAML: keys under async: (Async).
type asyncYAML struct {
	MaxAttempts    leaf        `yaml:"max_attempts"`
	Backoff        backoffYAML `yaml:"backoff"`
	Retention      leaf        `yaml:"retention"`
	MaxBody        leaf        `yaml:"max_body"`
	Concurrency    leaf        `yaml:"concurrency"`
	Ordered        leaf        `yaml:"ordered"`
	KeyScopeHeader leaf        `yaml:"key_scope" cfg:"key_scope"`
}
