package fallback_test

import (
	"context"
	"errors"
	"testing"

	"github.com/spillway-dev/spillway/fallback"
)

func ok(context.Context) (int, error) { return 1, nil }

var errBench = errors.New("down")

func fail(context.Context) (int, error) { return 0, errBench }

// BenchmarkDoSuccess is the path of nearly every call: fn succeeds and the
// fallback costs a nil check.
func BenchmarkDoSuccess(b *testing.B) {
	f := fallback.MustNew(fallback.Config{}, fallback.Value("static", 0))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = fallback.Do(ctx, f, ok)
	}
}

// BenchmarkDoFallback is a failed call served by a static value.
func BenchmarkDoFallback(b *testing.B) {
	f := fallback.MustNew(fallback.Config{}, fallback.Value("static", 0))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, served, _ := fallback.Do(ctx, f, fail); served == "" {
			b.Fatal("not served")
		}
	}
}
