package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/config"
)

// The decoder's key tables (config.Keys) are the one spelling of the
// configuration's keys; the JSON Schema editors use and the key tables of
// docs/configuration.md must name the same keys, in both directions.

const configDoc = "../docs/configuration.md"

func TestSchemaNamesEveryConfigKey(t *testing.T) {
	schema := schemaKeys(t)
	accepted := config.Keys()
	for _, k := range accepted {
		if !slices.Contains(schema, k) {
			t.Errorf("the decoder accepts %s; %s does not have it", k, schemaFile)
		}
	}
	refused := config.RefusedKeys()
	for _, k := range schema {
		switch {
		case slices.Contains(refused, k):
			t.Errorf("%s has %s, which the decoder refuses", schemaFile, k)
		case !slices.Contains(accepted, k):
			t.Errorf("%s has %s; the decoder does not accept it", schemaFile, k)
		}
	}
}

// schemaKeys returns the key paths of the schema's properties, written as
// config.Keys writes them: a.*.b under additionalProperties, a[].b under
// items; $ref and anyOf/oneOf/allOf are followed.
func schemaKeys(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatalf("%s: %v", schemaFile, err)
	}
	defs, _ := root["$defs"].(map[string]any)
	var out []string
	var walk func(n any, path string, depth int)
	walk = func(n any, path string, depth int) {
		m, _ := n.(map[string]any)
		if m == nil {
			return
		}
		if depth > 64 {
			t.Fatalf("%s: $ref loop at %s", schemaFile, path)
		}
		if ref, ok := m["$ref"].(string); ok {
			name, local := strings.CutPrefix(ref, "#/$defs/")
			if !local || defs[name] == nil {
				t.Fatalf("%s: %s: $ref %s is not one of $defs", schemaFile, path, ref)
			}
			walk(defs[name], path, depth+1)
		}
		for _, kw := range []string{"anyOf", "oneOf", "allOf"} {
			branches, _ := m[kw].([]any)
			for _, b := range branches {
				walk(b, path, depth+1)
			}
		}
		walk(m["items"], path+"[]", depth+1)
		walk(m["additionalProperties"], path+".*", depth+1)
		props, _ := m["properties"].(map[string]any)
		for name, p := range props {
			k := name
			if path != "" {
				k = path + "." + name
			}
			out = append(out, k)
			walk(p, k, depth+1)
		}
	}
	walk(root, "", 0)
	slices.Sort(out)
	return slices.Compact(out)
}

// docTablePrefixes says, for each heading of docs/configuration.md above a
// key table, what its keys are relative to, as config.Keys writes paths.
// A table that several places share (an upstream's keys, which defaults:
// takes too) has several prefixes: each row must name a key under one of
// them, and every key under each must have a row.
var docTablePrefixes = map[string][]string{
	"Top level":        {""},
	"Queue (`queue:`)": {""},
	"Upstreams (`upstreams.NAME` and `defaults`)": {"upstreams.*.", "defaults."},
	"Routes (`routes[i]`)":                        {"routes[]."},
	"Static responses (`static:` and `default:`)": {"routes[].default.", "routes[].fallback[].static."},
}

// TestConfigDocsNameEveryKey holds the key tables of docs/configuration.md
// (the tables whose first column is "Key") to the decoder: every key that
// holds a value has a row, and every row names a key the decoder knows. A
// row for a whole section (health, async) is allowed, not required.
func TestConfigDocsNameEveryKey(t *testing.T) {
	accepted, refused := config.Keys(), config.RefusedKeys()
	known := append(slices.Clone(accepted), refused...)
	documented := map[string]bool{}
	for _, row := range docKeyRows(t) {
		found := false
		for _, p := range row.prefixes {
			if slices.Contains(known, p+row.key) {
				documented[p+row.key], found = true, true
			}
		}
		if !found {
			t.Errorf("%s:%d: `%s` (under %q) is not a key the decoder knows", configDoc, row.line, row.key, row.heading)
		}
	}
	for _, k := range accepted {
		if !documented[k] && !isSection(k, accepted) {
			t.Errorf("the decoder accepts %s; no key table of %s has a row for it", k, configDoc)
		}
	}
}

// isSection reports whether k holds other keys rather than a value.
func isSection(k string, keys []string) bool {
	return slices.ContainsFunc(keys, func(o string) bool {
		return strings.HasPrefix(o, k+".") || strings.HasPrefix(o, k+"[].")
	})
}

type docKeyRow struct {
	key, heading string
	prefixes     []string
	line         int
}

var (
	backticked = regexp.MustCompile("`([^`]*)`")
	keyPath    = regexp.MustCompile(`^\.?[a-z_][a-z0-9_]*(\[\])?(\.[a-z_][a-z0-9_]*(\[\])?)*$`)
)

// docKeyRows reads the first column of every key table: backticked key
// paths, comma-separated; `.cert` after `queue.tls.ca` is queue.tls.cert.
func docKeyRows(t *testing.T) []docKeyRow {
	t.Helper()
	f, err := os.Open(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []docKeyRow
	heading, inFence, inTable, inKeyTable := "", false, false, false
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.HasPrefix(text, "```") {
			inFence = !inFence
		}
		if inFence {
			continue // a YAML comment is not a heading
		}
		if h, ok := strings.CutPrefix(text, "#"); ok {
			heading = strings.TrimSpace(strings.TrimLeft(h, "#"))
		}
		if !strings.HasPrefix(text, "|") {
			inTable, inKeyTable = false, false
			continue
		}
		first := strings.TrimSpace(strings.Split(text, "|")[1])
		switch {
		case !inTable:
			inTable, inKeyTable = true, first == "Key"
			if inKeyTable && docTablePrefixes[heading] == nil {
				t.Fatalf("%s:%d: a key table under %q, which docTablePrefixes does not place", configDoc, line, heading)
			}
			continue
		case !inKeyTable || strings.HasPrefix(first, "---"):
			continue
		}
		prev := ""
		for _, m := range backticked.FindAllStringSubmatch(first, -1) {
			k := m[1]
			if !keyPath.MatchString(k) {
				t.Errorf("%s:%d: %q in the key column is not a key path", configDoc, line, k)
				continue
			}
			if strings.HasPrefix(k, ".") {
				k = prev[:strings.LastIndex(prev, ".")] + k
			}
			prev = k
			rows = append(rows, docKeyRow{key: k, heading: heading, prefixes: docTablePrefixes[heading], line: line})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}
