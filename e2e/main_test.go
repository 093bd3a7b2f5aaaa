package e2e

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/internal/natstest"
)

// toxiproxyLimitDataLeak ignores the goroutines that toxiproxy v2.12.0 leaks,
// forever, on a connection that its limit_data toxic cut while the upstream
// was still sending: the toxic closes its stub and stops reading its input
// channel, so the stub before it (the hidden noop, NoopToxic.Pipe) blocks
// sending the next chunk into that unbuffered channel, and the link's reader
// (ToxicLink.read, inside stream.ChanWriter.Write) blocks sending to the
// noop. Neither waits on a socket, so stopping the proxy cannot free them;
// nor can removing the toxic, which only reaches links still alive. They are
// toxiproxy's, not ours: every fixture checks its own goroutines with the
// ignores only where limit_data cut a stream (see newFixture).
var toxiproxyLimitDataLeak = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*NoopToxic).Pipe"),
	goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/stream.(*ChanWriter).Write"),
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(toxiproxyLimitDataLeak, natstest.LeakOptions()...)...)
}
