package fallback_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/fallback"
)

func Example() {
	errDown := errors.New("catalog: connection refused")
	cache := map[string]string{"item-1": "cached item-1"}

	f := fallback.MustNew(fallback.Config{},
		// A stale cache entry, if there is one.
		fallback.Func("stale-cache", func(ctx context.Context, err error) (string, error) {
			if v, ok := cache["item-1"]; ok {
				return v, nil
			}
			return "", errors.New("cache miss")
		}),
		// Otherwise a default.
		fallback.Value("default", "no item"),
	)

	v, served, err := fallback.Do(context.Background(), f, func(ctx context.Context) (string, error) {
		return "", errDown
	})
	fmt.Printf("%q served by %s, err %v\n", v, served, err)
	// Output:
	// "cached item-1" served by stale-cache, err <nil>
}

func ExampleFallback_Fallback_exhausted() {
	f := fallback.MustNew(fallback.Config{}, fallback.Func("replica", func(context.Context, error) (int, error) {
		return 0, errors.New("replica down")
	}))
	original := &spillway.Error{Code: spillway.ReasonBreakerOpen, Policy: "breaker", Name: "catalog", Err: errors.New("circuit open")}

	_, served, err := f.Fallback(context.Background(), original)
	fmt.Printf("served %q\n", served)
	fmt.Println(err)
	// The error still answers for the original failure.
	fmt.Println(spillway.ReasonOf(err), errors.Is(err, original), errors.Is(err, fallback.ErrExhausted))
	// Output:
	// served ""
	// spillway: breaker "catalog": circuit open (fallback failed: "replica": replica down)
	// breaker_open true true
}

func ExampleOnReasons() {
	stale := fallback.Value("stale-cache", "yesterday's answer")
	stale.When = fallback.OnReasons(spillway.ReasonBreakerOpen, spillway.ReasonBulkheadFull)
	f := fallback.MustNew(fallback.Config{}, stale)

	_, served, _ := f.Fallback(context.Background(), &spillway.Error{Code: spillway.ReasonBulkheadFull, Policy: "bulkhead"})
	fmt.Printf("bulkhead full: served %q\n", served)
	_, served, _ = f.Fallback(context.Background(), errors.New("500 Internal Server Error"))
	fmt.Printf("upstream error: served %q\n", served)
	// Output:
	// bulkhead full: served "stale-cache"
	// upstream error: served ""
}
