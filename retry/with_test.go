package retry_test

import (
	"testing"
	"time"

	"github.com/spillway-dev/spillway/retry"
)

// TestWithKeepsWhatItDoesNotName: With changes what fn sets and keeps the
// rest, the budget (its counts) included; New of the same partial Config
// would reset the name and make a new budget.
func TestWithKeepsWhatItDoesNotName(t *testing.T) {
	p := retry.MustNew(retry.Config{Name: "orders", Initial: 20 * time.Millisecond, Max: time.Second})
	p.Config().Budget.Request()
	q, err := p.With(func(c *retry.Config) { c.MaxAttempts = 5 })
	if err != nil {
		t.Fatal(err)
	}
	got := q.Config()
	if got.Name != "orders" || got.Initial != 20*time.Millisecond || got.MaxAttempts != 5 || got.Budget != p.Config().Budget {
		t.Errorf("With: %+v, want orders, 20ms, 5 attempts and p's budget", got)
	}
	if p.Config().MaxAttempts != retry.DefaultMaxAttempts {
		t.Error("With changed p")
	}
	// A MaxRetryAfter at its default follows Max; an explicit one stays.
	if q, _ = p.With(func(c *retry.Config) { c.Max = 3 * time.Second }); q.Config().MaxRetryAfter != 3*time.Second {
		t.Errorf("MaxRetryAfter = %v, want 3s (the default follows Max)", q.Config().MaxRetryAfter)
	}
	p2 := retry.MustNew(retry.Config{MaxRetryAfter: time.Minute})
	if q, _ = p2.With(func(c *retry.Config) { c.Max = 3 * time.Second }); q.Config().MaxRetryAfter != time.Minute {
		t.Errorf("MaxRetryAfter = %v, want the explicit 1m0s", q.Config().MaxRetryAfter)
	}
	// Leaving the decorrelated scheme by one of its two fields leaves it.
	d := retry.MustNew(retry.Config{Backoff: retry.Decorrelated})
	if q, err = d.With(func(c *retry.Config) { c.Backoff = retry.Constant }); err != nil || q.Config().Jitter != retry.FullJitter {
		t.Errorf("off decorrelated: %v, %v", q, err)
	}
	// NoBudget drops the budget instead of contradicting it.
	if q, err = p.With(func(c *retry.Config) { c.NoBudget = true }); err != nil || q.Config().Budget != nil {
		t.Errorf("NoBudget: %v, %v", q, err)
	}
	if _, err := p.With(func(c *retry.Config) { c.Initial = 2 * time.Second }); err == nil {
		t.Error("With(Initial > Max): no error")
	}
}
