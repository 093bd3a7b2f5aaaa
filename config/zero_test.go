package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWhatZeroMeansIsDocumented holds docs/configuration.md's table "What
// 0 means" to the schema: the numbers of an upstream or a route that
// refuse 0 are the keys of its "refused" row, and those for which 0 means
// something of their own (tagged zero, and the percentages) are named in
// one of its other rows. Keys are written as the table writes them,
// relative to the upstream or to the route's section.
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
			case o.zero || o.kind == "percent":
				meaning = append(meaning, name)
			case slices.Contains(numbers, rt) && o.kind != "status" || o.kind == "window_size":
				refused = append(refused, name)
			}
		}
	}
	walk(reflect.TypeFor[upstreamYAML](), reflect.TypeFor[Upstream](), "")
	walk(reflect.TypeFor[fallbackYAML](), reflect.TypeFor[Fallback](), "")
	walk(reflect.TypeFor[asyncYAML](), reflect.TypeFor[Async](), "async.")
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
