package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// problems renders what Parse or Load found as validate prints it.
func problems(ws []Warning, err error) []string {
	var out []string
	var errs Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			out = append(out, e.Error())
		}
	} else if err != nil {
		out = append(out, "not an Errors: "+err.Error())
	}
	for _, w := range ws {
		out = append(out, strings.Replace(w.String(), ": ", ": warning: ", 1))
	}
	return out
}

// TestTestdata loads every testdata/*.yaml and compares each problem with
// the lines of its .want file, exactly.
func TestTestdata(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) < 4 {
		t.Fatalf("testdata holds %d configs", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want, err := os.ReadFile(file + ".want")
			if err != nil {
				t.Fatal(err)
			}
			_, ws, err := Load(file)
			got := strings.Join(problems(ws, err), "\n")
			if got != strings.TrimSpace(string(want)) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

const minimal = `
upstreams:
  a: {instances: [http://127.0.0.1:9001]}
routes:
  - {name: r, upstream: a}
`

func TestParseProblems(t *testing.T) {
	env := map[string]string{"EMPTY": "", "PORT": "9002"}
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"minimal is valid", minimal, nil},
		{"empty file", "", []string{"t.yaml:1:1: the configuration is empty: at least one route and its upstream are needed"}},
		{"two documents", minimal + "---\nlisten: x\n", []string{"t.yaml:7:1: a configuration file holds one YAML document, found 2"}},
		{"not a mapping", "- a\n", []string{`t.yaml:1:1: the configuration: expected a mapping, got a list`}},
		{"unknown top-level key", "listn: 127.0.0.1:1\n" + minimal, []string{`t.yaml:1:1: unknown key "listn" in the top level; did you mean "listen"?`}},
		{"no suggestion when nothing is near", "zzz: 1\n" + minimal, []string{`t.yaml:1:1: unknown key "zzz" in the top level (allowed: listen, tls, server, admin, readiness, queue, telemetry, defaults, upstreams, routes)`}},
		{"camelCase suggests snake_case", "server: {readHeaderTimeout: 1s}\n" + minimal, []string{`t.yaml:1:10: unknown key "readHeaderTimeout" in server; did you mean "read_header_timeout"?`}},
		{"duplicate key", "listen: a:1\nlisten: b:2\n" + minimal, []string{`t.yaml:2:1: mapping key "listen" already defined at [1:1]`}},
		{"merge keys refused", "defaults: &d {balance: random}\nupstreams:\n  a: {<<: *d, instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a}]\n",
			[]string{"t.yaml:3:7: merge keys (<<) are not supported: use defaults: for what upstreams share"}},
		{"instances in defaults", "defaults: {instances: [http://127.0.0.1:1]}\n" + minimal, []string{"t.yaml:1:12: defaults.instances: instances are not inherited; list them under each upstream"}},
		{"upstream without instances", "upstreams:\n  a:\nroutes: [{name: r, upstream: a}]\n", []string{"t.yaml:2:3: upstreams.a: instances are required", "t.yaml:2:3: upstreams.a.instances: at least one instance is required"}},
		{"invalid upstream name", "upstreams:\n  'a b': {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: 'a b'}]\n", []string{`t.yaml:2:3: upstreams: invalid name "a b" (letters, digits, '.', '_' and '-' only)`}},
		{"instance with a query", "upstreams:\n  a: {instances: ['http://h:1/?x=1', http://h:1/?x=1]}\nroutes: [{name: r, upstream: a}]\n",
			[]string{`t.yaml:2:19: upstreams.a.instances[0]: "http://h:1/?x=1" must not carry a query, fragment or user info`, `t.yaml:2:38: upstreams.a.instances[1]: "http://h:1/?x=1" must not carry a query, fragment or user info`}},
		{"duplicate instance", "upstreams:\n  a: {instances: [http://h:1, http://h:1]}\nroutes: [{name: r, upstream: a}]\n", []string{`t.yaml:2:31: upstreams.a.instances[1]: "http://h:1" is listed twice`}},
		{"env expands, with default", "listen: 127.0.0.1:${PORT}\nadmin: {listen: '127.0.0.1:${ADMIN_PORT:-9901}', token: '${EMPTY:-x}'}\n" + minimal, nil},
		{"invalid env name", "listen: ${1X}\n" + minimal, []string{`t.yaml:1:9: listen: invalid variable name "1X" in ${1X}`}},
		{"unterminated env", "listen: ${PORT\n" + minimal, []string{`t.yaml:1:9: listen: unterminated ${ in "${PORT"`}},
		{"admin off loopback with a token", "admin: {listen: '0.0.0.0:9901', token: s3cret}\n" + minimal, nil},
		{"admin on all interfaces", "admin: {listen: ':9901'}\n" + minimal, []string{`t.yaml:1:17: admin.listen: :9901 is not a loopback address and admin.token is empty: the admin API would be open to the network (set a token or listen on 127.0.0.1)`}},
		{"admin off loopback with named tokens", "admin: {listen: '0.0.0.0:9901', tokens: [{name: ops, token: s3cret, role: read}]}\n" + minimal, nil},
		{"admin tokens", "admin:\n  token: a1\n  tokens:\n    - {name: admin, token: a2, role: admin}\n    - {name: ops, token: a1, role: read}\n    - {name: ci, token: '${EMPTY}', role: write}\n    - {token: a3}\n" + minimal,
			[]string{
				`t.yaml:4:14: admin.tokens[0].name: "admin" is already a token's name (admin.token is named "admin")`,
				`t.yaml:5:26: admin.tokens[1].token: the same token as another one: each token names one caller`,
				`t.yaml:6:7: admin.tokens[2]: token is required and not empty (is its environment variable set?)`,
				`t.yaml:6:43: admin.tokens[2].role: "write" is not one of admin, read`,
				`t.yaml:7:7: admin.tokens[3]: name is required`,
				`t.yaml:7:7: admin.tokens[3]: role is required: admin or read`,
			}},
		{"listen not host:port", "listen: localhost\n" + minimal, []string{`t.yaml:1:9: listen: "localhost" is not a host:port address`}},
		{"tls files missing", "tls: {cert_file: nope.pem}\n" + minimal, []string{"t.yaml:1:6: tls.key_file is required", "t.yaml:1:18: tls.cert_file: cannot read nope.pem: no such file or directory"}},
		{"queue server not a NATS URL", "queue: {servers: ['http://n:4222', 'nats://n:4222', 'ws://n:8080']}\n" + minimal, []string{`t.yaml:1:19: queue.servers[0]: "http://n:4222" is not a nats://, tls:// or ws:// URL`}},
		{"dead letters over half the store", "queue: {max_disk: 1GiB, dead_letters: {max_bytes: 600MiB}}\n" + minimal,
			[]string{"t.yaml:1:51: queue.dead_letters.max_bytes (629145600 bytes) is more than half of queue.max_disk (1073741824 bytes): the work stream and the status records need the rest"}},
		{"dead letters zero", "queue: {dead_letters: {max_bytes: 0, max_messages: 0}}\n" + minimal,
			[]string{"t.yaml:1:35: queue.dead_letters.max_bytes: must be more than 0", "t.yaml:1:52: queue.dead_letters.max_messages: 0 is less than 1"}},
		{"key_scope", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes:\n  - {name: r, upstream: a, async: {key_scope: client_ip}}\n  - {name: s, upstream: a, async: {key_scope: 'header:'}}\n  - {name: u, upstream: a, async: {key_scope: 'header:Idempotency-Key'}}\n",
			[]string{
				`t.yaml:4:47: routes[0].async.key_scope: "client_ip" is neither route nor header:NAME (a header name such as header:X-Api-Key)`,
				`t.yaml:5:47: routes[1].async.key_scope: "header:" is neither route nor header:NAME (a header name such as header:X-Api-Key)`,
				`t.yaml:6:47: routes[2].async.key_scope: the scope is a client identity, not the Idempotency-Key itself`,
			}},
		{"route without name or upstream", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes:\n  - match: {path: /x}\n", []string{"t.yaml:4:5: routes[0]: name is required", "t.yaml:4:5: routes[0]: upstream is required"}},
		{"unknown upstream without a near name", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: zzzz}]\n", []string{`t.yaml:3:30: route "r": unknown upstream "zzzz" (defined: a)`}},
		{"fallback to itself", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a, fallback: [upstream: a]}]\n", []string{`t.yaml:3:54: route "r": fallback[0]: "a" is the route's own upstream`}},
		{"empty fallback step", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a, fallback: [{}]}]\n", []string{`t.yaml:3:44: routes[0].fallback[0]: a fallback step has exactly one of upstream, stale_cache or static, found 0`}},
		{"stale_cache limits and cookies", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes:\n  - {name: r, upstream: a, fallback: [stale_cache: {max_bytes: 1MiB, max_entry_bytes: 2MiB}]}\n  - {name: s, upstream: a, fallback: [stale_cache: {max_bytes: 4GiB, max_entry_bytes: 2GiB, ignore_cookies: [_ga, 'a b', '']}]}\n",
			[]string{
				`t.yaml:4:87: routes[0].fallback[0].stale_cache.max_entry_bytes: 2097152 bytes is more than max_bytes (1048576): such an entry could never be stored`,
				`t.yaml:5:87: routes[1].fallback[0].stale_cache.max_entry_bytes: 2147483648 bytes is more than 1GiB`,
				`t.yaml:5:115: routes[1].fallback[0].stale_cache.ignore_cookies[1]: not a cookie name (letters, digits and !#$%&'*+-.^_` + "`" + `|~ only)`,
				`t.yaml:5:122: routes[1].fallback[0].stale_cache.ignore_cookies[2]: not a cookie name (letters, digits and !#$%&'*+-.^_` + "`" + `|~ only)`,
			}},
		{"two stale caches", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a, fallback: [stale_cache: {}, stale_cache: {ttl: 1s}]}]\n",
			[]string{`t.yaml:3:74: route "r": fallback[1]: a route has one stale_cache step (fallback[0] is one)`}},
		{"default without optional", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a, default: {body: x}}]\n", []string{`t.yaml:3:42: route "r": default is only answered by optional routes: set optional: true, or use a static fallback step`}},
		{"static body and file", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a, fallback: [static: {body: x, file: y}]}]\n", []string{`t.yaml:3:62: routes[0].fallback[0].static: set body or file, not both`}},
		{"match problems", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes:\n  - name: r\n    upstream: a\n    strip_prefix: true\n    match: {path: x, path_prefix: /y, host: 'h:80', methods: [get, 'BAD METHOD'], headers: {'a b': c}}\n",
			[]string{
				`t.yaml:7:19: route "r": match.path "x" must start with /`,
				`t.yaml:7:19: route "r": match sets path and path_prefix: use one`,
				`t.yaml:7:45: route "r": match.host "h:80" is matched without its port: drop the port`,
				`t.yaml:7:68: route "r": match.methods[1]: "BAD METHOD" is not an HTTP method`,
				`t.yaml:7:100: route "r": match.headers: "a b" is not a header name`,
			}},
		{"readiness names configured upstreams, once", "upstreams:\n  catalog: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: catalog}]\nreadiness: {required_upstreams: [catalog, catalgo, catalog, other]}\n",
			[]string{
				`t.yaml:4:43: readiness.required_upstreams[1]: unknown upstream "catalgo"; did you mean "catalog"?`,
				`t.yaml:4:52: readiness.required_upstreams[2]: "catalog" is listed twice`,
				`t.yaml:4:61: readiness.required_upstreams[3]: unknown upstream "other" (defined: catalog)`,
			}},
		{"readiness with a bad item is one error", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a}]\nreadiness: {required_upstreams: [{x: 1}, zz]}\n",
			[]string{`t.yaml:4:34: readiness.required_upstreams[0]: expected a single value, got a mapping`}},
		{"fault half written", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes:\n  - name: r\n    upstream: a\n    fault: {abort: {percent: 1}, delay: {duration: 1s}}\n",
			[]string{`t.yaml:6:20: route "r": fault.abort.status is required`, `t.yaml:6:41: route "r": fault.delay.percent is required`}},
		{"fault values", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes:\n  - name: r\n    upstream: a\n    fault: {abort: {percent: 101, status: 302}, delay: {percent: x, duration: 2m}, headers: maybe}\n",
			[]string{
				`t.yaml:6:30: routes[0].fault.abort.percent: 101 is not between 0 and 100`,
				`t.yaml:6:43: routes[0].fault.abort.status: 302 is not a 4xx or 5xx status (400-599)`,
				`t.yaml:6:66: routes[0].fault.delay.percent: expected a percentage from 0 to 100, got "x"`,
				`t.yaml:6:79: routes[0].fault.delay.duration: 2m0s is more than 1m0s`,
				`t.yaml:6:93: routes[0].fault.headers: expected true or false, got "maybe"`,
			}},
		{"fault unknown key", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes:\n  - name: r\n    upstream: a\n    fault: {abort: {percent: 1, status: 503, code: 1}}\n",
			[]string{`t.yaml:6:46: unknown key "code" in routes[0].fault.abort (allowed: percent, status)`}},
		{"strip_prefix without path_prefix", "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a, strip_prefix: true}]\n", []string{`t.yaml:3:47: route "r": strip_prefix needs match.path_prefix`}},
		{"retry on", "upstreams:\n  a: {instances: [http://127.0.0.1:1], retry: {on: [timeout, 503, 42, conect_failure]}}\nroutes: [{name: r, upstream: a}]\n",
			[]string{`t.yaml:2:67: upstreams.a.retry.on[2]: "42" is neither one of connect_failure, timeout, reset nor an HTTP status`, `t.yaml:2:71: upstreams.a.retry.on[3]: "conect_failure" is neither one of connect_failure, timeout, reset nor an HTTP status; did you mean "connect_failure"?`}},
		{"decorrelated mismatch", "upstreams:\n  a: {instances: [http://127.0.0.1:1], retry: {backoff: {type: decorrelated, jitter: full}}}\nroutes: [{name: r, upstream: a}]\n",
			[]string{`t.yaml:2:86: upstreams.a.retry.backoff: type decorrelated with jitter full: decorrelated is both a growth and a jitter, use it for both or neither`}},
		{"ordering of limits", "upstreams:\n  a:\n    instances: [http://127.0.0.1:1]\n    breaker: {open_for: 1m, max_open_for: 30s}\n    outlier: {ejection: 1m, max_ejection: 30s}\n    health: {interval: 1s, timeout: 2s}\nroutes: [{name: r, upstream: a}]\n",
			[]string{
				`t.yaml:4:43: upstreams.a.breaker: max_open_for (30s) is shorter than open_for (1m0s)`,
				`t.yaml:5:43: upstreams.a.outlier: max_ejection (30s) is shorter than ejection (1m0s)`,
				`t.yaml:6:13: upstreams.a.health.path: "" must start with / (it is required when health is set)`,
				`t.yaml:6:37: upstreams.a.health: timeout (2s) is longer than interval (1s)`,
			}},
		{"adaptive bulkhead", "upstreams:\n  a: {instances: [http://127.0.0.1:1], bulkhead: {adaptive: cubic}}\n  b: {instances: [http://127.0.0.1:1], bulkhead: {adaptive: aimd, min_concurrent: 50, max_concurrent: 10}}\nroutes: [{name: r, upstream: a}, {name: s, upstream: b}]\n",
			[]string{
				`t.yaml:2:61: upstreams.a.bulkhead.adaptive: "cubic" is not one of gradient2, aimd, vegas`,
				`t.yaml:3:83: upstreams.b.bulkhead: min_concurrent (50) is more than max_concurrent (10), the adaptive limit's bounds`,
			}},
		{"negative and zero values", "server: {idle_timeout: 0s, shutdown_grace: -1s}\nupstreams:\n  a: {instances: [http://127.0.0.1:1], bulkhead: {max_concurrent: 0}, retry: {budget: {min_per_second: -1}}}\nroutes: [{name: r, upstream: a}]\n",
			[]string{
				"t.yaml:1:24: server.idle_timeout: must be more than 0",
				"t.yaml:1:44: server.shutdown_grace: -1s is negative",
				"t.yaml:3:67: upstreams.a.bulkhead.max_concurrent: 0 is less than 1",
				"t.yaml:3:104: upstreams.a.retry.budget.min_per_second: -1 is less than 0",
			}},
		{"a bad value an alias uses again is reported once, where it was written",
			"defaults: {timeouts: &t {attempt: 10}}\nupstreams:\n  a: {instances: [http://127.0.0.1:1], timeouts: *t}\nroutes: [{name: r, upstream: a}]\n",
			[]string{`t.yaml:1:35: defaults.timeouts.attempt: duration "10" needs a unit, like 10s or 10ms`}},
		{"wrong shapes", "listen: [a]\nserver: 5\nupstreams:\n  a: {instances: http://127.0.0.1:1}\nroutes: [{name: r, upstream: a}]\n",
			[]string{
				`t.yaml:1:9: listen: expected a single value, got a list`,
				`t.yaml:2:9: server: expected a mapping, got "5"`,
				`t.yaml:4:18: upstreams.a.instances: expected a list, got "http://127.0.0.1:1"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ws, err := Parse("t.yaml", []byte(tt.yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			var got []string
			for _, p := range problems(ws, err) {
				if !strings.Contains(p, "warning: ") {
					got = append(got, p)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if (err == nil) != (cfg != nil) {
				t.Errorf("config %v with error %v", cfg, err)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name, upstream string
		want           []string
	}{
		{"the defaults warn nothing", "{}", nil},
		// The breaker's own warnings come from gateway.Check (see
		// gateway.TestCheckWarnings).
		{"the breaker's warnings are the breaker's", "{breaker: {min_calls: 1}}", nil},
		{"a budget that allows no retry", "{retry: {budget: {ratio: 0%, min_per_second: 0}}}", []string{"t.yaml:3:56: warning: upstreams.a.retry: max_attempts 3 with a budget of ratio 0 and min_per_second 0: the budget allows no retry, every request gets one attempt (max_attempts: 1 says so)"}},
		{"no retries, no budget needed", "{retry: {max_attempts: 1, budget: {ratio: 0, min_per_second: 0}}}", nil},
		{"equal timeouts without retries", "{retry: {max_attempts: 1}, timeouts: {attempt: 1s, total: 1s}}", nil},
		{"a long enough time window", "{breaker: {window: {type: time, size: 10s}}}", nil},
		{"min_concurrent without adaptive", "{bulkhead: {min_concurrent: 5}}", []string{"t.yaml:3:67: warning: upstreams.a.bulkhead: min_concurrent without adaptive is ignored: the limit is max_concurrent"}},
		{"min_concurrent with adaptive", "{bulkhead: {adaptive: vegas, min_concurrent: 5}}", nil},
		{"hedges without a budget", "{retry: {max_attempts: 1, budget: {ratio: 0, min_per_second: 0}}, hedge: {}}", []string{"t.yaml:3:112: warning: upstreams.a.hedge: with a retry budget of ratio 0 and min_per_second 0 the hedges draw from no budget: nothing but the delay bounds the load they add"}},
		{"hedges with the default budget", "{hedge: {delay: p99}}", nil},
		{"http2 with a health check", "{http2: true, health: {path: /healthz}}", []string{"t.yaml:3:61: warning: upstreams.a: http2 with health: the health check is an HTTP/1 GET, which a gRPC server refuses; check an HTTP port of the instances, or leave health off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := "upstreams:\n  a:\n    {instances: [http://127.0.0.1:1]}\n  b: " + strings.Replace(tt.upstream, "{", "{instances: [http://127.0.0.1:1], ", 1) + "\nroutes: [{name: r, upstream: a}]\n"
			yaml = strings.Replace(yaml, "  a:\n    {instances: [http://127.0.0.1:1]}\n  b: ", "  x: {instances: [http://127.0.0.1:1]}\n  a: ", 1)
			_, ws, err := Parse("t.yaml", []byte(yaml), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := problems(ws, nil); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestNoRoutesWarns(t *testing.T) {
	_, ws, err := Parse("t.yaml", []byte("listen: 127.0.0.1:8080\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := problems(ws, nil); !reflect.DeepEqual(got, []string{"t.yaml:1:1: warning: no routes: every request will be answered 404"}) {
		t.Fatalf("got %q", got)
	}
}

func TestValueSyntax(t *testing.T) {
	tests := []struct {
		yaml string
		get  func(*Upstream) any
		want any
	}{
		{"timeouts: {connect: 250ms}", func(u *Upstream) any { return u.Timeouts.Connect }, 250 * time.Millisecond},
		{"timeouts: {total: 1h30m}", func(u *Upstream) any { return u.Timeouts.Total }, 90 * time.Minute},
		{"max_replay_body: 512KiB", func(u *Upstream) any { return u.MaxReplayBody }, int64(512 << 10)},
		{"max_replay_body: 10MB", func(u *Upstream) any { return u.MaxReplayBody }, int64(10_000_000)},
		{"max_replay_body: 1.5KiB", func(u *Upstream) any { return u.MaxReplayBody }, int64(1536)},
		{"max_replay_body: 4096", func(u *Upstream) any { return u.MaxReplayBody }, int64(4096)},
		{"max_replay_body: 0", func(u *Upstream) any { return u.MaxReplayBody }, int64(0)},
		{"breaker: {failure_rate: 25%}", func(u *Upstream) any { return u.Breaker.FailureRate }, 0.25},
		{"breaker: {failure_rate: 0.25}", func(u *Upstream) any { return u.Breaker.FailureRate }, 0.25},
		{"breaker: {failure_rate: 1}", func(u *Upstream) any { return u.Breaker.FailureRate }, 1.0},
		{"retry: {budget: {ratio: 10%}}", func(u *Upstream) any { return u.Retry.Budget.Ratio }, 0.1},
		{"breaker: {window: {type: time}}", func(u *Upstream) any { return u.Breaker.Window }, Window{Type: "time", Size: 100, Time: 10 * time.Second}},
		{"breaker: {window: {size: 30, type: count}}", func(u *Upstream) any { return u.Breaker.Window.Size }, 30},
		{"retry: {backoff: {type: decorrelated}}", func(u *Upstream) any { return u.Retry.Backoff.Jitter }, "decorrelated"},
		{"retry: {backoff: {jitter: decorrelated}}", func(u *Upstream) any { return u.Retry.Backoff.Type }, "decorrelated"},
		{"retry: {on: [reset, 500]}", func(u *Upstream) any { return u.Retry.On }, []string{"reset", "500"}},
		{"health: {path: /h}", func(u *Upstream) any { return *u.Health }, Health{Path: "/h", Interval: 5 * time.Second, Timeout: time.Second, UnhealthyAfter: 3, HealthyAfter: 2}},
		{"balance: !!str random", func(u *Upstream) any { return u.Balance }, "random"},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			yaml := "upstreams:\n  a:\n    instances: [http://127.0.0.1:1]\n    " + tt.yaml + "\nroutes: [{name: r, upstream: a}]\n"
			cfg, _, err := Parse("t.yaml", []byte(yaml), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(cfg.Upstreams["a"]); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestAnchorsAndAliases(t *testing.T) {
	yaml := "upstreams:\n  a: {instances: &i [http://127.0.0.1:1], timeouts: &t {total: 9s}}\n  b: {instances: *i, timeouts: *t}\nroutes: [{name: r, upstream: b}]\n"
	cfg, _, err := Parse("t.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Upstreams["b"]; b.Instances[0] != "http://127.0.0.1:1" || b.Timeouts.Total != 9*time.Second {
		t.Fatalf("aliases not followed: %+v", b)
	}
}

// TestLoadExample pins the resolved values of the example config: what it
// sets, what it inherits from defaults:, and the built-in defaults.
func TestLoadExample(t *testing.T) {
	t.Setenv("SPILLWAY_ADMIN_TOKEN", "")
	cfg, ws, err := Load("../examples/gateway/spillway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 0 {
		t.Errorf("warnings: %v", ws)
	}
	if cfg.Listen != "127.0.0.1:8080" || !reflect.DeepEqual(cfg.Admin, Admin{Listen: "127.0.0.1:9901"}) || cfg.Queue.Dir != "../examples/gateway/spillway-data" || cfg.Server != DefaultServer() || cfg.TLS != nil {
		t.Errorf("top level: %+v", cfg)
	}
	catalog := cfg.Upstreams["catalog"]
	want := DefaultUpstream()
	want.Name = "catalog"
	want.Instances = []string{"http://127.0.0.1:9001", "http://127.0.0.1:9002"}
	want.Timeouts = Timeouts{Connect: time.Second, Attempt: 2 * time.Second, Total: 5 * time.Second, BodyIdle: 30 * time.Second}
	want.Retry.On = []string{"connect_failure", "timeout", "502", "503", "504"}
	want.Breaker.SlowCall = SlowCall{Duration: time.Second, Rate: 1}
	want.Health = &Health{Path: "/healthz", Interval: 5 * time.Second, Timeout: time.Second, UnhealthyAfter: 3, HealthyAfter: 2}
	if !reflect.DeepEqual(*catalog, want) {
		t.Errorf("catalog:\n got %+v\nwant %+v", *catalog, want)
	}
	replica := cfg.Upstreams["catalog-replica"]
	want = DefaultUpstream()
	want.Name = "catalog-replica"
	want.Instances = []string{"http://127.0.0.1:9011"}
	if !reflect.DeepEqual(*replica, want) {
		t.Errorf("catalog-replica:\n got %+v\nwant %+v", *replica, want)
	}
	if recs := cfg.Upstreams["recs"]; recs.Timeouts != (Timeouts{Connect: 2 * time.Second, Attempt: 300 * time.Millisecond, Total: time.Second, BodyIdle: 30 * time.Second}) {
		t.Errorf("recs merges defaults.timeouts key by key: %+v", recs.Timeouts)
	}
	if len(cfg.Routes) != 3 {
		t.Fatalf("%d routes", len(cfg.Routes))
	}
	r := cfg.Routes[0]
	wantRoute := &Route{
		Name: "catalog", Match: Match{PathPrefix: "/catalog", Methods: []string{"GET", "HEAD"}}, Upstream: "catalog", Timeout: 5 * time.Second, MaxBody: 10 << 20,
		Fallback: []Fallback{
			{Upstream: "catalog-replica"},
			{StaleCache: &StaleCache{TTL: 10 * time.Second, ServeStaleFor: 24 * time.Hour, MaxEntries: 10000, MaxBytes: 64 << 20, MaxEntryBytes: 1 << 20, IgnoreCookies: []string{"_ga", "_gid"}}},
			{Static: &Static{Status: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: `{"items":[]}`}},
		},
	}
	if !reflect.DeepEqual(r, wantRoute) {
		t.Errorf("route catalog:\n got %+v\nwant %+v", r, wantRoute)
	}
	if r := cfg.Routes[1]; !r.Optional || r.Default.Body != "[]" || r.Timeout != time.Second {
		t.Errorf("route recommendations: %+v", r)
	}
	orders := cfg.Routes[2]
	wantAsync := Async{MaxAttempts: 20, Backoff: Backoff{Type: "exponential", Initial: time.Second, Max: 5 * time.Minute, Multiplier: 2, Jitter: "full"}, Retention: 72 * time.Hour, MaxBody: 1 << 20, Concurrency: 8}
	if *orders.Async != wantAsync {
		t.Errorf("async: %+v", *orders.Async)
	}
}

func TestStaticFileIsReadRelativeToTheConfig(t *testing.T) {
	cfg, _, err := Load("testdata/warnings.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Routes[0].Fallback[0].Static; got.Body != "{\"items\":[]}\n" || got.File != "static/empty.json" {
		t.Fatalf("static: %+v", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, _, err := Load("testdata/does-not-exist.yaml")
	var errs Errors
	if !errors.Is(err, os.ErrNotExist) || errors.As(err, &errs) {
		t.Fatalf("err = %v", err)
	}
}

func TestDistanceAndSuggest(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"min_call", "min_calls", 1}} {
		if got := distance(tt.a, tt.b); got != tt.d {
			t.Errorf("distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.d)
		}
	}
	if got := suggest("xyz", []string{"listen", "routes"}); got != "" {
		t.Errorf("suggested %q for a key near nothing", got)
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	seeds = append(seeds, "../examples/gateway/spillway.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(minimal))
	f.Add([]byte("a: &x [*x]\nb: !!binary x\n? [k]\n: v\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := Parse("fuzz.yaml", data, func(k string) (string, bool) { return k, k != "UNSET" })
		if (err == nil) == (cfg == nil) {
			t.Fatalf("config %v and error %v", cfg, err)
		}
		var errs Errors
		if err != nil && (!errors.As(err, &errs) || len(errs) == 0) {
			t.Fatalf("error is not a non-empty Errors: %v", err)
		}
		for _, e := range errs {
			if e.Line < 1 || e.Col < 1 || !strings.HasPrefix(e.Error(), "fuzz.yaml:") {
				t.Fatalf("bad position: %q", e.Error())
			}
		}
	})
}

func TestStaleCacheValues(t *testing.T) {
	yaml := "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes:\n" +
		"  - {name: r, upstream: a, fallback: [stale_cache: {max_bytes: 512KiB, ignore_cookies: []}]}\n" +
		"  - {name: s, upstream: a, fallback: [stale_cache: {max_entries: 5, max_entry_bytes: 64KiB, ignore_cookies: [_ga, _gid]}]}\n"
	cfg, _, err := Parse("t.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A max_bytes below 1MiB lowers the default max_entry_bytes; an empty
	// ignore_cookies is nil, as an absent one.
	want := StaleCache{TTL: 10 * time.Second, ServeStaleFor: 24 * time.Hour, MaxEntries: 10000, MaxBytes: 512 << 10, MaxEntryBytes: 512 << 10}
	if got := *cfg.Routes[0].Fallback[0].StaleCache; !reflect.DeepEqual(got, want) {
		t.Errorf("r:\n got %+v\nwant %+v", got, want)
	}
	want = StaleCache{TTL: 10 * time.Second, ServeStaleFor: 24 * time.Hour, MaxEntries: 5, MaxBytes: 64 << 20, MaxEntryBytes: 64 << 10, IgnoreCookies: []string{"_ga", "_gid"}}
	if got := *cfg.Routes[1].Fallback[0].StaleCache; !reflect.DeepEqual(got, want) {
		t.Errorf("s:\n got %+v\nwant %+v", got, want)
	}
}

func TestQueueAndAsyncValues(t *testing.T) {
	cfg, _, err := Load("testdata/queue-embedded.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultQueue()
	want.Dir, want.MaxMemory, want.SyncInterval, want.Token = "/var/lib/spillway", 128<<20, 30*time.Second, "s3cret"
	want.TLS = &QueueTLS{CA: filepath.Join("testdata", "ca.pem")}
	want.DeadLetters.MaxBytes = want.MaxDisk / 10
	if !reflect.DeepEqual(cfg.Queue, want) {
		t.Errorf("queue:\n got %+v\nwant %+v", cfg.Queue, want)
	}
	yaml := "queue: {sync: always, dir: data, servers: []}\nupstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a, async: {concurrency: 2, ordered: true, max_body: 4KiB}}]\n"
	cfg, _, err = Parse("/etc/spillway/t.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	if q := cfg.Queue; !q.SyncAlways || q.SyncInterval != 2*time.Minute || q.Dir != "/etc/spillway/data" {
		t.Errorf("queue: %+v", q)
	}
	if a := cfg.Routes[0].Async; a.Concurrency != 2 || !a.Ordered || a.MaxBody != 4096 || a.MaxAttempts != 20 || a.KeyScopeHeader != "" {
		t.Errorf("async: %+v", a)
	}
	yaml = "queue: {max_disk: 1GiB, dead_letters: {max_bytes: 200MiB, max_messages: 500}}\nupstreams:\n  a: {instances: [http://127.0.0.1:1]}\n" +
		"routes: [{name: r, upstream: a, async: {key_scope: 'header:x-api-key'}}]\n"
	if cfg, _, err = Parse("t.yaml", []byte(yaml), nil); err != nil {
		t.Fatal(err)
	}
	if dl := cfg.Queue.DeadLetters; dl.MaxBytes != 200<<20 || dl.MaxMessages != 500 {
		t.Errorf("dead_letters: %+v", dl)
	}
	if h := cfg.Routes[0].Async.KeyScopeHeader; h != "X-Api-Key" {
		t.Errorf("key_scope: header %q, want the canonical X-Api-Key", h)
	}
	// External, the cluster's disk is unknown: 1GiB.
	if cfg, _, err = Parse("t.yaml", []byte("queue: {servers: ['nats://n:4222']}\n"+minimal), nil); err != nil || cfg.Queue.DeadLetters.MaxBytes != 1<<30 {
		t.Errorf("external dead_letters: %+v %v", cfg.Queue.DeadLetters, err)
	}
}

// TestQueuePingInterval: queue.ping_interval defaults to 1s, is taken with
// queue.servers, refused below 100ms, and ignored (with a warning) by the
// embedded store.
func TestQueuePingInterval(t *testing.T) {
	const rest = "upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a, async: {}}]\n"
	parse := func(queue string) (*Config, []string, error) {
		cfg, ws, err := Parse("t.yaml", []byte("queue: "+queue+"\n"+rest), nil)
		return cfg, problems(ws, nil), err
	}
	if cfg, _, err := parse("{servers: [nats://n:4222]}"); err != nil || cfg.Queue.PingInterval != time.Second {
		t.Errorf("default: %v %v, want 1s", cfg.Queue.PingInterval, err)
	}
	if cfg, ws, err := parse("{servers: [nats://n:4222], ping_interval: 5s}"); err != nil || len(ws) > 0 || cfg.Queue.PingInterval != 5*time.Second {
		t.Errorf("ping_interval: 5s: %v %v %v", cfg.Queue.PingInterval, ws, err)
	}
	_, _, err := parse("{servers: [nats://n:4222], ping_interval: 50ms}")
	if got, want := problems(nil, err), []string{"t.yaml:1:50: queue.ping_interval: 50ms is less than 100ms (pings that often load the servers for no faster failover)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ping_interval: 50ms:\n got %q\nwant %q", got, want)
	}
	if _, ws, err := parse("{ping_interval: 5s}"); err != nil || !reflect.DeepEqual(ws, []string{"t.yaml:1:24: warning: queue.ping_interval only applies to an external cluster (queue.servers) and is ignored by the embedded store"}) {
		t.Errorf("embedded: %q %v", ws, err)
	}
}

// A bad value is reported once: the default (or inherited value) that
// stands in for it is not compared with the other values of a rule, which
// would report a second error about a value the file does not contain.
func TestNoSecondErrorFromAReplacedValue(t *testing.T) {
	const head = "upstreams:\n  a:\n    instances: [http://127.0.0.1:1]\n"
	const tail = "routes: [{name: r, upstream: a}]\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"attempt without a unit, total shorter than its default", head + "    timeouts: {attempt: 10, total: 2s}\n" + tail,
			`t.yaml:4:25: upstreams.a.timeouts.attempt: duration "10" needs a unit, like 10s or 10ms`},
		{"bad total, attempt longer than its default", head + "    timeouts: {total: 1x, attempt: 20s}\n" + tail,
			`t.yaml:4:23: upstreams.a.timeouts.total: invalid duration "1x" (write 250ms, 2s, 5m, 1h30m)`},
		{"bad attempt inherited from defaults", "defaults: {timeouts: {attempt: 10}}\n" + head + "    timeouts: {total: 2s}\n" + tail,
			`t.yaml:1:32: defaults.timeouts.attempt: duration "10" needs a unit, like 10s or 10ms`},
		{"timeouts not a mapping", head + "    timeouts: 2s\n" + "defaults: {timeouts: {attempt: 10s, total: 20s}}\n" + tail,
			`t.yaml:4:15: upstreams.a.timeouts: expected a mapping, got "2s"`},
		{"bad backoff max", head + "    retry: {backoff: {initial: 10s, max: 5}}\n" + tail,
			`t.yaml:4:42: upstreams.a.retry.backoff.max: duration "5" needs a unit, like 5s or 5ms`},
		{"bad backoff type", head + "    retry: {backoff: {type: decorelated, jitter: decorrelated}}\n" + tail,
			`t.yaml:4:29: upstreams.a.retry.backoff.type: "decorelated" is not one of exponential, constant, decorrelated; did you mean "decorrelated"?`},
		{"bad max_open_for", head + "    breaker: {open_for: 10m, max_open_for: 1}\n" + tail,
			`t.yaml:4:44: upstreams.a.breaker.max_open_for: duration "1" needs a unit, like 1s or 1ms`},
		{"bad health interval", head + "    health: {path: /h, interval: 1, timeout: 6s}\n" + tail,
			`t.yaml:4:34: upstreams.a.health.interval: duration "1" needs a unit, like 1s or 1ms`},
		{"bad max_ejection", head + "    outlier: {ejection: 10m, max_ejection: 1}\n" + tail,
			`t.yaml:4:44: upstreams.a.outlier.max_ejection: duration "1" needs a unit, like 1s or 1ms`},
		{"bad async backoff max", head + "routes: [{name: r, upstream: a, async: {backoff: {initial: 10m, max: 5}}}]\n",
			`t.yaml:4:70: routes[0].async.backoff.max: duration "5" needs a unit, like 5s or 5ms`},
		{"bad stale_cache max_bytes", head + "routes: [{name: r, upstream: a, fallback: [stale_cache: {max_bytes: 1 MiBs, max_entry_bytes: 100MiB}]}]\n",
			`t.yaml:4:69: routes[0].fallback[0].stale_cache.max_bytes: invalid size "1 MiBs" (write 1MiB, 512KiB, 10MB or a number of bytes)`},
		{"bad queue max_disk", "queue: {max_disk: 1x, dead_letters: {max_bytes: 6GiB}}\n" + head + tail,
			`t.yaml:1:19: queue.max_disk: invalid size "1x" (write 1MiB, 512KiB, 10MB or a number of bytes)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ws, err := Parse("t.yaml", []byte(tt.yaml), nil)
			if got := strings.Join(problems(ws, err), "\n"); got != tt.want {
				t.Errorf("got:\n%s\nwant only:\n%s", got, tt.want)
			}
		})
	}
}

