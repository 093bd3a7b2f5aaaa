package gateway

import "time"

// SetClock makes now the clock g reads the runtime faults' expiry on, for
// the tests of package gateway_test; call it before adding faults.
func SetClock(g *Gateway, now func() time.Time) { g.now = now }
