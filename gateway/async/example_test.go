package async_test

import (
	"fmt"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway/async"
)

func ExampleValidJobID() {
	fmt.Println(async.ValidJobID("5f0c6e0f2c7d4b0e9a6b3c1d2e4f6a7b"))
	fmt.Println(async.ValidJobID("42"))
	// Output:
	// true
	// false
}

// ExampleQueueConfig opens the queue a configuration describes, as spillway
// serve does when the file has an async route.
func ExampleQueueConfig() {
	cfg, _, err := config.Parse("/etc/spillway/spillway.yaml", []byte(`
queue: {sync: always}
upstreams:
  orders: {instances: ["http://127.0.0.1:9031"]}
routes:
  - {name: orders, match: {path_prefix: /orders}, upstream: orders, async: {}}
`), nil)
	if err != nil {
		panic(err)
	}
	if async.HasAsync(cfg) {
		qc := async.QueueConfig(cfg.Queue)
		fmt.Println(qc.Dir, qc.SyncAlways, qc.MaxMemory>>20, "MiB", qc.DedupeWindow)
		// Then queue.Open(ctx, qc), and gateway.New with Options.Queue set.
	}
	// Output:
	// /etc/spillway/spillway-data true 64 MiB 1h0m0s
}
