package spillwaygrpc_test

import (
	"fmt"

	"github.com/spillway-dev/spillway/spillwaygrpc"
)

// ParsePushback reads a server's grpc-retry-pushback-ms: a delay, or a
// request not to retry at all.
func ExampleParsePushback() {
	for _, v := range []string{"250", "0", "-1", "soon"} {
		d, retry := spillwaygrpc.ParsePushback(v)
		fmt.Println(v, d, retry)
	}
	// Output:
	// 250 250ms true
	// 0 0s true
	// -1 0s false
	// soon 0s false
}
