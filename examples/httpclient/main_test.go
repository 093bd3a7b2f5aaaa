package main

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The requests are sent one at a time to a scripted server, so the breaker's
// window and therefore the whole output are deterministic: retried GETs, a
// POST that is not retried and one that is (Idempotency-Key), and an outage
// in which the breaker opens and then rejects without any attempt.
func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), &out, 6, 5); err != nil {
		t.Fatal(err)
	}
	const want = `GET /orders/1: 200 OK, server attempts 2
GET /orders/2: 200 OK, server attempts 3
GET /orders/3: 200 OK, server attempts 1
GET /orders/4: 200 OK, server attempts 2
GET /orders/5: 200 OK, server attempts 3
GET /orders/6: 200 OK, server attempts 1
POST /orders: 503 Service Unavailable, server attempts 1
POST /orders/new (Idempotency-Key): 200 OK, server attempts 2
GET /stock/1: 503 Service Unavailable, server attempts 3
  breaker closed -> open
GET /stock/2: 503 Service Unavailable, server attempts 3
GET /stock/3: error breaker_open, server attempts 0
GET /stock/4: error breaker_open, server attempts 0
GET /stock/5: error breaker_open, server attempts 0
breaker open
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

// A cancelled context ends the program with its error after the first
// request, which is never sent.
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out strings.Builder
	if err := run(ctx, &out, 6, 5); err != context.Canceled {
		t.Fatalf("run = %v, want context.Canceled", err)
	}
	if want := "GET /orders/1: error canceled, server attempts 0\n"; out.String() != want {
		t.Errorf("output = %q, want %q", out.String(), want)
	}
}
