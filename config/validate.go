package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml/token"

	"github.com/spillway-dev/spillway/internal/redact"
)

// readStatic loads static.file, relative to the configuration file.
func (d *decoder) readStatic(f field, s *Static) {
	p := s.File
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.dir, p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		d.errorf(f.node(), f.path, "%s: cannot read %s: %v", key(f.path), p, unwrapPathError(err))
		return
	}
	s.Body = string(data)
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// at finds where the value of sub (like ".breaker.min_calls") of the
// upstream at upPath was written (see positionIn).
func (d *decoder) at(upPath, sub string) (string, token.Position) {
	return positionIn(d.set, upPath+sub)
}

// positionIn finds where the value at path was written in set: the key
// itself; for an upstream's key, else the defaults: entry it inherits;
// else the nearest enclosing key written.
func positionIn(set map[string]token.Position, path string) (string, token.Position) {
	if pos, ok := set[path]; ok {
		return path, pos
	}
	if rest, ok := strings.CutPrefix(path, "$.upstreams."); ok {
		if _, sub, ok := strings.Cut(rest, "."); ok {
			if pos, ok := set["$.defaults."+sub]; ok {
				return "$.defaults." + sub, pos
			}
		}
	}
	return nearest(set, path)
}

// nearest returns the longest prefix of path that was written.
func (d *decoder) nearest(path string) (string, token.Position) { return nearest(d.set, path) }

func nearest(set map[string]token.Position, path string) (string, token.Position) {
	for p := path; p != ""; {
		if pos, ok := set[p]; ok {
			return p, pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return "$", token.Position{Line: 1, Column: 1}
}

// failed reports whether decoding path (or a key under it) failed already,
// so that validation does not report the consequence a second time.
func (d *decoder) failed(path string) bool {
	for _, e := range d.errs {
		if e.Path == path || strings.HasPrefix(e.Path, path+".") || strings.HasPrefix(e.Path, path+"[") {
			return true
		}
	}
	return false
}

// replaced reports whether the value of sub (like ".timeouts.attempt") of
// the upstream at upPath is not one the file wrote, because decoding it, a
// key above it, or the defaults: value it inherits failed: a default stands
// in for it. A rule that compares it with another value is skipped: its
// message would be about a value the file does not contain, after the
// error that already names the bad one.
func (d *decoder) replaced(upPath string, subs ...string) bool {
	for _, sub := range subs {
		if d.decodeFailed(upPath + sub) {
			return true
		}
		if _, own := d.set[upPath+sub]; !own && d.decodeFailed("$.defaults"+sub) {
			return true
		}
	}
	return false
}

// decodeFailed reports whether decoding path, a key under it or a key
// above it failed. (Validation's own errors do not count: they are placed
// at the nearest key written, often above the value they are about.)
func (d *decoder) decodeFailed(path string) bool {
	for _, e := range d.errs[:d.decodeErrs] {
		if e.Path == path || strings.HasPrefix(path, e.Path+".") || strings.HasPrefix(path, e.Path+"[") ||
			strings.HasPrefix(e.Path, path+".") || strings.HasPrefix(e.Path, path+"[") {
			return true
		}
	}
	return false
}

func (d *decoder) errPath(path, format string, args ...any) {
	p, pos := d.nearest(path)
	d.errAt(pos, p, format, args...)
}

func (d *decoder) validate(cfg *Config) {
	d.decodeErrs = len(d.errs)
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		d.errPath("$.listen", "listen: %q is not a host:port address", cfg.Listen)
	}
	if cfg.TLS != nil {
		d.validateTLS(cfg.TLS)
	}
	d.validateAdmin(cfg.Admin)
	d.validateQueue(&cfg.Queue)
	d.validateTelemetry(cfg.Telemetry)
	names := make([]string, 0, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		d.validateUpstream(cfg.Upstreams[name])
	}
	d.validateRoutes(cfg, names)
	d.validateReadiness(cfg, names)
}

// validateTLS requires each file of tls: (every key of the schema's
// tlsYAML), and resolves it against the configuration file's directory.
func (d *decoder) validateTLS(tls *TLS) {
	for _, sf := range reflect.VisibleFields(reflect.TypeFor[tlsYAML]()) {
		name, p := yamlName(sf), reflect.ValueOf(tls).Elem().FieldByName(sf.Name).Addr().Interface().(*string)
		path := "$.tls." + name
		if *p == "" {
			d.errPath(path, "tls.%s is required", name)
			continue
		}
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(d.dir, *p)
		}
		if _, err := os.Stat(*p); err != nil {
			d.errPath(path, "tls.%s: cannot read %s: %v", name, *p, unwrapPathError(err))
		}
	}
}

