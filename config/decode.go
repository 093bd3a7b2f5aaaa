package config

import (
	"fmt"
	"maps"
	"net/textproto"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spillway-dev/spillway/throttle"
)

// Built-in defaults, from the brief's table "Defaults and where they come
// from" (docs/configuration.md repeats them with their provenance).
const (
	defaultListen      = "127.0.0.1:8080"
	defaultAdminListen = "127.0.0.1:9901"
	defaultQueueDir    = "./spillway-data"
	mib                = 1 << 20
)

// DefaultQueue is the queue: section when the file says nothing: an
// embedded store in ./spillway-data (relative to the configuration file).
func DefaultQueue() Queue {
	return Queue{
		Dir: defaultQueueDir, MaxMemory: 64 * mib, MaxDisk: 10 << 30, SyncInterval: 2 * time.Minute,
		Replicas: 1, DedupeWindow: time.Hour, Timeout: 2 * time.Second, Prefix: "SPILLWAY",
		PingInterval: time.Second,
		DeadLetters:  DeadLetters{MaxMessages: 100_000},
	}
}

// DefaultServer is the public listener's hardening when server: says nothing.
func DefaultServer() Server {
	return Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: mib, MaxBody: 10 * mib, ShutdownGrace: 30 * time.Second,
		WriteTimeout: 60 * time.Second}
}

// DefaultUpstream is what an upstream gets for every key that neither it
// nor defaults: sets.
func DefaultUpstream() Upstream {
	return Upstream{
		Balance:  "round_robin",
		Timeouts: Timeouts{Connect: 2 * time.Second, Attempt: 5 * time.Second, Total: 15 * time.Second, BodyIdle: 30 * time.Second},
		Retry: Retry{
			MaxAttempts:   3,
			Backoff:       Backoff{Type: "exponential", Initial: 100 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, Jitter: "full"},
			On:            []string{"connect_failure", "timeout", "reset", "502", "503", "504"},
			Budget:        Budget{Ratio: 0.2, Window: 10 * time.Second, MinPerSecond: 10},
			RetryAfterMax: 300 * time.Second,
		},
		Breaker: Breaker{
			Mode: "closed", Window: Window{Type: "count", Size: 100, Time: 10 * time.Second},
			MinCalls: 20, FailureRate: 0.5, SlowCall: SlowCall{Rate: 1},
			OpenFor: 30 * time.Second, MaxOpenFor: 5 * time.Minute, HalfOpenProbes: 5,
		},
		Bulkhead:      Bulkhead{MinConcurrent: 1, MaxConcurrent: 100},
		Outlier:       Outlier{ConsecutiveFailures: 5, Ejection: 30 * time.Second, MaxEjection: 300 * time.Second, MaxEjected: 0.5, PanicThreshold: 0.5},
		MaxReplayBody: mib,
	}
}

func defaultHealth() Health {
	return Health{Interval: 5 * time.Second, Timeout: time.Second, UnhealthyAfter: 3, HealthyAfter: 2}
}

func defaultAsync() Async {
	return Async{
		MaxAttempts: 20,
		Backoff:     Backoff{Type: "exponential", Initial: time.Second, Max: 5 * time.Minute, Multiplier: 2, Jitter: "full"},
		Retention:   72 * time.Hour, MaxBody: mib, Concurrency: 8,
	}
}

