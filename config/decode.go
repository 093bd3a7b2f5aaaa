package config

import (
	"fmt"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
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
		Timeouts: Timeouts{Connect: 2 * time.Second, Attempt: 5 * time.Second, Total: 15 * time.Second},
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
		Bulkhead:      Bulkhead{MaxConcurrent: 100},
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

func (u Upstream) clone() Upstream {
	u.Instances = slices.Clone(u.Instances)
	u.Retry.On = slices.Clone(u.Retry.On)
	if u.Health != nil {
		h := *u.Health
		u.Health = &h
	}
	return u
}

func (d *decoder) config(root ast.Node) *Config {
	cfg := &Config{File: d.file, Listen: defaultListen, Server: DefaultServer(),
		Admin: Admin{Listen: defaultAdminListen}, Queue: DefaultQueue(), Upstreams: map[string]*Upstream{}}
	var defaultsF, upstreamsF, routesF *field
	for _, f := range d.fields(root, "$", rootKeys.names()...) {
		switch f.key {
		case "listen":
			d.str(f, &cfg.Listen)
		case "tls":
			cfg.TLS = &TLS{}
			for _, g := range d.fields(f.value, f.path, tlsKeys.names()...) {
				switch g.key {
				case "cert_file":
					d.str(g, &cfg.TLS.CertFile)
				case "key_file":
					d.str(g, &cfg.TLS.KeyFile)
				}
			}
		case "server":
			d.server(f, &cfg.Server)
		case "admin":
			for _, g := range d.fields(f.value, f.path, adminKeys.names()...) {
				switch g.key {
				case "listen":
					d.str(g, &cfg.Admin.Listen)
				case "token":
					d.str(g, &cfg.Admin.Token)
				case "allowed_hosts":
					d.strings(g, &cfg.Admin.AllowedHosts)
				}
			}
		case "readiness":
			for _, g := range d.fields(f.value, f.path, readinessKeys.names()...) {
				d.strings(g, &cfg.Readiness.RequiredUpstreams)
			}
		case "queue":
			d.queue(f, &cfg.Queue)
		case "defaults":
			defaultsF = &f
		case "upstreams":
			upstreamsF = &f
		case "routes":
			routesF = &f
		}
	}
	base := DefaultUpstream()
	if defaultsF != nil {
		d.upstream(defaultsF.value, defaultsF.path, &base, true)
	}
	if upstreamsF != nil {
		for _, f := range d.fields(upstreamsF.value, upstreamsF.path) {
			u := base.clone()
			u.Name = f.key
			if !validName(f.key) {
				d.errorf(f.keyN, f.path, "upstreams: invalid name %q (letters, digits, '.', '_' and '-' only)", f.key)
			}
			if f.value == nil {
				d.errorf(f.keyN, f.path, "%s: instances are required", key(f.path))
			}
			d.upstream(f.value, f.path, &u, false)
			cfg.Upstreams[f.key] = &u
		}
	}
	if routesF != nil {
		for i, n := range d.items(*routesF) {
			p := fmt.Sprintf("%s[%d]", routesF.path, i)
			d.set[p] = posOf(n)
			cfg.Routes = append(cfg.Routes, d.route(n, p))
		}
	}
	return cfg
}

func (d *decoder) queue(f field, q *Queue) {
	for _, g := range d.fields(f.value, f.path, queueKeys.names()...) {
		switch g.key {
		case "dir":
			d.str(g, &q.Dir)
		case "max_memory":
			d.size(g, &q.MaxMemory, true)
		case "max_disk":
			d.size(g, &q.MaxDisk, true)
		case "sync":
			s, ok := d.scalar(g)
			if !ok {
				continue
			}
			switch s {
			case "always":
				q.SyncAlways = true
			case "interval":
			default:
				if _, e := parseDuration(s); e != "" {
					d.errorf(g.node(), g.path, "%s: %q is neither always, interval nor a duration (like 30s)", key(g.path), s)
					continue
				}
				d.duration(g, &q.SyncInterval, true)
			}
		case "servers":
			d.strings(g, &q.Servers)
		case "credentials":
			d.str(g, &q.Credentials)
		case "user":
			d.str(g, &q.User)
		case "password":
			d.str(g, &q.Password)
		case "token":
			d.str(g, &q.Token)
		case "tls":
			q.TLS = &QueueTLS{}
			for _, h := range d.fields(g.value, g.path, queueTLSKeys.names()...) {
				switch h.key {
				case "ca":
					d.str(h, &q.TLS.CA)
				case "cert":
					d.str(h, &q.TLS.Cert)
				case "key":
					d.str(h, &q.TLS.Key)
				}
			}
		case "replicas":
			d.integer(g, &q.Replicas, 1)
		case "dedupe_window":
			d.duration(g, &q.DedupeWindow, true)
		case "timeout":
			d.duration(g, &q.Timeout, true)
		case "prefix":
			d.str(g, &q.Prefix)
		case "ping_interval":
			d.duration(g, &q.PingInterval, true)
		case "dead_letters":
			for _, h := range d.fields(g.value, g.path, deadLetterKeys.names()...) {
				switch h.key {
				case "max_bytes":
					d.size(h, &q.DeadLetters.MaxBytes, true)
				case "max_messages":
					d.integer(h, &q.DeadLetters.MaxMessages, 1)
				}
			}
		}
	}
}

// keyScope decodes async.key_scope: route (dst ""), or header:NAME (dst
// the canonical NAME).
func (d *decoder) keyScope(f field, dst *string) {
	s, ok := d.scalar(f)
	if !ok {
		return
	}
	name, isHeader := strings.CutPrefix(s, "header:")
	name = strings.TrimSpace(name)
	switch {
	case s == "route":
		*dst = ""
	case !isHeader || !validToken(name):
		d.errorf(f.node(), f.path, "%s: %q is neither route nor header:NAME (a header name such as header:X-Api-Key)", key(f.path), s)
	case textproto.CanonicalMIMEHeaderKey(name) == "Idempotency-Key":
		d.errorf(f.node(), f.path, "%s: the scope is a client identity, not the Idempotency-Key itself", key(f.path))
	default:
		*dst = textproto.CanonicalMIMEHeaderKey(name)
	}
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

func (d *decoder) strings(f field, dst *[]string) {
	items := d.items(f)
	out := make([]string, 0, len(items))
	for i, n := range items {
		p := fmt.Sprintf("%s[%d]", f.path, i)
		d.set[p] = posOf(n)
		var s string
		before := len(d.errs)
		d.str(field{key: f.key, path: p, keyN: f.keyN, value: n}, &s)
		if len(d.errs) == before {
			out = append(out, s)
		}
	}
	*dst = out
}

func (d *decoder) stringMap(f field, dst *map[string]string) {
	m := map[string]string{}
	for _, g := range d.fields(f.value, f.path) {
		var s string
		if g.value == nil {
			d.errorf(g.keyN, g.path, "%s: a value is required", key(g.path))
			continue
		}
		d.str(g, &s)
		m[g.key] = s
	}
	*dst = m
}

func (d *decoder) server(f field, s *Server) {
	for _, g := range d.fields(f.value, f.path, serverKeys.names()...) {
		switch g.key {
		case "read_header_timeout":
			d.duration(g, &s.ReadHeaderTimeout, true)
		case "idle_timeout":
			d.duration(g, &s.IdleTimeout, true)
		case "max_header_bytes":
			n := int64(s.MaxHeaderBytes)
			d.size(g, &n, true)
			if n > 1<<30 {
				d.errorf(g.node(), g.path, "%s: at most 1GiB", key(g.path))
			} else {
				s.MaxHeaderBytes = int(n)
			}
		case "max_body":
			d.size(g, &s.MaxBody, true)
		case "shutdown_grace":
			d.duration(g, &s.ShutdownGrace, false)
		case "write_timeout":
			d.duration(g, &s.WriteTimeout, true)
		}
	}
}

// upstream overlays the keys of n onto u; isDefaults refuses instances,
// which are never inherited.
func (d *decoder) upstream(n ast.Node, path string, u *Upstream, isDefaults bool) {
	for _, f := range d.fields(n, path, upstreamKeys.names()...) {
		switch f.key {
		case "instances":
			if isDefaults {
				d.errorf(f.keyN, f.path, "defaults.instances: instances are not inherited; list them under each upstream")
				continue
			}
			d.strings(f, &u.Instances)
		case "balance":
			d.oneOf(f, &u.Balance, "round_robin", "least_request", "random")
		case "timeouts":
			for _, g := range d.fields(f.value, f.path, timeoutKeys.names()...) {
				switch g.key {
				case "connect":
					d.duration(g, &u.Timeouts.Connect, true)
				case "attempt":
					d.duration(g, &u.Timeouts.Attempt, true)
				case "total":
					d.duration(g, &u.Timeouts.Total, true)
				}
			}
		case "retry":
			d.retry(f, &u.Retry)
		case "breaker":
			d.breaker(f, &u.Breaker)
		case "bulkhead":
			for _, g := range d.fields(f.value, f.path, bulkheadKeys.names()...) {
				switch g.key {
				case "max_concurrent":
					d.integer(g, &u.Bulkhead.MaxConcurrent, 1)
				case "max_waiting":
					d.integer(g, &u.Bulkhead.MaxWaiting, 0)
				case "max_wait":
					d.duration(g, &u.Bulkhead.MaxWait, false)
				}
			}
		case "health":
			if u.Health == nil {
				h := defaultHealth()
				u.Health = &h
			}
			for _, g := range d.fields(f.value, f.path, healthKeys.names()...) {
				switch g.key {
				case "path":
					d.str(g, &u.Health.Path)
				case "interval":
					d.duration(g, &u.Health.Interval, true)
				case "timeout":
					d.duration(g, &u.Health.Timeout, true)
				case "unhealthy_after":
					d.integer(g, &u.Health.UnhealthyAfter, 1)
				case "healthy_after":
					d.integer(g, &u.Health.HealthyAfter, 1)
				}
			}
		case "outlier":
			o := &u.Outlier
			for _, g := range d.fields(f.value, f.path, outlierKeys.names()...) {
				switch g.key {
				case "consecutive_failures":
					d.integer(g, &o.ConsecutiveFailures, 0)
				case "ejection":
					d.duration(g, &o.Ejection, true)
				case "max_ejection":
					d.duration(g, &o.MaxEjection, true)
				case "max_ejected":
					d.percent(g, &o.MaxEjected)
				case "panic_threshold":
					d.percent(g, &o.PanicThreshold)
				}
			}
		case "max_replay_body":
			d.size(f, &u.MaxReplayBody, false)
		}
	}
}

var retryOn = []string{"connect_failure", "timeout", "reset"}

func (d *decoder) retry(f field, r *Retry) {
	for _, g := range d.fields(f.value, f.path, retryKeys.names()...) {
		switch g.key {
		case "max_attempts":
			d.integer(g, &r.MaxAttempts, 1)
		case "backoff":
			d.backoff(g, &r.Backoff)
		case "on":
			var on []string
			d.strings(g, &on)
			for i, s := range on {
				if contains(retryOn, s) {
					continue
				}
				if code, err := strconv.Atoi(s); err == nil && code >= 100 && code <= 599 {
					continue
				}
				p := fmt.Sprintf("%s[%d]", g.path, i)
				msg := fmt.Sprintf("%s: %q is neither one of %s nor an HTTP status", key(p), s, strings.Join(retryOn, ", "))
				if sg := suggest(s, retryOn); sg != "" {
					msg += fmt.Sprintf("; did you mean %q?", sg)
				}
				d.errorf(d.items(g)[i], p, "%s", msg)
			}
			r.On = on
		case "budget":
			for _, h := range d.fields(g.value, g.path, budgetKeys.names()...) {
				switch h.key {
				case "ratio":
					d.percent(h, &r.Budget.Ratio)
				case "window":
					d.duration(h, &r.Budget.Window, true)
				case "min_per_second":
					d.number(h, &r.Budget.MinPerSecond, 0)
				}
			}
		case "retry_after_max":
			d.duration(g, &r.RetryAfterMax, true)
		}
	}
}

func (d *decoder) backoff(f field, b *Backoff) {
	typeSet, jitterSet := false, false
	for _, g := range d.fields(f.value, f.path, backoffKeys.names()...) {
		switch g.key {
		case "type":
			typeSet = true
			d.oneOf(g, &b.Type, "exponential", "constant", "decorrelated")
		case "initial":
			d.duration(g, &b.Initial, true)
		case "max":
			d.duration(g, &b.Max, true)
		case "multiplier":
			d.number(g, &b.Multiplier, 1)
		case "jitter":
			jitterSet = true
			d.oneOf(g, &b.Jitter, "full", "none", "equal", "decorrelated")
		}
	}
	// The decorrelated scheme is both a growth and a jitter: naming it on
	// one side implies the other.
	if typeSet && !jitterSet && b.Type == "decorrelated" {
		b.Jitter = "decorrelated"
	}
	if jitterSet && !typeSet && b.Jitter == "decorrelated" {
		b.Type = "decorrelated"
	}
}

func (d *decoder) breaker(f field, b *Breaker) {
	for _, g := range d.fields(f.value, f.path, breakerKeys.names()...) {
		switch g.key {
		case "mode":
			d.oneOf(g, &b.Mode, "closed", "disabled", "forced_open", "metrics_only")
		case "window":
			var sizeF *field
			for _, h := range d.fields(g.value, g.path, windowKeys.names()...) {
				switch h.key {
				case "type":
					d.oneOf(h, &b.Window.Type, "count", "time")
				case "size":
					sizeF = &h
				}
			}
			if sizeF != nil {
				d.windowSize(*sizeF, &b.Window)
			}
		case "min_calls":
			d.integer(g, &b.MinCalls, 1)
		case "failure_rate":
			d.rate(g, &b.FailureRate)
		case "slow_call":
			for _, h := range d.fields(g.value, g.path, slowCallKeys.names()...) {
				switch h.key {
				case "duration":
					d.duration(h, &b.SlowCall.Duration, false)
				case "rate":
					d.rate(h, &b.SlowCall.Rate)
				}
			}
		case "open_for":
			d.duration(g, &b.OpenFor, true)
		case "max_open_for":
			d.duration(g, &b.MaxOpenFor, true)
		case "half_open_probes":
			d.integer(g, &b.HalfOpenProbes, 1)
		}
	}
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

func (d *decoder) route(n ast.Node, path string) *Route {
	r := &Route{}
	for _, f := range d.fields(n, path, routeKeys.names()...) {
		switch f.key {
		case "name":
			d.str(f, &r.Name)
		case "match":
			d.match(f, &r.Match)
		case "strip_prefix":
			d.boolean(f, &r.StripPrefix)
		case "allow_unsafe_paths":
			d.boolean(f, &r.AllowUnsafePaths)
		case "upstream":
			d.str(f, &r.Upstream)
		case "timeout":
			d.duration(f, &r.Timeout, true)
		case "fallback":
			for i, s := range d.items(f) {
				r.Fallback = append(r.Fallback, d.fallbackStep(s, fmt.Sprintf("%s[%d]", f.path, i)))
			}
		case "optional":
			d.boolean(f, &r.Optional)
		case "default":
			r.Default = d.static(f)
		case "async":
			a := defaultAsync()
			for _, g := range d.fields(f.value, f.path, asyncKeys.names()...) {
				switch g.key {
				case "max_attempts":
					d.integer(g, &a.MaxAttempts, 1)
				case "backoff":
					d.backoff(g, &a.Backoff)
				case "retention":
					d.duration(g, &a.Retention, true)
				case "max_body":
					d.size(g, &a.MaxBody, true)
				case "concurrency":
					d.integer(g, &a.Concurrency, 1)
				case "ordered":
					d.boolean(g, &a.Ordered)
				case "key_scope":
					d.keyScope(g, &a.KeyScopeHeader)
				}
			}
			r.Async = &a
		case "fault":
			// Known, so that it is not "unknown key", but refused: a fault
			// that the file asks for and the gateway does not inject would
			// make a drill pass for the wrong reason.
			d.errorf(f.keyN, f.path, "%s: fault injection is not available yet: remove fault: from the route", key(f.path))
		}
	}
	return r
}

func (d *decoder) match(f field, m *Match) {
	for _, g := range d.fields(f.value, f.path, matchKeys.names()...) {
		switch g.key {
		case "host":
			d.str(g, &m.Host)
			m.Host = strings.ToLower(m.Host)
		case "path_prefix":
			d.str(g, &m.PathPrefix)
		case "path":
			d.str(g, &m.Path)
		case "methods":
			d.strings(g, &m.Methods)
			for i := range m.Methods {
				m.Methods[i] = strings.ToUpper(m.Methods[i])
			}
		case "headers":
			d.stringMap(g, &m.Headers)
		}
	}
}

func (d *decoder) fallbackStep(n ast.Node, path string) Fallback {
	var fb Fallback
	fields := d.fields(n, path, fallbackKeys.names()...)
	for _, f := range fields {
		switch f.key {
		case "upstream":
			d.str(f, &fb.Upstream)
		case "stale_cache":
			fb.StaleCache = d.staleCache(f)
		case "static":
			fb.Static = d.static(f)
		}
	}
	if len(fields) != 1 && d.resolve(n) != nil {
		d.errorf(n, path, "%s: a fallback step has exactly one of upstream, stale_cache or static, found %d", key(path), len(fields))
	}
	return fb
}

// maxCacheEntryBytes bounds stale_cache.max_entry_bytes: an entry's weight
// in the cache is a uint32, and a fallback answer of a gigabyte held in
// memory is already a mistake.
const maxCacheEntryBytes = 1 << 30

func (d *decoder) staleCache(f field) *StaleCache {
	sc := &StaleCache{TTL: 10 * time.Second, ServeStaleFor: 24 * time.Hour, MaxEntries: 10000, MaxBytes: 64 * mib}
	var entryBytes *field
	for _, g := range d.fields(f.value, f.path, staleCacheKeys.names()...) {
		switch g.key {
		case "ttl":
			d.duration(g, &sc.TTL, true)
		case "serve_stale_for":
			d.duration(g, &sc.ServeStaleFor, false)
		case "max_entries":
			d.integer(g, &sc.MaxEntries, 1)
		case "max_bytes":
			d.size(g, &sc.MaxBytes, true)
		case "max_entry_bytes":
			d.size(g, &sc.MaxEntryBytes, true)
			entryBytes = &g
		case "ignore_cookies":
			d.cookieNames(g, &sc.IgnoreCookies)
		}
	}
	switch {
	case entryBytes == nil:
		sc.MaxEntryBytes = min(mib, sc.MaxBytes)
	case sc.MaxEntryBytes > sc.MaxBytes && !d.failed(f.path+".max_bytes"):
		d.errorf(entryBytes.node(), entryBytes.path, "%s: %d bytes is more than max_bytes (%d): such an entry could never be stored",
			key(entryBytes.path), sc.MaxEntryBytes, sc.MaxBytes)
	case sc.MaxEntryBytes > maxCacheEntryBytes:
		d.errorf(entryBytes.node(), entryBytes.path, "%s: %d bytes is more than 1GiB", key(entryBytes.path), sc.MaxEntryBytes)
	}
	return sc
}

// cookieNames reads a list of cookie names (RFC 6265 tokens); an empty
// list is nil, as an absent one, so that both compare equal on reload.
func (d *decoder) cookieNames(f field, dst *[]string) {
	d.strings(f, dst)
	for i, name := range *dst {
		if !validToken(name) {
			p := fmt.Sprintf("%s[%d]", f.path, i)
			d.errPath(p, "%s: not a cookie name (letters, digits and !#$%%&'*+-.^_`|~ only)", key(p))
		}
	}
	if len(*dst) == 0 {
		*dst = nil
	}
}

func (d *decoder) static(f field) *Static {
	s := &Static{Status: 200}
	var fileF *field
	for _, g := range d.fields(f.value, f.path, staticKeys.names()...) {
		switch g.key {
		case "status":
			d.status(g, &s.Status)
		case "headers":
			d.stringMap(g, &s.Headers)
		case "body":
			d.str(g, &s.Body)
		case "file":
			d.str(g, &s.File)
			fileF = &g
		}
	}
	if fileF != nil && s.File != "" {
		if _, hasBody := d.set[f.path+".body"]; hasBody {
			d.errorf(fileF.keyN, fileF.path, "%s: set body or file, not both", key(f.path))
		} else {
			d.readStatic(*fileF, s)
		}
	}
	return s
}