// validateReadiness checks that readiness names configured upstreams, once
// each. (An item that failed to decode was dropped: the indexes would not
// match the file.)
func (d *decoder) validateReadiness(cfg *Config, upstreams []string) {
	const path = "$.readiness.required_upstreams"
	if d.failed(path) {
		return
	}
	seen := map[string]bool{}
	for i, name := range cfg.Readiness.RequiredUpstreams {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch _, ok := cfg.Upstreams[name]; {
		case !ok:
			d.errPath(p, "readiness.required_upstreams[%d]: unknown upstream %q%s", i, name, didYouMean(name, upstreams))
		case seen[name]:
			d.errPath(p, "readiness.required_upstreams[%d]: %q is listed twice", i, name)
		}
		seen[name] = true
	}
}

// minPingInterval is the shortest queue.ping_interval: a round trip to a
// healthy server on a congested network may take tens of milliseconds.
const minPingInterval = 100 * time.Millisecond

// validateQueue checks the queue: section and resolves its relative paths
// against the configuration file's directory.
func (d *decoder) validateQueue(q *Queue) {
	for i, s := range q.Servers {
		if u, err := url.Parse(s); err != nil || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) || u.Host == "" {
			d.errPath(fmt.Sprintf("$.queue.servers[%d]", i), "queue.servers[%d]: %q is not a nats://, tls:// or ws:// URL", i, redact.URL(s))
		}
	}
	if q.Replicas > 5 {
		d.errPath("$.queue.replicas", "queue.replicas: %d is more than 5 (JetStream's limit)", q.Replicas)
	}
	if q.Prefix == "" || strings.ContainsFunc(q.Prefix, func(c rune) bool {
		return c != '_' && c != '-' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9')
	}) {
		d.errPath("$.queue.prefix", "queue.prefix: %q must be letters, digits, '-' and '_'", q.Prefix)
	}
	external := len(q.Servers) > 0
	d.ignoredQueueKeys(external)
	if q.PingInterval < minPingInterval {
		d.errPath("$.queue.ping_interval", "queue.ping_interval: %s is less than %s (pings that often load the servers for no faster failover)",
			q.PingInterval, minPingInterval)
	}
	if (q.User != "") != (q.Password != "") {
		d.errPath("$.queue.user", "queue: user and password go together")
	}
	d.validateDeadLetters(q, external)
	for _, p := range []*string{&q.Dir, &q.Credentials} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(d.dir, *p)
		}
	}
	if q.TLS != nil {
		for _, p := range []*string{&q.TLS.CA, &q.TLS.Cert, &q.TLS.Key} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(d.dir, *p)
			}
		}
		if (q.TLS.Cert == "") != (q.TLS.Key == "") {
			d.errPath("$.queue.tls", "queue.tls: cert and key go together")
		}
	}
}

// ignoredQueueKeys warns of the queue: keys written that the store in
// use ignores: those tagged only:"embedded" in the schema with an external
// cluster, those tagged only:"external" with the embedded store.
func (d *decoder) ignoredQueueKeys(external bool) {
	for _, sf := range reflect.VisibleFields(reflect.TypeFor[queueYAML]()) {
		k := yamlName(sf)
		pos, written := d.set["$.queue."+k]
		switch only := sf.Tag.Get("only"); {
		case !written:
		case only == "embedded" && external:
			d.warnAt(pos, "$.queue."+k, "queue.%s only applies to the embedded store and is ignored with queue.servers", k)
		case only == "external" && !external:
			d.warnAt(pos, "$.queue."+k, "queue.%s only applies to an external cluster (queue.servers) and is ignored by the embedded store", k)
		}
	}
}

