package retry_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spillway-dev/spillway/retry"
)

var errTransient = errors.New("write: connection reset")

// worker writes n items one after the other through p, each write taking
// 2ms and failing transiently 30 % of the time (a seeded sequence, and
// synctest's fake time: the run is the same every time). It returns how
// many were written and the last error.
func worker(t *testing.T, p *retry.Policy, n int) (written int, last error) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for range n {
		err := p.Run(context.Background(), func(ctx context.Context) error {
			time.Sleep(2 * time.Millisecond)
			if rng.Float64() < 0.3 {
				return errTransient
			}
			return nil
		})
		if err == nil {
			written++
		} else {
			last = err
		}
	}
	return written, last
}

// TestSequentialWorkerBudget is issue 11's worker: one caller writing 1,500
// items sequentially, 30 % of writes failing transiently. The default
// budget refuses part of its retries (it cannot tell one sequential caller
// from many concurrent ones), and its error now says what it allowed and
// how to size it; with NoBudget, the setting for such a caller, every item
// is written.
func TestSequentialWorkerBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := retry.Config{Name: "writes", MaxAttempts: 8, Initial: 10 * time.Millisecond, Max: time.Second}
		written, last := worker(t, retry.MustNew(cfg), 1500)
		if written == 1500 || !errors.Is(last, retry.ErrBudgetExhausted) {
			t.Fatalf("default budget: %d of 1500 written, last error %v; want budget refusals", written, last)
		}
		be, ok := errors.AsType[*retry.BudgetError](last)
		if !ok || be.Requests == 0 || be.Retries == 0 {
			t.Fatalf("refusal %v carries no *BudgetError with the window's counts", last)
		}
		for _, want := range []string{"retries in the last 10s, all that 20% of", "requests plus 10/s allow",
			"raise BudgetConfig.Ratio or MinPerSecond", "Config.NoBudget", errTransient.Error()} {
			if !strings.Contains(last.Error(), want) {
				t.Errorf("refusal %q does not say %q", last, want)
			}
		}
		t.Logf("default budget: %d of 1500 written; %v", written, last)

		cfg.NoBudget = true
		if written, last := worker(t, retry.MustNew(cfg), 1500); written != 1500 {
			t.Errorf("NoBudget: %d of 1500 written, last error %v", written, last)
		}
	})
}
