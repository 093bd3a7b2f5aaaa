package config

import "slices"

// The keys each mapping of the file allows are declared once, here: the
// decoder passes them to fields (which refuses any other key, with "did you
// mean"), and Keys lists them for the tests that hold the JSON Schema and
// docs/configuration.md to the decoder.

// A keySet is the keys one mapping allows, in the order an "unknown key"
// error lists them.
type keySet []keyDef

// A keyDef is one key. sub is the mapping under it, if any: directly, in
// each item of a list (list), or under each name the file chooses (named).
// refused is known, so that it is not "unknown key", but refused by the
// decoder with its own error; refuse names the keys of sub refused here.
type keyDef struct {
	name    string
	sub     *keySet
	list    bool
	named   bool
	refused bool
	refuse  []string
}

func (s keySet) names() []string {
	out := make([]string, len(s))
	for i, k := range s {
		out[i] = k.name
	}
	return out
}

var (
	rootKeys = keySet{{name: "listen"}, {name: "tls", sub: &tlsKeys}, {name: "server", sub: &serverKeys},
		{name: "admin", sub: &adminKeys}, {name: "readiness", sub: &readinessKeys}, {name: "queue", sub: &queueKeys},
		{name: "defaults", sub: &upstreamKeys, refuse: []string{"instances"}},
		{name: "upstreams", sub: &upstreamKeys, named: true}, {name: "routes", sub: &routeKeys, list: true}}
	tlsKeys       = keySet{{name: "cert_file"}, {name: "key_file"}}
	serverKeys    = keySet{{name: "read_header_timeout"}, {name: "idle_timeout"}, {name: "max_header_bytes"}, {name: "max_body"}, {name: "shutdown_grace"}, {name: "write_timeout"}}
	adminKeys     = keySet{{name: "listen"}, {name: "token"}, {name: "allowed_hosts"}}
	readinessKeys = keySet{{name: "required_upstreams"}}

	queueKeys = keySet{{name: "dir"}, {name: "max_memory"}, {name: "max_disk"}, {name: "sync"}, {name: "servers"},
		{name: "credentials"}, {name: "user"}, {name: "password"}, {name: "token"}, {name: "tls", sub: &queueTLSKeys},
		{name: "replicas"}, {name: "dedupe_window"}, {name: "timeout"}, {name: "prefix"}, {name: "ping_interval"},
		{name: "dead_letters", sub: &deadLetterKeys}}
	queueTLSKeys   = keySet{{name: "ca"}, {name: "cert"}, {name: "key"}}
	deadLetterKeys = keySet{{name: "max_bytes"}, {name: "max_messages"}}

	upstreamKeys = keySet{{name: "instances"}, {name: "balance"}, {name: "timeouts", sub: &timeoutKeys},
		{name: "retry", sub: &retryKeys}, {name: "breaker", sub: &breakerKeys}, {name: "bulkhead", sub: &bulkheadKeys},
		{name: "health", sub: &healthKeys}, {name: "outlier", sub: &outlierKeys}, {name: "max_replay_body"}}
	timeoutKeys = keySet{{name: "connect"}, {name: "attempt"}, {name: "total"}}
	retryKeys   = keySet{{name: "max_attempts"}, {name: "backoff", sub: &backoffKeys}, {name: "on"},
		{name: "budget", sub: &budgetKeys}, {name: "retry_after_max"}}
	backoffKeys = keySet{{name: "type"}, {name: "initial"}, {name: "max"}, {name: "multiplier"}, {name: "jitter"}}
	budgetKeys  = keySet{{name: "ratio"}, {name: "window"}, {name: "min_per_second"}}
	breakerKeys = keySet{{name: "mode"}, {name: "window", sub: &windowKeys}, {name: "min_calls"}, {name: "failure_rate"},
		{name: "slow_call", sub: &slowCallKeys}, {name: "open_for"}, {name: "max_open_for"}, {name: "half_open_probes"}}
	windowKeys   = keySet{{name: "type"}, {name: "size"}}
	slowCallKeys = keySet{{name: "duration"}, {name: "rate"}}
	bulkheadKeys = keySet{{name: "max_concurrent"}, {name: "max_waiting"}, {name: "max_wait"}}
	healthKeys   = keySet{{name: "path"}, {name: "interval"}, {name: "timeout"}, {name: "unhealthy_after"}, {name: "healthy_after"}}
	outlierKeys  = keySet{{name: "consecutive_failures"}, {name: "ejection"}, {name: "max_ejection"}, {name: "max_ejected"}, {name: "panic_threshold"}}

	routeKeys = keySet{{name: "name"}, {name: "match", sub: &matchKeys}, {name: "strip_prefix"}, {name: "allow_unsafe_paths"},
		{name: "upstream"}, {name: "timeout"}, {name: "fallback", sub: &fallbackKeys, list: true}, {name: "optional"},
		{name: "default", sub: &staticKeys}, {name: "async", sub: &asyncKeys}, {name: "fault", refused: true}}
	matchKeys      = keySet{{name: "host"}, {name: "path_prefix"}, {name: "path"}, {name: "methods"}, {name: "headers"}}
	fallbackKeys   = keySet{{name: "upstream"}, {name: "stale_cache", sub: &staleCacheKeys}, {name: "static", sub: &staticKeys}}
	staleCacheKeys = keySet{{name: "ttl"}, {name: "serve_stale_for"}, {name: "max_entries"}, {name: "max_bytes"}, {name: "max_entry_bytes"}, {name: "ignore_cookies"}}
	staticKeys     = keySet{{name: "status"}, {name: "headers"}, {name: "body"}, {name: "file"}}
	asyncKeys      = keySet{{name: "max_attempts"}, {name: "backoff", sub: &backoffKeys}, {name: "retention"}, {name: "max_body"},
		{name: "concurrency"}, {name: "ordered"}, {name: "key_scope"}}
)

// Keys returns the path of every key the decoder accepts, sections
// included, in declaration order: a.b for a key of a's mapping, a.*.b
// under a mapping whose keys the file names (upstreams.*.balance), a[].b
// in each item of a list (routes[].fallback[].static.body). A mapping or
// list of plain values (match.headers, instances) is one key.
func Keys() []string { return keyPaths(false) }

// RefusedKeys returns the paths, written as Keys writes them, of the keys
// the decoder knows but refuses with an error of their own (a feature not
// built yet, a key not allowed in that place) rather than "unknown key".
func RefusedKeys() []string { return keyPaths(true) }

func keyPaths(refused bool) []string {
	var out []string
	rootKeys.walk("", nil, func(path string, r bool) {
		if r == refused {
			out = append(out, path)
		}
	})
	return out
}

func (s keySet) walk(prefix string, refuse []string, visit func(path string, refused bool)) {
	for _, k := range s {
		p := prefix + k.name
		if k.refused || slices.Contains(refuse, k.name) {
			visit(p, true)
			continue
		}
		visit(p, false)
		if k.sub == nil {
			continue
		}
		switch {
		case k.list:
			p += "[]"
		case k.named:
			p += ".*"
		}
		k.sub.walk(p+".", k.refuse, visit)
	}
}