// validateDeadLetters fills in the dead-letter stream's byte bound when
// the file leaves it out (10 % of max_disk embedded, 1GiB external: the
// cluster's disk is unknown) and checks that the embedded store's shares
// fit: the dead letters may take at most half of max_disk, the status
// records take 10 % and the work stream the rest.
func (d *decoder) validateDeadLetters(q *Queue, external bool) {
	dl := &q.DeadLetters
	switch {
	case dl.MaxBytes == 0 && external:
		dl.MaxBytes = 1 << 30
	case dl.MaxBytes == 0:
		dl.MaxBytes = q.MaxDisk / 10
	case !external && dl.MaxBytes > q.MaxDisk/2 && !d.decodeFailed("$.queue.max_disk"):
		d.errPath("$.queue.dead_letters.max_bytes", "queue.dead_letters.max_bytes (%d bytes) is more than half of queue.max_disk (%d bytes): the work stream and the status records need the rest",
			dl.MaxBytes, q.MaxDisk)
	}
}

func (d *decoder) validateAdmin(a Admin) {
	host, _, err := net.SplitHostPort(a.Listen)
	if err != nil {
		d.errPath("$.admin.listen", "admin.listen: %q is not a host:port address", a.Listen)
		return
	}
	if !IsLoopback(host) && a.Token == "" && len(a.Tokens) == 0 {
		d.errPath("$.admin.listen", "admin.listen: %s is not a loopback address and admin.token is empty: the admin API would be open to the network (set a token or listen on 127.0.0.1)", a.Listen)
	}
	d.validateAdminTokens(a)
	for i, h := range a.AllowedHosts {
		if !validHostName(h) {
			d.errPath(fmt.Sprintf("$.admin.allowed_hosts[%d]", i), "admin.allowed_hosts[%d]: not a host name or an IP address (write it without scheme, port or path)", i)
		}
	}
}

// validateAdminTokens checks admin.tokens: each has a name, a token and a
// role; names and tokens are unique, admin.token counting as the token
// named "admin". The messages never quote a token.
func (d *decoder) validateAdminTokens(a Admin) {
	names := map[string]bool{}
	tokens := map[string]bool{}
	if a.Token != "" {
		names[AdminTokenName], tokens[a.Token] = true, true
	}
	for i, t := range a.Tokens {
		p := fmt.Sprintf("$.admin.tokens[%d]", i)
		switch {
		case t.Name == "":
			d.errPath(p, "admin.tokens[%d]: name is required", i)
		case names[t.Name]:
			d.errPath(p+".name", "admin.tokens[%d].name: %q is already a token's name (admin.token is named %q)", i, t.Name, AdminTokenName)
		}
		names[t.Name] = true
		switch {
		case t.Token == "":
			d.errPath(p, "admin.tokens[%d]: token is required and not empty (is its environment variable set?)", i)
		case tokens[t.Token]:
			d.errPath(p+".token", "admin.tokens[%d].token: the same token as another one: each token names one caller", i)
		}
		tokens[t.Token] = true
		if t.Role == "" && !d.decodeFailed(p+".role") {
			d.errPath(p, "admin.tokens[%d]: role is required: admin or read", i)
		}
	}
}

// validHostName reports whether h is a DNS name (letters, digits, '-' and
// '.', at most 253 bytes) or an IP address (an IPv6 one with or without
// brackets).
func validHostName(h string) bool {
	if net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	return !strings.ContainsFunc(h, func(c rune) bool {
		return c != '-' && c != '.' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9')
	})
}

