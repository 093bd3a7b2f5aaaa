//go:build race

package hedge_test

// raceEnabled: the race detector makes sync.Pool drop what it is given at
// random, so the allocation counts are not checked under it.
const raceEnabled = true
