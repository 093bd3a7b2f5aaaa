package breaker

import (
	"fmt"
	"strings"
)

// State is a breaker's state. The zero value is Closed.
type State uint8

// The states; the first three are the breaker's own, the last three manual.
const (
	// Closed admits every call and records its outcome in the window.
	Closed State = iota
	// Open rejects every call with ErrOpen until its open duration has
	// passed; then the breaker is half-open.
	Open
	// HalfOpen admits at most Config.HalfOpenProbes concurrent probe calls
	// and rejects the others: one failed probe opens the breaker again,
	// HalfOpenProbes successful ones close it.
	HalfOpen
	// ForcedOpen rejects every call until a manual transition (ForceOpen).
	ForcedOpen
	// Disabled admits every call and records nothing (Disable).
	Disabled
	// MetricsOnly admits every call and records it as Closed does, but never
	// opens: it counts the calls it would have rejected instead, a dry run to
	// calibrate thresholds (MetricsOnly).
	MetricsOnly

	numStates = iota
)

// stateNames are the gateway's JSON contract: never rename one.
var stateNames = [numStates]string{"closed", "open", "half_open", "forced_open", "disabled", "metrics_only"}

// String returns the state's name as the gateway reports it: closed, open,
// half_open, forced_open, disabled or metrics_only.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText encodes s as its String, so that JSON shows the state's name.
func (s State) MarshalText() ([]byte, error) {
	if s >= numStates {
		return nil, fmt.Errorf("breaker: unknown state %d", uint8(s))
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText parses a name that String returns. An unknown name's error
// lists the valid ones and, for a near miss, the one probably meant.
func (s *State) UnmarshalText(text []byte) error {
	for i, name := range stateNames {
		if string(text) == name {
			*s = State(i)
			return nil
		}
	}
	hint := ""
	if near := nearest(string(text)); near != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", near)
	}
	return fmt.Errorf("breaker: unknown state %q%s: want one of %s", text, hint, strings.Join(stateNames[:], ", "))
}

// nearest returns the state name that s probably means: the same letters
// in another case or with other separators ("Half-Open"), or else the one
// that shares the longest prefix with s, of at least three letters ("closd").
func nearest(s string) string {
	key := func(v string) string {
		return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(v))
	}
	best, bestN := "", 2
	for _, name := range stateNames {
		if key(s) == key(name) {
			return name
		}
		n := 0
		for n < len(s) && n < len(name) && s[n] == name[n] {
			n++
		}
		if n > bestN {
			best, bestN = name, n
		}
	}
	return best
}
