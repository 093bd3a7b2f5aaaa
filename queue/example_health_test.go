package queue_test

import (
	"context"
	"fmt"
	"os"

	"github.com/spillway-dev/spillway/queue"
)

// The store's health: for each stream, its leader and the state of its
// replicas. On a cluster, alert on a stream without a leader or with fewer
// current replicas than configured.
func ExampleQueue_Health() {
	dir, err := os.MkdirTemp("", "spillway-queue-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{Dir: dir, MaxDisk: 64 << 20})
	if err != nil {
		panic(err)
	}
	defer q.Close()

	h, err := q.Health(ctx)
	if err != nil {
		panic(err)
	}
	for _, s := range h.Streams {
		fmt.Printf("%s: leader %q", s.Name, s.Leader)
		for _, r := range s.Replicas {
			fmt.Printf(", %s %s (lag %d)", r.Name, r.State(), r.Lag)
		}
		fmt.Println()
	}
	// Output:
	// SPILLWAY_JOBS: leader "spillway", spillway current (lag 0)
	// SPILLWAY_DEAD: leader "spillway", spillway current (lag 0)
	// KV_spillway_jobs: leader "spillway", spillway current (lag 0)
}
