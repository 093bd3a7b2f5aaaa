package admin

import (
	"fmt"
	"testing"
	"time"
)

// The addresses remembered are bounded: a new one evicts the one whose
// last wrong token is the oldest.
func TestFailuresBounded(t *testing.T) {
	now := time.Unix(1e9, 0)
	f := newFailures(func() time.Time { return now })
	for i := range maxFailingAddrs + 1 {
		now = now.Add(time.Millisecond)
		f.fail(fmt.Sprint("10.0.", i/256, ".", i%256))
	}
	if len(f.byAddr) != maxFailingAddrs {
		t.Errorf("%d addresses remembered, want %d", len(f.byAddr), maxFailingAddrs)
	}
	if _, kept := f.byAddr["10.0.0.0"]; kept {
		t.Error("the oldest address was not the one evicted")
	}
	if _, kept := f.byAddr["10.0.0.1"]; !kept {
		t.Error("the second oldest address was evicted")
	}
	// A wrong token older than the window is forgotten.
	f.fail("10.0.0.1")
	now = now.Add(failureWindow + time.Second)
	f.fail("10.0.0.1")
	if w := f.wait("10.0.0.1"); w != failureDelay {
		t.Errorf("after the window, a wrong token costs %v, want %v", w, failureDelay)
	}
}
