#!/usr/bin/env bash
# Installs the load generator and the reference proxies of the gateway
# benchmark (bench/gwbench): wrk, nginx and HAProxy from Debian's packages,
# and with the argument "caddy", Caddy built with `go install` (from the Go
# module proxy; a few minutes the first time) into BENCH_BIN (default
# ~/.cache/spillway-bench/bin), which `make bench-gateway` passes to
# gwbench. Idempotent; not needed by `make test`.
set -euo pipefail
CADDY_VERSION=v2.11.9
BENCH_BIN=${BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/spillway-bench/bin}
# `caddy version` says "unknown" for a go install build: ask the binary's
# module version instead.
if [ "${1:-}" = caddy ] && ! go version -m "$BENCH_BIN/caddy" 2>/dev/null | grep -q "^[[:space:]]*mod[[:space:]]*github.com/caddyserver/caddy/v2[[:space:]]*$CADDY_VERSION[[:space:]]"; then
	echo "== installing caddy $CADDY_VERSION into $BENCH_BIN"
	GOBIN=$BENCH_BIN go install "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION"
fi
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "== installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
