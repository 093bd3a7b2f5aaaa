package fallback_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/fallback"
)

// FuzzConfig builds a chain of up to three steps with arbitrary names and
// missing functions: Validate must refuse exactly the invalid ones, and a
// Fallback over a valid one serves its first step.
func FuzzConfig(f *testing.F) {
	f.Add("", uint8(1), "a", true, "", false, "", false)
	f.Add("fb", uint8(3), "replica", true, "cache", true, "static", true)
	f.Add("x", uint8(2), "a", true, "a", true, "", false)
	f.Add("x", uint8(1), "", true, "", false, "", false)
	f.Add("x", uint8(2), "a", true, "b", false, "", false)
	f.Add("x", uint8(0), "", false, "", false, "", false)
	f.Fuzz(func(t *testing.T, name string, n uint8, n0 string, f0 bool, n1 string, f1 bool, n2 string, f2 bool) {
		names, hasFn := []string{n0, n1, n2}, []bool{f0, f1, f2}
		count := int(n % 4)
		var steps []fallback.Step[string]
		wantErr := ""
		seen := map[string]bool{}
		for i := range count {
			s := fallback.Step[string]{Name: names[i]}
			if hasFn[i] {
				s.Fn = func(context.Context, error) (string, error) { return names[i], nil }
			}
			steps = append(steps, s)
			if wantErr != "" {
				continue
			}
			switch {
			case names[i] == "":
				wantErr = "Name must not be empty"
			case !hasFn[i]:
				wantErr = "Fn must not be nil"
			case seen[names[i]]:
				wantErr = "is already step"
			}
			seen[names[i]] = true
		}
		if count == 0 {
			wantErr = "at least one Step"
		}
		err := fallback.Validate(steps...)
		if wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), "fallback: ") || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("Validate(%q) = %v, want an error with %q", names[:count], err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("Validate(%q): %v", names[:count], err)
		}
		fb := fallback.MustNew(fallback.Config{Name: name}, steps...)
		v, served, err := fb.Fallback(context.Background(), errors.New("down"))
		if err != nil || served != names[0] || v != names[0] {
			t.Fatalf("Fallback = %q, %q, %v; want the first step %q", v, served, err, names[0])
		}
	})
}
