package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// replicaRoute sends / to primary (3 attempts, short backoff), then to
// replica.
const replicaRoute = `upstreams:
  primary:
    instances: ["%s"]
    retry: {max_attempts: 3, backoff: {initial: 1ms, max: 2ms}}
    outlier: {consecutive_failures: 0}
  replica:
    instances: ["%s"]
routes:
  - name: app
    match: {path_prefix: /}
    upstream: primary
    fallback:
      - upstream: replica
`

// TestConnectionHeaderCannotStripTheIdempotencyKey: a client naming
// Idempotency-Key in its Connection header must not get its POST retried
// and sent to the replica without the key.
func TestConnectionHeaderCannotStripTheIdempotencyKey(t *testing.T) {
	primary, replica := newRecordingUpstream(t), newRecordingUpstream(t)
	primary.status.Store(http.StatusServiceUnavailable)
	h := start(t, parse(t, fmt.Sprintf(replicaRoute, primary.URL, replica.URL), nil))

	resp, _ := h.do(t, http.MethodPost, "/orders", map[string]string{
		"Idempotency-Key": "k-1", "Connection": "Idempotency-Key, X-Custom", "X-Custom": "hop",
	}, "order")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Spillway-Fallback") != "replica" {
		t.Fatalf("keyed POST: %d %v, want 200 from the replica", resp.StatusCode, resp.Header)
	}
	p, r := primary.requests(), replica.requests()
	if len(p) != 3 || len(r) != 1 {
		t.Fatalf("keyed POST: primary saw %d attempts, replica %d; want 3 and 1", len(p), len(r))
	}
	for i, req := range append(p, r...) {
		if req.header.Get("Idempotency-Key") != "k-1" || req.body != "order" {
			t.Errorf("attempt %d: Idempotency-Key %q, body %q; want k-1 and the body", i, req.header.Get("Idempotency-Key"), req.body)
		}
		if req.header.Get("X-Custom") != "" {
			t.Errorf("attempt %d: X-Custom, named hop-by-hop, was forwarded", i)
		}
	}

	// Without a key, named hop-by-hop or not, a POST goes once to the
	// primary and never to the replica.
	for _, hdr := range []map[string]string{nil, {"Connection": "Idempotency-Key"}, {"Connection": "X-Idempotency"}} {
		before := len(primary.requests())
		resp, _ := h.do(t, http.MethodPost, "/orders", hdr, "order")
		if resp.StatusCode != http.StatusServiceUnavailable || len(primary.requests()) != before+1 || len(replica.requests()) != 1 {
			t.Errorf("POST without a key (%v): %d, primary +%d, replica %d; want the primary's 503 after one attempt, no replica",
				hdr, resp.StatusCode, len(primary.requests())-before, len(replica.requests()))
		}
	}
}

// TestConnectionHeaderKeepsItsOtherTokens: only the protected names leave
// the Connection header; the others still make their headers hop-by-hop.
func TestConnectionHeaderProtectsWhatTheGatewaySets(t *testing.T) {
	up := newRecordingUpstream(t)
	h := start(t, parse(t, fmt.Sprintf(appRoute, up.URL), nil))
	resp, _ := h.do(t, http.MethodGet, "/app/x", map[string]string{
		"Connection": "X-Forwarded-For, spillway-timeout-ms, HOST, X-Drop, Content-Length, Forwarded, X-Real-IP", "X-Drop": "1",
	}, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d", resp.StatusCode)
	}
	got := up.requests()[0].header
	for _, name := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "Spillway-Timeout-Ms"} {
		if got.Get(name) == "" {
			t.Errorf("%s was dropped: the client named it in Connection", name)
		}
	}
	if got.Get("X-Drop") != "" || strings.Contains(got.Get("Connection"), "X-Drop") {
		t.Errorf("X-Drop, named hop-by-hop, reached the upstream: %v", got)
	}
}
