// Package e2e holds Spillway's end-to-end fault-injection tests: a real
// upstream HTTP server on loopback, an in-process toxiproxy
// (github.com/Shopify/toxiproxy/v2 v2.12.0) in front of it, and a client whose
// transport is spillwayhttp.Transport. The toxics — latency, reset_peer,
// timeout, slow_close, limit_data — and a disabled proxy break the connection
// the way real networks do, and each test counts the attempts on the server
// side to prove what the policies did.
//
// It is a module of its own so that toxiproxy and its dependencies never enter
// the root module's graph. The package has no API: everything is in its tests.
// Run it with
//
//	cd e2e && go test -race -count=1 ./...
package e2e