// sectionDefaults are the values of a section that exists only when the
// file writes it: each key it does not write takes these.
var sectionDefaults = map[reflect.Type]func() any{
	reflect.TypeFor[Health](): func() any { h := defaultHealth(); return &h },
	reflect.TypeFor[Throttle](): func() any {
		return &Throttle{K: throttle.DefaultK, Window: throttle.DefaultWindow, MaxRejection: throttle.DefaultMaxRejectionRate}
	},
	reflect.TypeFor[Hedge]():    func() any { return &Hedge{Quantile: 0.95, Max: 1} },
	reflect.TypeFor[Async]():    func() any { a := defaultAsync(); return &a },
	reflect.TypeFor[Upgrade]():  func() any { u := DefaultUpgrade(); return &u },
	reflect.TypeFor[Shed]():     func() any { d := DefaultShed(); return &d },
	reflect.TypeFor[Priority](): func() any { p := DefaultPriority(); return &p },
	reflect.TypeFor[StaleCache](): func() any {
		return &StaleCache{TTL: 10 * time.Second, ServeStaleFor: 24 * time.Hour, MaxEntries: 10000, MaxBytes: 64 * mib}
	},
	reflect.TypeFor[Static](): func() any { return &Static{Status: 200} },
	reflect.TypeFor[Telemetry](): func() any {
		return &Telemetry{ServiceName: "spillway",
			OTLP:    OTLP{Endpoint: DefaultOTLPEndpoint, Protocol: OTLPHTTPProtobuf, Timeout: 10 * time.Second},
			Traces:  Traces{SampleRatio: 0.01},
			Metrics: TelemetryMetrics{Interval: time.Minute}}
	},
	// A fault's percentages have no default (validateFault): -1 says
	// "not written".
	reflect.TypeFor[FaultDelay](): func() any { return &FaultDelay{Percent: -1} },
	reflect.TypeFor[FaultAbort](): func() any { return &FaultAbort{Percent: -1} },
	// A rate limit's burst follows its rate when not written (route).
	reflect.TypeFor[RateLimit](): func() any { return rateLimitDefaults() },
}

func (u Upstream) clone() Upstream {
	u.Instances = slices.Clone(u.Instances)
	u.Retry.On = slices.Clone(u.Retry.On)
	if u.Health != nil {
		h := *u.Health
		u.Health = &h
	}
	if u.Throttle != nil {
		t := *u.Throttle
		u.Throttle = &t
	}
	if u.Hedge != nil {
		h := *u.Hedge
		u.Hedge = &h
	}
	if u.Shed != nil {
		sh := *u.Shed
		u.Shed = &sh
	}
	return u
}

// config resolves the decoded file: the built-in defaults, overlaid by
// what the file writes; the defaults: mapping overlaid on the built-in
// upstream, and each upstream overlaid on that.
func (d *decoder) config(y *fileYAML) *Config {
	cfg := &Config{File: d.file, Listen: defaultListen, Server: DefaultServer(),
		Admin: Admin{Listen: defaultAdminListen}, Queue: DefaultQueue(), Upstreams: map[string]*Upstream{}}
	d.apply(reflect.ValueOf(cfg).Elem(), reflect.ValueOf(y).Elem())
	base := DefaultUpstream()
	d.upstream(&base, &y.Defaults)
	for _, name := range slices.Sorted(maps.Keys(y.Upstreams)) {
		p := "$.upstreams." + name
		if !validName(name) {
			d.errAt(d.keyAt[p], p, "upstreams: invalid name %q (letters, digits, '.', '_' and '-' only)", name)
		}
		if d.null[p] {
			d.errAt(d.keyAt[p], p, "%s: instances are required", key(p))
		}
		u := base.clone()
		u.Name = name
		if uy := y.Upstreams[name]; uy != nil {
			d.upstream(&u, uy)
		}
		cfg.Upstreams[name] = &u
	}
	for i := range y.Routes {
		cfg.Routes = append(cfg.Routes, d.route(&y.Routes[i], fmt.Sprintf("$.routes[%d]", i)))
	}
	return cfg
}

// upstream overlays the keys of y onto u.
func (d *decoder) upstream(u *Upstream, y *upstreamYAML) {
	d.apply(reflect.ValueOf(u).Elem(), reflect.ValueOf(y).Elem())
	impliedDecorrelated(&u.Retry.Backoff, &y.Retry.Backoff)
}

// impliedDecorrelated completes a backoff that names decorrelated on one
// side only: the decorrelated scheme is both a growth and a jitter.
func impliedDecorrelated(b *Backoff, y *backoffYAML) {
	typeSet, jitterSet := y.Type.f != nil, y.Jitter.f != nil
	if typeSet && !jitterSet && b.Type == "decorrelated" {
		b.Jitter = "decorrelated"
	}
	if jitterSet && !typeSet && b.Jitter == "decorrelated" {
		b.Type = "decorrelated"
	}
}

