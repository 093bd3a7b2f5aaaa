package gateway

import "time"

// SetClock makes now the clock g reads the runtime faults' expiry on, for
// the tests of package gateway_test; call it before adding faults.
func SetClock(g *Gateway, now func() time.Time) { g.now = now }

// SetSharedLeaseTimeout sets the LeaseTimeout of the shared rate limits
// built from now on, until the test ends: a test that counts on sharing
// must not fall back because a loaded machine made a lease slow.
func SetSharedLeaseTimeout(t interface{ Cleanup(func()) }, d time.Duration) {
	was := sharedLeaseTimeout
	sharedLeaseTimeout = d
	t.Cleanup(func() { sharedLeaseTimeout = was })
}
