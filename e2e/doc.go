// Package e2e holds Spillway's end-to-end fault-injection tests: a real
// upstream HTTP server on loopback, an in-process toxiproxy
// (github.com/Shopify/toxiproxy/v2 v2.12.0) in front of it, and a client whose
// transport is spillwayhttp.Transport. The toxics — latency, reset_peer,
// timeout, slow_close, limit_data — and a disabled proxy break the connection
// the way real networks do, and each test counts the attempts on the server
// side to prove what the policies did.
//
// The gateway tests (gateway_test.go) put the in-process gateway
// (gateway.New behind an httptest server, configured with config.Parse) in
// front of the same proxy: connection refused, black hole, slow, 50 % 503,
// a reset in the middle of a body, flapping and recovery, asserting the
// fallback served, the breaker's opening and closing, the budget's bound on
// attempts during an outage, and no goroutine or connection left. The
// bad-config tests check the FILE:LINE:COL lines of config.Load and of the
// real `spillway validate -c` binary.
//
// The async tests (async_*_test.go, one TestAsync) run the real `spillway
// serve` binary with async routes: kill -9 and restart on the same embedded
// store five times while clients post (every 202'd job delivered, none
// applied twice by an upstream that dedupes on Idempotency-Key); an upstream
// down for a while (attempts bounded while the breaker is open, everything
// delivered after, in acceptance order on an ordered route); a poison job
// dead-lettered after max_attempts, listed and replayed through the admin
// API; a full store (503 queue_full) and an unavailable one (an external
// nats-server started in the test, stopped and restarted: 503
// queue_unavailable, then 202 again); and two gateways sharing one external
// NATS server with every job delivered exactly once.
//
// The dashboard test (dashboard_test.go) drives /dashboard/ in Debian's
// headless Chromium through chromedp against an in-process gateway and
// admin listener: no console error, the breaker shown open within 2s of an
// outage, force-open with the token and refused without it, an optional
// route switched off, hostile names rendered as text, a screenshot written.
// Without /usr/bin/chromium it skips, except under CI, where it fails
// (scripts/test-deps.sh installs it).
//
// It is a module of its own so that chromedp and its dependencies never
// enter the root module's graph (toxiproxy is in both: spillway drill uses
// it as its fault proxy, internal/drill). The package has no API:
// everything is in its tests. Run it with
//
//	cd e2e && go test -race -count=1 ./...
package e2e
