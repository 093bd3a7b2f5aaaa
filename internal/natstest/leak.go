package natstest

import "go.uber.org/goleak"

// LeakOptions are the goleak options of a test package that runs NATS
// servers in process (through this package or the queue's embedded store).
//
// nats-server v2.15.3 starts a state-flush loop per file store
// ((*fileStore).flushStreamStateLoop, filestore.go) that only the store's
// Stop ends. A stream being created while its server shuts down can leave a
// store that is never stopped; its loop then waits for its 2-minute ticker
// after Shutdown and WaitForShutdown have returned. It was seen once in a
// -race run of the gateway's tests. The loop holds no file of ours and no
// test state, so it is the one goroutine these packages let outlive them.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).flushStreamStateLoop"),
	}
}
