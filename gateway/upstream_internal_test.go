package gateway

import (
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
)

// TestTransportLimitsAreMadeAtBuild: the transports' downstreams are the
// total limits the table build registered, the upstream's own and each
// overriding route timeout, with their policies made then; a key the build
// did not register is refused rather than parsed into a limit.
func TestTransportLimitsAreMadeAtBuild(t *testing.T) {
	cfg, _, err := config.Parse("t.yaml", []byte(`
upstreams:
  u: {instances: ["http://127.0.0.1:1"], timeouts: {attempt: 500ms, total: 3s}}
routes:
  - {name: a, match: {path_prefix: /a}, upstream: u, timeout: 1s}
  - {name: b, match: {path_prefix: /b}, upstream: u}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	tb := g.table.Load()
	up := tb.upstreams["u"]
	if a, b := tb.byName["a"].totalKey, tb.byName["b"].totalKey; a != "1s" || b != "3s" || up.totalKey != b {
		t.Fatalf("keys: route a %q, route b %q, upstream %q", a, b, up.totalKey)
	}
	for key, want := range map[string]time.Duration{"1s": time.Second, "3s": 3 * time.Second} {
		for _, delivery := range []bool{false, true} {
			d, err := up.downstream(key, delivery)
			if err != nil {
				t.Fatalf("%s (delivery %v): %v", key, delivery, err)
			}
			// The delivery transport has no retry policy: the queue retries.
			retries := d.Retry != nil
			if d.Timeouts.Total != want || d.Breaker != up.breaker || d.Bulkhead != up.bulkhead || retries == delivery {
				t.Errorf("%s (delivery %v): %+v", key, delivery, d)
			}
		}
	}
	if _, err := up.downstream("2s", false); err == nil {
		t.Error("a limit no route has got policies")
	}
}