// IsLoopback reports whether host (of a host:port listen address) only
// accepts local connections: localhost or a loopback IP. An empty host
// listens on every interface.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (d *decoder) validateUpstream(u *Upstream) {
	up := "$.upstreams." + u.Name
	name := "upstreams." + u.Name
	if len(u.Instances) == 0 && !d.failed(up+".instances") {
		d.errPath(up+".instances", "%s.instances: at least one instance is required", name)
	}
	for i, s := range u.Instances {
		p := fmt.Sprintf("%s.instances[%d]", up, i)
		pu, err := url.Parse(s)
		switch {
		case err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https"):
			d.errPath(p, "%s.instances[%d]: %q is not an http:// or https:// URL with a host", name, i, redact.URL(s))
		case pu.RawQuery != "" || pu.Fragment != "" || pu.User != nil:
			d.errPath(p, "%s.instances[%d]: %q must not carry a query, fragment or user info", name, i, redact.URL(s))
		case slices.Index(u.Instances, s) < i:
			d.errPath(p, "%s.instances[%d]: %q is listed twice", name, i, redact.URL(s))
		}
	}
	t := u.Timeouts
	switch {
	case d.replaced(up, ".timeouts.attempt", ".timeouts.total"):
		// Reported already; a default stands in for one of them.
	case t.Attempt > t.Total:
		p, pos := d.at(up, ".timeouts.attempt")
		d.errAt(pos, p, "%s.timeouts: attempt (%s) is longer than total (%s): attempt <= total", name, t.Attempt, t.Total)
	case t.Attempt == t.Total && u.Retry.MaxAttempts > 1:
		p, pos := d.at(up, ".timeouts.attempt")
		d.warnAt(pos, p, "%s.timeouts: attempt (%s) is not shorter than total (%s): the first attempt can use the whole budget and no retry will ever start", name, t.Attempt, t.Total)
	}
	b := u.Retry.Backoff
	if b.Max < b.Initial && !d.replaced(up, ".retry.backoff.max", ".retry.backoff.initial") {
		p, pos := d.at(up, ".retry.backoff.max")
		d.errAt(pos, p, "%s.retry.backoff: max (%s) is shorter than initial (%s)", name, b.Max, b.Initial)
	}
	if (b.Type == "decorrelated") != (b.Jitter == "decorrelated") && !d.replaced(up, ".retry.backoff.type", ".retry.backoff.jitter") {
		p, pos := d.at(up, ".retry.backoff.jitter")
		d.errAt(pos, p, "%s.retry.backoff: type %s with jitter %s: decorrelated is both a growth and a jitter, use it for both or neither", name, b.Type, b.Jitter)
	}
	rb := u.Retry.Budget
	if u.Retry.MaxAttempts > 1 && rb.Ratio == 0 && rb.MinPerSecond == 0 {
		p, pos := d.at(up, ".retry.budget")
		d.warnAt(pos, p, "%s.retry: max_attempts %d with a budget of ratio 0 and min_per_second 0: the budget allows no retry, every request gets one attempt (max_attempts: 1 says so)", name, u.Retry.MaxAttempts)
	}
	if u.Hedge != nil && rb.Ratio == 0 && rb.MinPerSecond == 0 {
		p, pos := d.at(up, ".hedge")
		d.warnAt(pos, p, "%s.hedge: with a retry budget of ratio 0 and min_per_second 0 the hedges draw from no budget: nothing but the delay bounds the load they add", name)
	}
	if u.HTTP2 && u.Health != nil {
		p, pos := d.at(up, ".health")
		d.warnAt(pos, p, "%s: http2 with health: the health check is an HTTP/1 GET, which a gRPC server refuses; check an HTTP port of the instances, or leave health off", name)
	}
	br := u.Breaker
	if br.MaxOpenFor < br.OpenFor && !d.replaced(up, ".breaker.max_open_for", ".breaker.open_for") {
		p, pos := d.at(up, ".breaker.max_open_for")
		d.errAt(pos, p, "%s.breaker: max_open_for (%s) is shorter than open_for (%s)", name, br.MaxOpenFor, br.OpenFor)
	}
	if bh := u.Bulkhead; bh.MinConcurrent > bh.MaxConcurrent && bh.Adaptive != "" &&
		!d.replaced(up, ".bulkhead.min_concurrent", ".bulkhead.max_concurrent") {
		p, pos := d.at(up, ".bulkhead.min_concurrent")
		d.errAt(pos, p, "%s.bulkhead: min_concurrent (%d) is more than max_concurrent (%d), the adaptive limit's bounds", name, bh.MinConcurrent, bh.MaxConcurrent)
	}
	if p, pos := d.at(up, ".bulkhead.min_concurrent"); u.Bulkhead.Adaptive == "" && p == up+".bulkhead.min_concurrent" {
		d.warnAt(pos, p, "%s.bulkhead: min_concurrent without adaptive is ignored: the limit is max_concurrent", name)
	}
	// The breaker's own warnings (a window it can never open on, one failed
	// call that opens it, a time window shorter than two attempts) come from
	// breaker.Config.Warnings, through gateway.Check.
	if h := u.Health; h != nil {
		if !strings.HasPrefix(h.Path, "/") {
			d.errPath(up+".health.path", "%s.health.path: %q must start with / (it is required when health is set)", name, h.Path)
		}
		if h.Timeout > h.Interval && !d.replaced(up, ".health.timeout", ".health.interval") {
			p, pos := d.at(up, ".health.timeout")
			d.errAt(pos, p, "%s.health: timeout (%s) is longer than interval (%s)", name, h.Timeout, h.Interval)
		}
	}
	if o := u.Outlier; o.MaxEjection < o.Ejection && !d.replaced(up, ".outlier.max_ejection", ".outlier.ejection") {
		p, pos := d.at(up, ".outlier.max_ejection")
		d.errAt(pos, p, "%s.outlier: max_ejection (%s) is shorter than ejection (%s)", name, o.MaxEjection, o.Ejection)
	}
	d.validateShed(u, up, name)
	d.validateUpstreamTLS(u)
}

