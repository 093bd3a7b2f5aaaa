package main

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The calls are made one at a time against a scripted server, so the
// breaker's window and therefore the whole output are deterministic.
func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), &out, 6, 6); err != nil {
		t.Fatal(err)
	}
	const want = `svc-1: SERVING, server attempts 2
svc-2: SERVING, server attempts 3
svc-3: SERVING, server attempts 1
svc-4: SERVING, server attempts 2
svc-5: SERVING, server attempts 3
svc-6: SERVING, server attempts 1
bad: InvalidArgument, server attempts 1
down-1: Unavailable, server attempts 3
down-2: Unavailable, server attempts 3
down-3: Unavailable (breaker_open), server attempts 2
down-4: Unavailable (breaker_open), server attempts 0
down-5: Unavailable (breaker_open), server attempts 0
down-6: Unavailable (breaker_open), server attempts 0
breaker: open
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

// A cancelled context ends the program with its error after the first call.
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out strings.Builder
	if err := run(ctx, &out, 6, 6); err != context.Canceled {
		t.Fatalf("run = %v, want context.Canceled", err)
	}
	if got := out.String(); !strings.HasPrefix(got, "svc-1: Canceled") {
		t.Errorf("output = %q, want the cancelled first call", got)
	}
}
