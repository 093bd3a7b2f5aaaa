package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// caddyBin is the -caddy flag: the Caddy binary of the "caddy" target
// (scripts/bench-deps.sh installs v2.11.9 with go install).
var caddyBin string

// caddyConfig is the "caddy" target's Caddyfile (listen host, listen port,
// storage dir, upstream), Caddy's reverse_proxy with the policies nearest
// to spillwayConfig's:
//   - retries: lb_retries 2 within lb_try_duration 5s (Spillway: 3
//     attempts within total 5s; Caddy retries a GET only when the upstream
//     could not be reached or answered a lb_retry_match, so with a healthy
//     upstream, as here, neither retries);
//   - timeouts: dial_timeout 1s (connect), response_header_timeout 2s
//     (attempt);
//   - passive health checks: max_fails 5 within fail_duration 30s takes the
//     upstream out (Spillway's outlier ejection), unhealthy_status 5xx
//     counts as a failure (the breaker's), unhealthy_request_count 1024
//     caps the requests in flight (the bulkhead);
//   - an active health check, GET / every 10s: spillwayConfig has none, but
//     it is part of what Caddy's proxy is taken for, and one request in 10s
//     is nothing beside wrk's load.
//
// No access log (Caddy logs none unless told), no admin endpoint, no
// automatic HTTPS, nothing written outside the run's directory.
const caddyConfig = `{
	admin off
	auto_https off
	persist_config off
	storage file_system %[3]s
}
http://%[1]s:%[2]s {
	bind %[1]s
	reverse_proxy %[4]s {
		lb_retries 2
		lb_try_duration 5s
		fail_duration 30s
		max_fails 5
		unhealthy_status 5xx
		unhealthy_request_count 1024
		health_uri /
		health_interval 10s
		transport http {
			dial_timeout 1s
			response_header_timeout 2s
			keepalive 90s
			keepalive_idle_conns_per_host 1024
		}
	}
}
`

// startCaddy writes the Caddyfile and starts Caddy on addr in front of up.
func startCaddy(dir, addr, up string, start func(string, ...string) error) error {
	if _, err := exec.LookPath(caddyBin); err != nil {
		return fmt.Errorf("caddy: %w (scripts/bench-deps.sh installs it; -caddy names it)", err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(caddyConfig, host, port, filepath.Join(dir, "caddy"), up)), 0o600); err != nil {
		return err
	}
	return start(caddyBin, "run", "--config", conf, "--adapter", "caddyfile")
}
