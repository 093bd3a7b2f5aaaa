package queue

import (
	"context"
	"sync/atomic"
	"testing"
)

// BenchmarkEnqueue measures acknowledged Enqueue calls of 256 B from
// concurrent callers (as a gateway makes them) on the embedded store,
// with the default interval fsync and with SyncAlways.
func BenchmarkEnqueue(b *testing.B) {
	for _, bc := range []struct {
		name string
		sync bool
	}{{"sync=interval", false}, {"sync=always", true}} {
		b.Run(bc.name, func(b *testing.B) {
			q, err := Open(context.Background(), Config{Dir: b.TempDir(), SyncAlways: bc.sync})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			data := make([]byte, 256)
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := q.Enqueue(context.Background(), "bench", Message{Data: data}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// BenchmarkDeliver measures jobs delivered per second to a handler that
// succeeds at once (Concurrency 8, 256 B), enqueued beforehand.
func BenchmarkDeliver(b *testing.B) {
	q, err := Open(context.Background(), Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	data := make([]byte, 256)
	for range b.N {
		if _, _, err := q.Enqueue(context.Background(), "bench", Message{Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	done := make(chan struct{})
	var n atomic.Int64
	b.ResetTimer()
	w, err := q.Consume("bench", Policy{}, func(context.Context, *Job) Result {
		if n.Add(1) == int64(b.N) {
			close(done)
		}
		return Result{Outcome: Delivered}
	}, WorkerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	_ = w.Stop(context.Background())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
