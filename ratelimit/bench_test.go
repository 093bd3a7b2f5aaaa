package ratelimit

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/spillway-dev/spillway"
)

// BenchmarkAcquire is the allowed call of a Limiter used as a guard (the
// limit is high enough that every call is admitted).
func BenchmarkAcquire(b *testing.B) {
	l := MustNew(Config{Limit: 1_000_000_000, Burst: 1 << 20})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, _ := l.Acquire(ctx)
		p.Release(nil)
	}
}

// BenchmarkAcquireParallel is the same from every core at once: one
// compare-and-swap contended.
func BenchmarkAcquireParallel(b *testing.B) {
	l := MustNew(Config{Limit: 1_000_000_000, Burst: 1 << 20})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, _ := l.Acquire(ctx)
			p.Release(nil)
		}
	})
}

// BenchmarkRefused is a refusal: the preallocated error.
func BenchmarkRefused(b *testing.B) {
	l := MustNew(Config{Limit: 1, Per: time.Hour, Clock: spillway.NewManualClock(0)})
	ctx := context.Background()
	l.Allow()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = l.Acquire(ctx)
	}
}

// BenchmarkAllowKey is a tracked key's allowed call, over 1,000 keys.
func BenchmarkAllowKey(b *testing.B) {
	k, keys := trackedKeys()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k.AllowKey(keys[i%len(keys)])
		i++
	}
}

// BenchmarkAllowKeyParallel is the same from every core at once.
func BenchmarkAllowKeyParallel(b *testing.B) {
	k, keys := trackedKeys()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k.AllowKey(keys[i%len(keys)])
			i++
		}
	})
}

// trackedKeys returns a Keyed that admits every call and tracks 1,000
// keys, and the keys.
func trackedKeys() (*Keyed, []string) {
	k := MustNewKeyed(KeyedConfig{Config: Config{Limit: 1_000_000_000, Burst: 1 << 20}})
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "10.0.0." + strconv.Itoa(i)
		k.AllowKey(keys[i])
	}
	return k, keys
}