func (d *decoder) validateRoutes(cfg *Config, upstreams []string) {
	if len(cfg.Routes) == 0 {
		p, pos := d.nearest("$.routes")
		d.warnAt(pos, p, "no routes: every request will be answered 404")
	}
	seen := map[string]int{}
	for i, r := range cfg.Routes {
		rp := fmt.Sprintf("$.routes[%d]", i)
		label := fmt.Sprintf("routes[%d]", i)
		if r.Name != "" {
			label = fmt.Sprintf("route %q", r.Name)
		}
		switch {
		case r.Name == "":
			d.errPath(rp+".name", "routes[%d]: name is required", i)
		case !validName(r.Name):
			d.errPath(rp+".name", "routes[%d].name: invalid name %q (letters, digits, '.', '_' and '-' only)", i, r.Name)
		default:
			if j, dup := seen[r.Name]; dup {
				d.errPath(rp+".name", "routes[%d].name: %q is already the name of routes[%d]", i, r.Name, j)
			} else {
				seen[r.Name] = i
			}
		}
		d.validateMatch(r, rp, label)
		up, ok := cfg.Upstreams[r.Upstream]
		switch {
		case r.Upstream == "" && r.Async != nil:
			d.errPath(rp+".upstream", "%s: upstream is required: an async route delivers its jobs there", label)
		case r.Upstream == "":
			d.errPath(rp+".upstream", "%s: upstream is required", label)
		case r.Upstream != "" && !ok:
			d.errPath(rp+".upstream", "%s: unknown upstream %q%s", label, r.Upstream, didYouMean(r.Upstream, upstreams))
		}
		if r.Timeout == 0 && ok {
			r.Timeout = up.Timeouts.Total
		}
		d.validateMaxBody(cfg, r, rp, label)
		cacheStep := -1
		for j, fb := range r.Fallback {
			if fb.StaleCache != nil {
				// The route's own upstream fills one cache: a second would
				// never hold anything.
				if cacheStep >= 0 {
					d.errPath(fmt.Sprintf("%s.fallback[%d].stale_cache", rp, j), "%s: fallback[%d]: a route has one stale_cache step (fallback[%d] is one)", label, j, cacheStep)
				}
				cacheStep = j
			}
			if fb.Upstream == "" {
				continue
			}
			fp := fmt.Sprintf("%s.fallback[%d].upstream", rp, j)
			if _, ok := cfg.Upstreams[fb.Upstream]; !ok {
				d.errPath(fp, "%s: fallback[%d]: unknown upstream %q%s", label, j, fb.Upstream, didYouMean(fb.Upstream, upstreams))
			} else if fb.Upstream == r.Upstream {
				d.errPath(fp, "%s: fallback[%d]: %q is the route's own upstream", label, j, fb.Upstream)
			}
		}
		if r.Async != nil {
			d.validateAsync(cfg, r, rp, label)
		}
		if r.Fault != nil {
			d.validateFault(r, rp, label)
		}
		if r.RateLimit != nil {
			d.validateRateLimit(r, rp, label)
		}
		switch {
		case r.Optional && r.Default == nil:
			d.errPath(rp+".optional", "%s: an optional route needs a default: answer", label)
		case !r.Optional && r.Default != nil:
			d.errPath(rp+".default", "%s: default is only answered by optional routes: set optional: true, or use a static fallback step", label)
		}
	}
}

