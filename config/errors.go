package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a configuration file, at the position where the
// offending key or value was written.
type Error struct {
	File      string
	Line, Col int
	// Path is the YAML path of the key, like $.upstreams.catalog.breaker.min_calls.
	Path string
	Msg  string
}

// Error formats the problem as FILE:LINE:COL: message.
func (e *Error) Error() string { return position(e.File, e.Line, e.Col) + e.Msg }

// Errors is every problem found in one file, in the order of the file.
// Load and Parse return it (as an error) when there is at least one.
type Errors []*Error

// Error formats one problem a line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Warning is a setting that loads but cannot work as intended, at the
// position where it was written (or inherited from).
type Warning struct {
	File      string
	Line, Col int
	Path      string
	Msg       string
}

// String formats the warning as FILE:LINE:COL: message.
func (w Warning) String() string { return position(w.File, w.Line, w.Col) + w.Msg }

func position(file string, line, col int) string {
	if file == "" {
		file = "<config>"
	}
	return fmt.Sprintf("%s:%d:%d: ", file, line, col)
}

// sortErrors orders problems by position, keeping the discovery order of
// problems at the same place, and reports a problem once: a value that an
// alias uses again is parsed, and refused, at each use.
func sortErrors(es Errors) Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return slices.CompactFunc(es, func(a, b *Error) bool { return *a == *b })
}

func sortWarnings(ws []Warning) {
	slices.SortStableFunc(ws, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}
