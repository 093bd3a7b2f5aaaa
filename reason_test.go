package spillway_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

var (
	errDown  = errors.New("downstream is down")
	errOther = errors.New("another failure")
)

func TestReasonOf(t *testing.T) {
	sentinel := errors.New("circuit breaker is open")
	open := &spillway.Error{Code: spillway.ReasonBreakerOpen, Policy: "breaker", Name: "db", Err: sentinel}
	tests := []struct {
		name string
		err  error
		want spillway.Reason
	}{
		{"nil", nil, ""},
		{"policy error", open, spillway.ReasonBreakerOpen},
		{"wrapped policy error", fmt.Errorf("calling db: %w", open), spillway.ReasonBreakerOpen},
		{"caller deadline", context.DeadlineExceeded, spillway.ReasonDeadlineExceeded},
		{"caller cancel", fmt.Errorf("x: %w", context.Canceled), spillway.ReasonCanceled},
		{"downstream error", errDown, spillway.ReasonUpstreamError},
		{"joined keeps the first reason", errors.Join(open, errDown), spillway.ReasonBreakerOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := spillway.ReasonOf(tt.err); got != tt.want {
				t.Errorf("ReasonOf(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestIsRejection(t *testing.T) {
	for _, r := range spillway.Reasons {
		err := fmt.Errorf("wrapped: %w", &spillway.Error{Code: r})
		want := r == spillway.ReasonBreakerOpen || r == spillway.ReasonBulkheadFull ||
			r == spillway.ReasonBudgetExhausted || r == spillway.ReasonThrottled || r == spillway.ReasonNoHealthyInstance
		if got := spillway.IsRejection(err); got != want {
			t.Errorf("IsRejection(%s) = %v, want %v", r, got, want)
		}
	}
	if spillway.IsRejection(errDown) || spillway.IsRejection(nil) {
		t.Error("a plain error is not a rejection")
	}
}

func TestErrorUnwrapsSentinelAndCause(t *testing.T) {
	sentinel := errors.New("retries exhausted")
	err := error(&spillway.Error{Code: spillway.ReasonUpstreamError, Policy: "retry", Name: "api", Err: sentinel, Cause: errDown})
	if !errors.Is(err, sentinel) || !errors.Is(err, errDown) {
		t.Fatalf("errors.Is must reach the sentinel and the cause: %v", err)
	}
	want := `spillway: retry "api": retries exhausted: downstream is down`
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	ra := &spillway.Error{Code: spillway.ReasonBreakerOpen, Policy: "breaker", RetryAfter: 30 * time.Second}
	if got := ra.Error(); got != "spillway: breaker: breaker_open (retry after 30s)" {
		t.Errorf("Error() = %q", got)
	}
	if d, ok := spillway.RetryAfterOf(ra); !ok || d != 30*time.Second {
		t.Errorf("RetryAfterOf = %v, %v", d, ok)
	}
}

func TestPermanentAndRetryAfter(t *testing.T) {
	if spillway.Permanent(nil) != nil || spillway.WithRetryAfter(nil, time.Second) != nil {
		t.Fatal("marking nil must stay nil")
	}
	p := fmt.Errorf("ctx: %w", spillway.Permanent(errDown))
	if !spillway.IsPermanent(p) || !errors.Is(p, errDown) || spillway.IsPermanent(errDown) {
		t.Errorf("Permanent marking is wrong for %v", p)
	}
	h := spillway.WithRetryAfter(errDown, 2*time.Second)
	if d, ok := spillway.RetryAfterOf(h); !ok || d != 2*time.Second || !errors.Is(h, errDown) {
		t.Errorf("RetryAfterOf(%v) = %v, %v", h, d, ok)
	}
	if _, ok := spillway.RetryAfterOf(errDown); ok {
		t.Error("a plain error carries no hint")
	}
}

func TestIsCallerDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if spillway.IsCallerDone(ctx, context.Canceled) {
		t.Error("a live context is not done")
	}
	cancel()
	if !spillway.IsCallerDone(ctx, fmt.Errorf("x: %w", context.Canceled)) {
		t.Error("cancellation of the caller's context is the caller's")
	}
	if spillway.IsCallerDone(ctx, &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Cause: context.DeadlineExceeded}) {
		t.Error("a policy's timeout is not the caller's")
	}
}

func TestChannelObserverNeverBlocks(t *testing.T) {
	o := spillway.NewChannelObserver(2)
	for i := 0; i < 5; i++ {
		o.Observe(spillway.Event{Kind: spillway.EventRejection})
	}
	if len(o.C) != 2 || o.Dropped() != 3 {
		t.Fatalf("buffered %d, dropped %d; want 2 and 3", len(o.C), o.Dropped())
	}
	if spillway.EventRetry.String() != "retry" || spillway.EventKind(99).String() != "unknown" {
		t.Error("EventKind names")
	}
}

func TestManualClock(t *testing.T) {
	c := spillway.NewManualClock(time.Second)
	c.Advance(500 * time.Millisecond)
	if c.Nanotime() != int64(1500*time.Millisecond) {
		t.Fatalf("Nanotime = %d", c.Nanotime())
	}
	c.Set(0)
	if c.Nanotime() != 0 {
		t.Fatal("Set")
	}
	if spillway.ClockOrSystem(nil) != spillway.SystemClock || spillway.ClockOrSystem(c) != c {
		t.Fatal("ClockOrSystem")
	}
	a := spillway.SystemClock.Nanotime()
	if b := spillway.SystemClock.Nanotime(); b < a {
		t.Fatal("SystemClock went backwards")
	}
}
