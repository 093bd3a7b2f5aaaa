package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/retry"
)

// upstreamOf parses a file with the upstream a written as body.
func upstreamOf(t *testing.T, body string) *Upstream {
	t.Helper()
	yaml := "upstreams:\n  a: {instances: [http://127.0.0.1:1]" + body + "}\nroutes: [{name: r, upstream: a}]\n"
	cfg, _, err := Parse("t.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Upstreams["a"]
}

// TestPolicyConfigs pins the translation of an upstream's keys into the
// policy packages' configurations, and that each is one its constructor
// accepts: what the gateway builds is what the file says.
func TestPolicyConfigs(t *testing.T) {
	u := upstreamOf(t, ", timeouts: {attempt: 2s}, breaker: {min_calls: 5, failure_rate: 25%, slow_call: {duration: 1s, rate: 80%}, open_for: 10s, max_open_for: 1m, half_open_probes: 2, window: {size: 50}}"+
		", retry: {max_attempts: 4, backoff: {type: constant, initial: 50ms, max: 1s, multiplier: 3, jitter: equal}, retry_after_max: 20s, budget: {ratio: 0, window: 5s, min_per_second: 3}}"+
		", bulkhead: {max_concurrent: 7, max_waiting: 3, max_wait: 100ms}")
	wantBreaker := breaker.Config{Name: "a", WindowSize: 50, MinCalls: 5, FailureRate: 0.25, SlowCallDuration: time.Second, SlowCallRate: 0.8,
		OpenFor: 10 * time.Second, MaxOpenFor: time.Minute, HalfOpenProbes: 2, ProbeTimeout: 2 * time.Second}
	if got := u.BreakerConfig(); !reflect.DeepEqual(got, wantBreaker) {
		t.Errorf("BreakerConfig:\n got %+v\nwant %+v", got, wantBreaker)
	}
	bc, ok := u.BudgetConfig()
	if want := (retry.BudgetConfig{Ratio: -1, Window: 5 * time.Second, MinPerSecond: 3}); !ok || bc != want {
		t.Errorf("BudgetConfig = %+v, %v; want %+v (ratio 0 is none, the retry package's negative)", bc, ok, want)
	}
	budget, err := retry.NewBudget(bc)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := u.RetryConfig(budget)
	wantRetry := retry.Config{Name: "a", MaxAttempts: 4, Backoff: retry.Constant, Initial: 50 * time.Millisecond, Max: time.Second, Multiplier: 3,
		Jitter: retry.EqualJitter, Budget: budget, MaxRetryAfter: 20 * time.Second}
	if err != nil || !reflect.DeepEqual(rc, wantRetry) {
		t.Errorf("RetryConfig:\n got %+v, %v\nwant %+v", rc, err, wantRetry)
	}
	wantBulkhead := bulkhead.Config{Name: "a", MaxConcurrent: 7, MaxWaiting: 3, MaxWait: 100 * time.Millisecond}
	if got := u.BulkheadConfig(); !reflect.DeepEqual(got, wantBulkhead) {
		t.Errorf("BulkheadConfig = %+v, want %+v", got, wantBulkhead)
	}
	if _, err := breaker.New(u.BreakerConfig()); err != nil {
		t.Errorf("breaker.New: %v", err)
	}
	if _, err := retry.New(rc); err != nil {
		t.Errorf("retry.New: %v", err)
	}
	if _, err := bulkhead.New(u.BulkheadConfig()); err != nil {
		t.Errorf("bulkhead.New: %v", err)
	}
}

// TestPolicyConfigEdges: a time window, the decorrelated scheme (its own
// jitter), and a budget that allows no retry (no budget, one attempt).
func TestPolicyConfigEdges(t *testing.T) {
	u := upstreamOf(t, ", breaker: {window: {type: time, size: 30s}}, retry: {backoff: {type: decorrelated}, budget: {ratio: 0, min_per_second: 0}}")
	if bc := u.BreakerConfig(); bc.Window != breaker.TimeWindow || bc.WindowDuration != 30*time.Second || bc.WindowSize != 0 {
		t.Errorf("time window: %+v", bc)
	}
	if _, ok := u.BudgetConfig(); ok {
		t.Error("a budget of ratio 0 and min_per_second 0 is a budget")
	}
	rc, err := u.RetryConfig(nil)
	if err != nil || rc.MaxAttempts != 1 || rc.Backoff != retry.Decorrelated || rc.Jitter != retry.DecorrelatedJitter {
		t.Errorf("RetryConfig = %+v, %v; want one attempt, decorrelated", rc, err)
	}
	if _, err := retry.New(rc); err != nil {
		t.Errorf("retry.New: %v", err)
	}
	d := DefaultUpstream()
	d.Name = "d"
	if _, err := breaker.New(d.BreakerConfig()); err != nil {
		t.Errorf("the default breaker: %v", err)
	}
	if rc, err := d.RetryConfig(nil); err != nil || rc.MaxAttempts != 3 || rc.Backoff != retry.Exponential || rc.Jitter != retry.FullJitter {
		t.Errorf("the default retry: %+v, %v", rc, err)
	}
}
