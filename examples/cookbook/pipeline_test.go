package cookbook_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/breaker"
	"github.com/spillway-dev/spillway/bulkhead"
	"github.com/spillway-dev/spillway/fallback"
	"github.com/spillway-dev/spillway/retry"
	"github.com/spillway-dev/spillway/timeout"
)

// A typed pipeline around a pricing service: every policy in its place,
// named by its field, and a fallback that serves the last price seen for the
// item asked for. spillway.ExecuteKeyed gives the call's key (the SKU) to the
// call and, when the call fails, to the fallback step made with
// fallback.Keyed; the cache is filled with each price the service itself
// answered (Result.Fallback is ""). Classify makes an answer a failure: the
// service says "no price" with a price of 0 and no error. Once the breaker
// opens, the cached prices are served without calling the service.
func Example_typedPipeline() {
	svc := &pricing{prices: map[string]int{"lamp": 1200, "desk": 5400, "chair": 800}}
	cache := &lastGood{prices: make(map[string]int)}
	prices := spillway.MustNewPipeline(spillway.Policies[int]{
		Fallback: fallback.MustNew(fallback.Config{Name: "prices"}, fallback.Keyed("last-good", cache.get)),
		Total:    timeout.MustNew(timeout.Config{Name: "prices-total", Duration: 2 * time.Second}),
		Retry:    retry.MustNew(retry.Config{Name: "prices", MaxAttempts: 3, Initial: time.Millisecond}), // 100ms in production
		Breaker:  breaker.MustNew(breaker.Config{Name: "prices", MinCalls: 10, WindowSize: 10}),
		Bulkhead: bulkhead.MustNew(bulkhead.Config{Name: "prices", MaxConcurrent: 20}),
		Attempt:  timeout.MustNew(timeout.Config{Name: "prices-attempt", Duration: 500 * time.Millisecond}),
		Classify: func(cents int) error {
			if cents == 0 {
				return errNoPrice // retried, counted by the breaker
			}
			return nil
		},
		Name: "prices",
	})

	show := func(sku string) {
		r := spillway.ExecuteKeyed(context.Background(), prices, sku, svc.Price)
		switch {
		case r.Err != nil:
			// The fallback ran and failed: an *ExhaustedError, whose reason is the call's.
			fmt.Printf("%s: no price, attempts %d (%s, every fallback failed: %t)\n",
				sku, r.Attempts, spillway.ReasonOf(r.Err), errors.Is(r.Err, fallback.ErrExhausted))
		case r.Fallback != "":
			fmt.Printf("%s: %d cents, attempts %d, from %s in place of %s\n",
				sku, r.Value, r.Attempts, r.Fallback, spillway.ReasonOf(r.Replaced))
		default:
			cache.put(sku, r.Value) // the service's own answer
			fmt.Printf("%s: %d cents, attempts %d\n", sku, r.Value, r.Attempts)
		}
	}

	show("lamp")
	svc.failNext = 1 // one transient failure: retried
	show("desk")
	svc.mode = "no-price" // the service answers 0: a failure, by Classify
	show("lamp")
	svc.mode = "down"
	show("chair") // never answered: nothing to fall back on
	show("desk")  // the breaker opens on its first attempt's failure
	show("lamp")
	// Output:
	// lamp: 1200 cents, attempts 1
	// desk: 5400 cents, attempts 2
	// lamp: 1200 cents, attempts 3, from last-good in place of upstream_error
	// chair: no price, attempts 3 (upstream_error, every fallback failed: true)
	// desk: 5400 cents, attempts 1, from last-good in place of breaker_open
	// lamp: 1200 cents, attempts 0, from last-good in place of breaker_open
}

// errNoPrice is the failure that Classify makes of a price of 0.
var errNoPrice = errors.New("pricing answered no price")

// pricing is the example's service: it fails the next failNext calls, and
// every call while mode is "down"; in mode "no-price" it answers 0. It is
// called by one goroutine at a time.
type pricing struct {
	prices   map[string]int
	mode     string
	failNext int
}

func (p *pricing) Price(ctx context.Context, sku string) (int, error) {
	switch {
	case p.mode == "down":
		return 0, errors.New("503 pricing unavailable")
	case p.failNext > 0:
		p.failNext--
		return 0, errors.New("503 pricing busy")
	case p.mode == "no-price":
		return 0, nil
	}
	return p.prices[sku], ctx.Err()
}

// lastGood caches the last price the service answered for each SKU; its get
// is the fallback step, which fails for a SKU it has never seen.
type lastGood struct {
	mu     sync.Mutex
	prices map[string]int
}

func (c *lastGood) put(sku string, cents int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prices[sku] = cents
}

func (c *lastGood) get(_ context.Context, sku string, _ error) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cents, ok := c.prices[sku]
	if !ok {
		return 0, fmt.Errorf("no cached price for %q", sku)
	}
	return cents, nil
}
