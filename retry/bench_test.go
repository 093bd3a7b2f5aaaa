package retry_test

import (
	"context"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/retry"
)

func ok(context.Context) (int, error) { return 1, nil }

func BenchmarkDoFirstAttempt(b *testing.B) {
	p := retry.MustNew(retry.Config{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		retry.Do(ctx, p, ok)
	}
}

func BenchmarkDoFirstAttemptWithBudget(b *testing.B) {
	p := retry.MustNew(retry.Config{Budget: retry.MustNewBudget(retry.BudgetConfig{})})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		retry.Do(ctx, p, ok)
	}
}

func BenchmarkDoFirstAttemptWithBudgetParallel(b *testing.B) {
	p := retry.MustNew(retry.Config{Budget: retry.MustNewBudget(retry.BudgetConfig{})})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			retry.Do(ctx, p, ok)
		}
	})
}

func BenchmarkRunFirstAttempt(b *testing.B) {
	p := retry.MustNew(retry.Config{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		p.Run(ctx, fn)
	}
}

func BenchmarkDelay(b *testing.B) {
	for _, j := range []retry.JitterKind{retry.NoJitter, retry.FullJitter, retry.EqualJitter, retry.DecorrelatedJitter} {
		b.Run(j.String(), func(b *testing.B) {
			p := retry.MustNew(retry.Config{Jitter: j})
			b.ReportAllocs()
			var prev time.Duration
			n := 0
			for b.Loop() {
				n = n%8 + 1
				prev = p.Delay(n, prev)
			}
		})
	}
}

// BenchmarkNextRetry is the decision to retry: classification, backoff and
// the budget's withdrawal.
func BenchmarkNextRetry(b *testing.B) {
	// A still clock keeps the one request in the window however long the run.
	budget := retry.MustNewBudget(retry.BudgetConfig{Ratio: 1e9, Clock: spillway.NewManualClock(0)})
	budget.Request()
	p := retry.MustNew(retry.Config{Budget: budget, MaxAttempts: 1 << 30})
	ctx := context.Background()
	s := spillway.RetryState{Attempts: 1}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, stop := p.Next(ctx, s, errUpstream); stop != nil {
			b.Fatal(stop)
		}
	}
}

func BenchmarkBudgetRequest(b *testing.B) {
	budget := retry.MustNewBudget(retry.BudgetConfig{})
	b.ReportAllocs()
	for b.Loop() {
		budget.Request()
	}
}

func BenchmarkBudgetRequestParallel(b *testing.B) {
	budget := retry.MustNewBudget(retry.BudgetConfig{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			budget.Request()
		}
	})
}

func BenchmarkBudgetTryRetry(b *testing.B) {
	budget := retry.MustNewBudget(retry.BudgetConfig{Ratio: 1e9})
	budget.Request()
	b.ReportAllocs()
	for b.Loop() {
		budget.TryRetry()
	}
}
