package config

import (
	"reflect"
	"strings"
	"sync"
)

// Keys returns the path of every key the decoder accepts, sections
// included, in the order of the schema (schema.go): a.b for a key of a's
// mapping, a.*.b under a mapping whose keys the file names
// (upstreams.*.balance), a[].b in each item of a list
// (routes[].fallback[].static.body). A mapping or list of plain values
// (match.headers, instances) is one key.
func Keys() []string { return keyPaths(false) }

// RefusedKeys returns the paths, written as Keys writes them, of the keys
// the decoder knows but refuses with an error of their own (a feature not
// built yet, a key not allowed in that place) rather than "unknown key".
func RefusedKeys() []string { return keyPaths(true) }

func keyPaths(refused bool) []string {
	var out []string
	walkKeys(reflect.TypeFor[fileYAML](), "", nil, func(path string, r bool) {
		if r == refused {
			out = append(out, path)
		}
	})
	return out
}

// walkKeys visits the keys of the schema struct t, and those of the
// mappings below them, with the prefix of their paths; the keys named in
// refuse are visited as refused.
func walkKeys(t reflect.Type, prefix string, refuse map[string]string, visit func(path string, refused bool)) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name := yamlName(sf)
		p := prefix + name
		if _, r := refuse[name]; r {
			visit(p, true)
			continue
		}
		visit(p, false)
		ft, suffix := sf.Type, ""
		switch ft.Kind() {
		case reflect.Slice:
			ft, suffix = ft.Elem(), "[]"
		case reflect.Map:
			ft, suffix = ft.Elem(), ".*"
		}
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft != leafType {
			walkKeys(ft, p+suffix+".", refusals(sf.Tag), visit)
		}
	}
}

// yamlName is the key of a schema field.
func yamlName(sf reflect.StructField) string {
	name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	return name
}

// keyNames lists the keys of the schema struct t, in order.
func keyNames(t reflect.Type) []string {
	out := make([]string, t.NumField())
	for i := range out {
		out[i] = yamlName(t.Field(i))
	}
	return out
}

// fieldsByKey caches schemaFields: the schema is fixed, and every mapping
// of every file is checked against it.
var fieldsByKey sync.Map // reflect.Type → map[string]reflect.StructField

// schemaFields returns the fields of the schema struct t by key.
func schemaFields(t reflect.Type) map[string]reflect.StructField {
	if m, ok := fieldsByKey.Load(t); ok {
		return m.(map[string]reflect.StructField)
	}
	out := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		out[yamlName(t.Field(i))] = t.Field(i)
	}
	fieldsByKey.Store(t, out)
	return out
}

// refusals reads a refuse:"KEY: MSG" tag: the key of the mapping below
// that is refused there, with its message.
func refusals(tag reflect.StructTag) map[string]string {
	k, msg, ok := strings.Cut(tag.Get("refuse"), ": ")
	if !ok {
		return nil
	}
	return map[string]string{k: msg}
}
