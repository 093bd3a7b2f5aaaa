package config

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestKeysAreWhatTheDecoderAccepts holds Keys to the decoder, so that the
// tests comparing it with the JSON Schema and docs/configuration.md compare
// what a file may really say: each key in Keys is read (a value of the
// wrong shape there is an error at that key, where a key in the table that
// no case reads would be silently ignored), and each mapping refuses a key
// that Keys does not list.
func TestKeysAreWhatTheDecoderAccepts(t *testing.T) {
	keys := Keys()
	if len(keys) < 100 || !slices.Contains(keys, "upstreams.*.breaker.window.type") ||
		!slices.Contains(keys, "routes[].fallback[].static.body") {
		t.Fatalf("Keys() = %v", keys)
	}
	if r := RefusedKeys(); !slices.Equal(r, []string{"defaults.instances", "routes[].fault"}) {
		t.Errorf("RefusedKeys() = %v", r)
	}
	parents, seen := []string{""}, map[string]bool{}
	for _, k := range append(keys, RefusedKeys()...) {
		if seen[k] {
			t.Errorf("%s is listed twice", k)
		}
		seen[k] = true
		errs := parseAt(k, "[{zz_probe: 1}]")
		if !slices.ContainsFunc(errs, func(e *Error) bool { return isAt(e, k) }) {
			t.Errorf("%s is in Keys, but a list of mappings there is no error at it: %v", k, errs)
		}
		if i := strings.LastIndex(k, "."); i > 0 && !slices.Contains(parents, k[:i]) {
			parents = append(parents, k[:i])
		}
	}
	for _, p := range parents {
		k := strings.TrimPrefix(p+".zz_unknown", ".")
		errs := parseAt(k, "1")
		if !slices.ContainsFunc(errs, func(e *Error) bool { return strings.Contains(e.Msg, `unknown key "zz_unknown"`) }) {
			t.Errorf("%s is not in Keys, but the decoder says: %v", k, errs)
		}
	}
}

// parseAt loads a file that sets path (as Keys writes it) to the YAML
// value v, and returns the decoder's errors.
func parseAt(path, v string) Errors {
	segs := strings.Split(path, ".")
	for i := len(segs) - 1; i >= 0; i-- {
		name, isList := strings.CutSuffix(segs[i], "[]")
		switch {
		case name == "*":
			v = "{x: " + v + "}"
		case isList:
			v = "{" + name + ": [" + v + "]}"
		default:
			v = "{" + name + ": " + v + "}"
		}
	}
	_, _, err := Parse("keys.yaml", []byte(v), func(string) (string, bool) { return "", false })
	var errs Errors
	errors.As(err, &errs)
	return errs
}

var index = regexp.MustCompile(`\[\d+\]`)

// isAt reports whether e is at the key path k (as Keys writes it) or inside
// its value; parseAt names every upstream x.
func isAt(e *Error, k string) bool {
	p := index.ReplaceAllString(e.Path, "[]")
	p = strings.Replace(p, "$.upstreams.x", "$.upstreams.*", 1)
	k = "$." + k
	return p == k || strings.HasPrefix(p, k+".") || strings.HasPrefix(p, k+"[")
}