// validateAsync checks an async route: it answers 202 and has no degraded
// answer, and its name is a queue name.
func (d *decoder) validateAsync(cfg *Config, r *Route, rp, label string) {
	if strings.Contains(r.Name, ".") {
		d.errPath(rp+".name", "%s: an async route's name is its queue's name: letters, digits, '-' and '_' only", label)
	}
	for _, sf := range reflect.VisibleFields(reflect.TypeFor[routeYAML]()) {
		k := yamlName(sf)
		if _, ok := d.set[rp+"."+k]; ok && sf.Tag.Get("answer") == "degraded" {
			d.errPath(rp+"."+k, "%s: async and %s: an async route answers 202 once the job is stored, it has no degraded answer", label, k)
		}
	}
	a := r.Async
	ap := rp + ".async"
	if a.Backoff.Max < a.Backoff.Initial && !d.decodeFailed(ap+".backoff.max") && !d.decodeFailed(ap+".backoff.initial") {
		d.errPath(ap+".backoff.max", "%s: async.backoff: max (%s) is shorter than initial (%s)", label, a.Backoff.Max, a.Backoff.Initial)
	}
	if a.Backoff.Type == "decorrelated" || a.Backoff.Jitter == "decorrelated" {
		d.errPath(ap+".backoff", "%s: async.backoff: the queue's backoff is exponential or constant, with jitter none, full or equal", label)
	}
	if a.Ordered && a.Concurrency > 1 {
		if pos, ok := d.set[ap+".concurrency"]; ok {
			d.warnAt(pos, ap+".concurrency", "%s: async.concurrency %d is ignored: an ordered route delivers one job at a time", label, a.Concurrency)
		}
	}
	if a.MaxBody > cfg.Server.MaxBody {
		p, pos := d.nearest(ap + ".max_body")
		d.warnAt(pos, p, "%s: async.max_body (%d bytes) is larger than server.max_body (%d bytes): the server's limit wins", label, a.MaxBody, cfg.Server.MaxBody)
	}
}

// validateMaxBody fills in a route's body limit (server.max_body) and
// checks it: the server's limit is read first, a larger one is never
// reached.
func (d *decoder) validateMaxBody(cfg *Config, r *Route, rp, label string) {
	switch {
	case r.MaxBody == 0:
		r.MaxBody = cfg.Server.MaxBody
	case r.MaxBody > cfg.Server.MaxBody:
		d.warnAt(d.set[rp+".max_body"], rp+".max_body", "%s: max_body (%d bytes) is larger than server.max_body (%d bytes): the server's limit wins",
			label, r.MaxBody, cfg.Server.MaxBody)
		r.MaxBody = cfg.Server.MaxBody
	}
	if pos, ok := d.set[rp+".buffer_body"]; ok && r.Async != nil {
		d.warnAt(pos, rp+".buffer_body", "%s: buffer_body is ignored: an async route stores the whole body (up to async.max_body) before answering", label)
	}
}

func (d *decoder) validateMatch(r *Route, rp, label string) {
	m := r.Match
	if m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/") {
		d.errPath(rp+".match.path_prefix", "%s: match.path_prefix %q must start with /", label, m.PathPrefix)
	}
	if m.Path != "" && !strings.HasPrefix(m.Path, "/") {
		d.errPath(rp+".match.path", "%s: match.path %q must start with /", label, m.Path)
	}
	if m.Path != "" && m.PathPrefix != "" {
		d.errPath(rp+".match.path", "%s: match sets path and path_prefix: use one", label)
	}
	if r.StripPrefix && m.PathPrefix == "" {
		d.errPath(rp+".strip_prefix", "%s: strip_prefix needs match.path_prefix", label)
	}
	if strings.Contains(m.Host, ":") && !strings.HasPrefix(m.Host, "[") {
		d.errPath(rp+".match.host", "%s: match.host %q is matched without its port: drop the port", label, m.Host)
	}
	for i, meth := range m.Methods {
		if meth == "" || strings.ContainsFunc(meth, func(c rune) bool { return c < 'A' || c > 'Z' }) {
			d.errPath(fmt.Sprintf("%s.match.methods[%d]", rp, i), "%s: match.methods[%d]: %q is not an HTTP method", label, i, meth)
		}
	}
	for name := range m.Headers {
		if name == "" || strings.ContainsAny(name, " :\t\r\n") {
			d.errPath(rp+".match.headers."+name, "%s: match.headers: %q is not a header name", label, name)
		}
	}
}

func didYouMean(s string, candidates []string) string {
	if sg := suggest(s, candidates); sg != "" {
		return fmt.Sprintf("; did you mean %q?", sg)
	}
	if len(candidates) == 0 {
		return " (no upstreams are defined)"
	}
	return fmt.Sprintf(" (defined: %s)", strings.Join(candidates, ", "))
}