func (d *decoder) route(y *routeYAML, path string) *Route {
	r := &Route{}
	d.apply(reflect.ValueOf(r).Elem(), reflect.ValueOf(y).Elem())
	if r.Async != nil {
		impliedDecorrelated(&r.Async.Backoff, &y.Async.Backoff)
	}
	for j := range y.Fallback {
		sy, step := &y.Fallback[j], &r.Fallback[j]
		if n := written(reflect.ValueOf(sy).Elem()); n != 1 {
			p := fmt.Sprintf("%s.fallback[%d]", path, j)
			d.errAt(d.set[p], p, "%s: a fallback step has exactly one of %s, found %d", key(p), oneOfKeys(reflect.TypeFor[fallbackYAML]()), n)
		}
		if step.StaleCache != nil {
			d.staleCache(step.StaleCache, sy.StaleCache)
		}
		if step.Static != nil {
			d.static(step.Static, sy.Static)
		}
	}
	if r.Default != nil {
		d.static(r.Default, y.Default)
	}
	if r.RateLimit != nil {
		rateLimitBurst(r.RateLimit, y.RateLimit)
	}
	return r
}

// written counts the keys a schema struct holds: the file wrote them.
func written(v reflect.Value) int {
	n := 0
	for i := range v.NumField() {
		f := v.Field(i)
		if l, ok := f.Interface().(leaf); ok && l.f != nil || !ok && !f.IsZero() {
			n++
		}
	}
	return n
}

// oneOfKeys writes the keys of the schema struct t as "a, b or c".
func oneOfKeys(t reflect.Type) string {
	names := keyNames(t)
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// keyScope decodes async.key_scope: route (dst ""), or header:NAME (dst
// the canonical NAME).
func (d *decoder) keyScope(f field, dst *string) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	name, isHeader := headerName(s)
	switch {
	case s == "route":
		*dst = ""
	case !isHeader:
		d.errorf(f.node(), f.path, "%s: %q is neither route nor header:NAME (a header name such as header:X-Api-Key)", key(f.path), s)
	case name == "Idempotency-Key":
		d.errorf(f.node(), f.path, "%s: the scope is a client identity, not the Idempotency-Key itself", key(f.path))
	default:
		*dst = name
	}
}

// headerName reads header:NAME, NAME a header name, into NAME in its
// canonical form; ok is false for anything else.
func headerName(s string) (name string, ok bool) {
	name, ok = strings.CutPrefix(s, "header:")
	name = strings.TrimSpace(name)
	if !ok || !validToken(name) {
		return "", false
	}
	return textproto.CanonicalMIMEHeaderKey(name), true
}

// validToken reports whether s is an HTTP token (RFC 9110 §5.6.2), the
// syntax of a header name and of a cookie name (RFC 6265 §4.1.1).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if c != '.' && c != '_' && c != '-' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// windowSize reads size as a number of calls or a duration, as the
// window's type (given beside it or inherited) says.
func (d *decoder) windowSize(f field, w *Window) {
	if w.Type == "time" {
		d.duration(f, &w.Time, true)
		return
	}
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	if _, err := strconv.Atoi(s); err != nil {
		if _, e := parseDuration(s); e == "" {
			d.errorf(f.node(), f.path, "%s: %s is a duration but the window's type is count: write a number of calls, or type: time", key(f.path), s)
			return
		}
	}
	d.integer(f, &w.Size, 1)
}

// hedgeDelay parses hedge.delay: pNN (a quantile of the latency, from p50
// to p99.9) or a positive duration; one clears the other.
func (d *decoder) hedgeDelay(f field, h *Hedge) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	if q, isQ := strings.CutPrefix(s, "p"); isQ {
		v, err := strconv.ParseFloat(q, 64)
		if err != nil || v < 50 || v >= 100 {
			d.errorf(f.node(), f.path, "%s: %s is not a quantile: write p50 to p99.9 (p95: the 95th percentile of the latency), or a duration", key(f.path), s)
			return
		}
		// Parsed as a fraction (99.9e-2), not divided: p99.9 is 0.999.
		h.Quantile, _ = strconv.ParseFloat(q+"e-2", 64)
		h.Delay = 0
		return
	}
	var v time.Duration
	before := len(d.errs)
	d.duration(f, &v, true)
	if len(d.errs) == before {
		h.Delay, h.Quantile = v, 0
	}
}

