package spillway_test

import (
	"errors"
	"testing"

	"github.com/spillway-dev/spillway"
)

// TestErrorRestatedCause: an Error whose Cause already holds an Error that
// reads the same (a preallocated context cause that the call handed back,
// as spillwayhttp's attempt limit does) prints the text once.
func TestErrorRestatedCause(t *testing.T) {
	sentinel := errors.New("timeout exceeded")
	proto := &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "timeout", Name: "api/attempt", Err: sentinel}
	cp := *proto
	cp.Cause = proto
	if got, want := cp.Error(), `spillway: timeout "api/attempt": timeout exceeded`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// Another policy's error, or another name, is a cause worth printing.
	other := &spillway.Error{Code: spillway.ReasonDeadlineExceeded, Policy: "timeout", Name: "api/total", Err: sentinel, Cause: proto}
	if got, want := other.Error(), `spillway: timeout "api/total": timeout exceeded: spillway: timeout "api/attempt": timeout exceeded`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
