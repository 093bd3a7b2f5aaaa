package natstest

import "go.uber.org/goleak"

// LeakOptions are the goleak options of a test package that runs NATS
// servers in process (through this package or the queue's embedded store).
//
// nats-server v2.15.3 starts, per file store, a state-flush loop
// ((*fileStore).flushStreamStateLoop, filestore.go) and a reference on the
// shared access-time ticker (ats.Register, ats/ats.go) that only the
// store's Stop ends. A stream being created while its server shuts down can
// leave a store that is never stopped; both goroutines then outlive
// Shutdown and WaitForShutdown. Each was seen once in a -race run of the
// gateway's tests (2026-12-06). They hold no file of ours and no test
// state, so they are the goroutines these packages let outlive them.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).flushStreamStateLoop"),
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server/ats.Register.func1"),
	}
}