// maxCacheEntryBytes bounds stale_cache.max_entry_bytes: an entry's weight
// in the cache is a uint32, and a fallback answer of a gigabyte held in
// memory is already a mistake.
const maxCacheEntryBytes = 1 << 30

// staleCache checks max_entry_bytes against max_bytes, or derives it.
func (d *decoder) staleCache(sc *StaleCache, y *staleCacheYAML) {
	e := y.MaxEntryBytes.f
	switch {
	case e == nil:
		sc.MaxEntryBytes = min(mib, sc.MaxBytes)
	case sc.MaxEntryBytes > sc.MaxBytes && (y.MaxBytes.f == nil || !d.failed(y.MaxBytes.f.path)):
		d.errorf(e.node(), e.path, "%s: %d bytes is more than max_bytes (%d): such an entry could never be stored",
			key(e.path), sc.MaxEntryBytes, sc.MaxBytes)
	case sc.MaxEntryBytes > maxCacheEntryBytes:
		d.errorf(e.node(), e.path, "%s: %d bytes is more than 1GiB", key(e.path), sc.MaxEntryBytes)
	}
}

// cookieName accepts a cookie name (an RFC 6265 token).
func (d *decoder) cookieName(f field, dst *string) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	if !validToken(s) {
		d.errorf(f.node(), f.path, "%s: not a cookie name (letters, digits and !#$%%&'*+-.^_`|~ only)", key(f.path))
		return
	}
	*dst = s
}

// protocol reads an upgrade: protocols item: a token, kept in lower case
// (Upgrade tokens compare without case).
func (d *decoder) protocol(f field, dst *string) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	if !validToken(s) || strings.EqualFold(s, "h2c") {
		d.errorf(f.node(), f.path, "%s: not an upgrade protocol (a token: letters, digits and !#$%%&'*+-.^_`|~; h2c is not proxied)", key(f.path))
		return
	}
	*dst = strings.ToLower(s)
}

// static reads file, relative to the configuration file, into the body.
func (d *decoder) static(s *Static, y *staticYAML) {
	file := y.File.f
	if file == nil || s.File == "" {
		return
	}
	if y.Body.f != nil {
		d.errorf(file.keyN, file.path, "%s: set body or file, not both", key(parentPath(file.path)))
		return
	}
	d.readStatic(*file, s)
}

// parentPath is the path of the mapping that holds the key at path.
func parentPath(path string) string { return path[:strings.LastIndexByte(path, '.')] }

// sync decodes queue.sync: always, interval (the default interval) or a
// duration.
func (d *decoder) sync(f field, q *Queue) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	switch s {
	case "always":
		q.SyncAlways = true
	case "interval":
	default:
		if _, e := parseDuration(s); e != "" {
			d.errorf(f.node(), f.path, "%s: %q is neither always, interval nor a duration (like 30s)", key(f.path), s)
			return
		}
		d.duration(f, &q.SyncInterval, true)
	}
}

var retryConditions = []string{"connect_failure", "timeout", "reset"}

// retryOn accepts what a retry may be for: a failure or an HTTP status.
func (d *decoder) retryOn(f field, dst *string) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	if code, err := strconv.Atoi(s); slices.Contains(retryConditions, s) || err == nil && code >= 100 && code <= 599 {
		*dst = s
		return
	}
	msg := fmt.Sprintf("%s: %q is neither one of %s nor an HTTP status", key(f.path), s, strings.Join(retryConditions, ", "))
	if sg := suggest(s, retryConditions); sg != "" {
		msg += fmt.Sprintf("; did you mean %q?", sg)
	}
	d.errorf(f.node(), f.path, "%s", msg)
}

// headerBytes accepts a size of at most 1GiB.
func (d *decoder) headerBytes(f field, dst *int) {
	n := int64(*dst)
	d.size(f, &n, true)
	if n > 1<<30 {
		d.errorf(f.node(), f.path, "%s: at most 1GiB", key(f.path))
		return
	}
	*dst = int(n)
}