// BenchmarkParse measures loading the example configuration: the cost a
// start, a validate and each reload pay.
func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("../examples/gateway/spillway.yaml")
	if err != nil {
		b.Fatal(err)
	}
	env := func(string) (string, bool) { return "", true }
	for b.Loop() {
		if _, _, err := Parse("../examples/gateway/spillway.yaml", data, env); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUpgradeKeys: upgrade: resolves over DefaultUpgrade, protocols in
// lower case, 0 means no limit, h2c and non-tokens are refused.
func TestUpgradeKeys(t *testing.T) {
	load := func(route string) (*Route, error) {
		cfg, _, err := Parse("t.yaml", []byte("upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes:\n  - {name: r, upstream: a"+route+"}\n"), nil)
		if err != nil {
			return nil, err
		}
		return cfg.Routes[0], nil
	}
	r, err := load(", upgrade: {protocols: [WebSocket, foo], idle_timeout: 0, max_lifetime: 1h}")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Upgrade{Protocols: []string{"websocket", "foo"}, MaxLifetime: time.Hour}); !reflect.DeepEqual(*r.Upgrade, want) {
		t.Errorf("upgrade = %+v, want %+v", *r.Upgrade, want)
	}
	if r, err = load(", upgrade: {}"); err != nil || !reflect.DeepEqual(*r.Upgrade, DefaultUpgrade()) {
		t.Errorf("upgrade: {} = %+v, %v; want DefaultUpgrade", r.Upgrade, err)
	}
	if r, err = load(""); err != nil || r.Upgrade != nil {
		t.Errorf("no upgrade: = %+v, %v; want nil", r.Upgrade, err)
	}
	for _, bad := range []string{"h2c", "'web socket'"} {
		if _, err := load(", upgrade: {protocols: [" + bad + "]}"); err == nil || !strings.Contains(err.Error(), "not an upgrade protocol") {
			t.Errorf("protocols [%s]: %v, want refused", bad, err)
		}
	}
}
