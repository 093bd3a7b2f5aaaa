package main

import (
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/gateway"
)

// TestPrintRoutesSharedLimit: spillway ctl routes says whether a shared
// rate limit is shared now or on this replica's share.
func TestPrintRoutesSharedLimit(t *testing.T) {
	for _, tc := range []struct {
		shared *gateway.SharedLimitView
		want   string
	}{
		{nil, "100/s burst 200 by client_ip (3 keys, 1 refused)\n"},
		{&gateway.SharedLimitView{Active: true, Replicas: 3}, "(3 keys, 1 refused), shared by 3 replicas\n"},
		{&gateway.SharedLimitView{Replicas: 3, Fallbacks: 2}, "(3 keys, 1 refused), on its 1/3 share: NATS does not answer (2 fallbacks)\n"},
	} {
		var b strings.Builder
		printRoutes(&b, struct{ Routes []gateway.RouteView }{[]gateway.RouteView{{Name: "api", Upstream: "api", Enabled: true,
			RateLimit: &gateway.RateLimitView{Rate: "100/s", Burst: 200, Key: "client_ip", TrackedKeys: 3, Rejected: 1, Shared: tc.shared}}}})
		if !strings.HasSuffix(b.String(), tc.want) {
			t.Errorf("got %q, want it to end with %q", b.String(), tc.want)
		}
	}
}
