package config

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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
	if r := RefusedKeys(); !slices.Equal(r, []string{"defaults.instances"}) {
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

// TestSchemaFillsTheResolvedTypes holds each schema struct (schema.go) to
// the resolved type it fills (types.go): apply parses a leaf into the
// field of the same name, and would silently drop a key whose field has no
// twin or a type it cannot parse into. It also holds Keys to the schema:
// every yaml tag, nested ones included, is one path of Keys or RefusedKeys.
func TestSchemaFillsTheResolvedTypes(t *testing.T) {
	parsable := []reflect.Type{reflect.TypeFor[string](), reflect.TypeFor[bool](), reflect.TypeFor[int](),
		reflect.TypeFor[int64](), reflect.TypeFor[time.Duration](), reflect.TypeFor[float64]()}
	all := append(Keys(), RefusedKeys()...)
	tags := 0
	var pair func(schema, resolved reflect.Type, prefix string)
	pair = func(schema, resolved reflect.Type, prefix string) {
		for i := range schema.NumField() {
			sf := schema.Field(i)
			name := prefix + yamlName(sf)
			tags++
			if !slices.Contains(all, name) {
				t.Errorf("%s.%s (key %s) is not in Keys or RefusedKeys", schema.Name(), sf.Name, name)
			}
			o := optionsOf(sf.Tag)
			if o.kind == "apart" {
				continue
			}
			rf, ok := resolved.FieldByName(sf.Name)
			if !ok {
				t.Errorf("%s.%s (key %s) has no field %s.%s to fill", schema.Name(), sf.Name, name, resolved.Name(), sf.Name)
				continue
			}
			st, rt, suffix := sf.Type, rf.Type, ""
			if st.Kind() == reflect.Slice || st.Kind() == reflect.Map {
				suffix = map[reflect.Kind]string{reflect.Slice: "[]", reflect.Map: ".*"}[st.Kind()]
				st, rt = st.Elem(), rt.Elem()
			}
			if st.Kind() == reflect.Pointer {
				st, rt = st.Elem(), rt.Elem()
			}
			_, ownParser := parsers[o.kind]
			switch {
			case st == leafType && !ownParser && !slices.Contains(parsable, rt):
				t.Errorf("%s.%s (key %s): apply cannot parse into %s", schema.Name(), sf.Name, name, rt)
			case st != leafType:
				pair(st, rt, name+suffix+".")
			}
		}
	}
	pair(reflect.TypeFor[fileYAML](), reflect.TypeFor[Config](), "")
	pair(reflect.TypeFor[upstreamYAML](), reflect.TypeFor[Upstream](), "upstreams.*.")
	pair(reflect.TypeFor[routeYAML](), reflect.TypeFor[Route](), "routes[].")
	if tags < 100 {
		t.Errorf("%d yaml tags paired", tags)
	}
}

// TestPathLiteralsNameKeys holds the key paths the package's code writes
// (validation places its messages at "$.queue.max_disk", at an upstream's
// ".timeouts.attempt", ...) to Keys: a path that names no key would place
// its message at the nearest key written instead, silently. An absolute
// literal ("$.a.b", or the prefix "$.a.") must begin a key's path; a
// relative one (".a.b") must be a run of a key's path.
func TestPathLiteralsNameKeys(t *testing.T) {
	files, _ := filepath.Glob("*.go") // the pattern is well-formed
	pathLit := regexp.MustCompile(`^\$?(\.[a-z_]+)+\.?$`)
	keys := Keys()
	found := 0
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, _ := strconv.Unquote(lit.Value)
			if !pathLit.MatchString(s) {
				return true
			}
			found++
			rel, absolute := strings.CutPrefix(s, "$")
			if !strings.HasSuffix(rel, ".") {
				rel += "."
			}
			if !slices.ContainsFunc(keys, func(k string) bool {
				k = "." + strings.NewReplacer("[]", "", ".*", "").Replace(k) + "."
				return absolute && strings.HasPrefix(k, rel) || !absolute && strings.Contains(k, rel)
			}) {
				t.Errorf("%s: %q names no key of Keys", fset.Position(lit.Pos()), s)
			}
			return true
		})
	}
	if found < 30 {
		t.Errorf("found %d path literals", found)
	}
}

// TestWhatZeroMeansIsDocumented holds docs/configuration.md's table "What
// 0 means" to the schema: the numbers of an upstream, a route or
// telemetry: that refuse 0 are the keys of its "refused" row, and those for
// which 0 means something of their own (tagged zero, and the percentages)
// are named in one of its other rows. Keys are written as the table writes
// them, relative to the upstream or to the route's section (telemetry's
// from the top).
func TestWhatZeroMeansIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(doc), "### What `0` means")
	table, _, _ = strings.Cut(table, "\n#")
	var docRefused, docMeaning []string
	for line := range strings.SplitSeq(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.Contains(cells[2], "`") {
			continue
		}
		keys := regexp.MustCompile("`([a-z_.]+)`").FindAllStringSubmatch(cells[2], -1)
		for _, k := range keys {
			if strings.HasPrefix(cells[1], " refused") {
				docRefused = append(docRefused, k[1])
			} else {
				docMeaning = append(docMeaning, k[1])
			}
		}
	}
	var refused, meaning []string
	numbers := []reflect.Type{reflect.TypeFor[int](), reflect.TypeFor[int64](), reflect.TypeFor[float64](), reflect.TypeFor[time.Duration]()}
	var walk func(schema, resolved reflect.Type, prefix string)
	walk = func(schema, resolved reflect.Type, prefix string) {
		for i := range schema.NumField() {
			sf := schema.Field(i)
			rf, ok := resolved.FieldByName(sf.Name)
			if !ok {
				continue
			}
			st, rt := sf.Type, rf.Type
			for st.Kind() == reflect.Pointer || st.Kind() == reflect.Slice || st.Kind() == reflect.Map {
				st, rt = st.Elem(), rt.Elem()
			}
			name := prefix + yamlName(sf)
			o := optionsOf(sf.Tag)
			switch {
			case st != leafType:
				walk(st, rt, name+".")
			case o.zero || o.kind == "percent" || o.kind == "fault_percent":
				meaning = append(meaning, name)
			case slices.Contains(numbers, rt) && o.kind != "status" || o.kind == "window_size":
				refused = append(refused, name)
			}
		}
	}
	walk(reflect.TypeFor[upstreamYAML](), reflect.TypeFor[Upstream](), "")
	walk(reflect.TypeFor[fallbackYAML](), reflect.TypeFor[Fallback](), "")
	walk(reflect.TypeFor[asyncYAML](), reflect.TypeFor[Async](), "async.")
	walk(reflect.TypeFor[faultYAML](), reflect.TypeFor[Fault](), "fault.")
	walk(reflect.TypeFor[telemetryYAML](), reflect.TypeFor[Telemetry](), "telemetry.")
	for _, k := range meaning {
		if !slices.Contains(docMeaning, k) {
			t.Errorf("0 has a meaning for %s, which the table does not say", k)
		}
	}
	for _, k := range refused {
		if !slices.Contains(docRefused, k) {
			t.Errorf("%s refuses 0, which the table does not say", k)
		}
	}
	for _, k := range docRefused {
		if !slices.Contains(refused, k) {
			t.Errorf("the table says %s refuses 0; the schema does not", k)
		}
	}
}
