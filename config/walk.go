package config

import (
	"reflect"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

var leafType = reflect.TypeFor[leaf]()

// shape holds the node n, written at f, to the schema type t before goccy
// decodes it, so that every problem of the file is reported at once:
// goccy stops at its first error. Each unknown, refused or merge key, each
// value of the wrong shape is reported where it was written and taken out
// of the tree (a section of the wrong shape is replaced by an empty one),
// so that what is left decodes without an error and the defaults stand in
// for what was taken out. shape records where every key and list item was
// written (set, keyAt) and which field each leaf is (leaves). refuse
// lists the keys refused in the mapping n, if any (key → message). shape
// returns the node to keep in n's place, or nil to remove it.
func (d *decoder) shape(n ast.Node, t reflect.Type, f field, refuse map[string]string) ast.Node {
	f.value = d.resolve(n)
	if f.key != "" && isNull(f.value) {
		f.value = nil
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == leafType:
		return d.shapeLeaf(n, f)
	case t.Kind() == reflect.Struct:
		return d.shapeSection(n, t, f, refuse)
	case isNull(f.value):
		return n
	case t.Kind() == reflect.Slice:
		return d.shapeList(n, t.Elem(), f)
	default: // a map whose keys the file names
		return d.shapeMap(n, t.Elem(), f)
	}
}

// shapeLeaf accepts a single value; apply parses it.
func (d *decoder) shapeLeaf(n ast.Node, f field) ast.Node {
	if f.value == nil && f.key != "" {
		d.errorf(f.keyN, f.path, "%s: a value is required", key(f.path))
		return nil
	}
	if _, ok := scalarText(f.value); !ok {
		if _, ok := gluedPair(f.value); !ok {
			d.errorf(f.node(), f.path, "%s: expected a single value, got %s", key(f.path), describe(f.value))
			return nil
		}
	}
	for _, m := range []ast.Node{n, f.value} {
		if _, ok := d.leaves[m]; !ok {
			d.leaves[m] = f
		}
	}
	return n
}

// shapeSection holds a mapping to the struct t: its keys are t's yaml
// tags, but for those refused here (refuse, key → message).
func (d *decoder) shapeSection(n ast.Node, t reflect.Type, f field, refuse map[string]string) ast.Node {
	var m *ast.MappingNode
	switch v := f.value.(type) {
	case nil, *ast.NullNode:
		d.null[f.path] = true
		return ast.Mapping(posToken(f.node()), true)
	case *ast.MappingNode:
		m = v
	case *ast.MappingValueNode:
		m = ast.Mapping(v.GetToken(), true, v)
	default:
		where := key(f.path)
		if where == "" {
			where = "the configuration"
		}
		d.errorf(f.value, f.path, "%s: expected a mapping, got %s", where, describe(f.value))
		return ast.Mapping(posToken(f.value), true)
	}
	fields := schemaFields(t)
	kept := m.Values[:0]
	for _, p := range m.Values {
		k, kn, ok := d.mapKey(p, f.path)
		if !ok {
			continue
		}
		sf, known := fields[k]
		switch msg, refused := refuse[k]; {
		case !known:
			d.unknownKey(k, kn, f.path, t)
			continue
		case refused:
			d.errorf(kn, f.path+"."+k, "%s.%s: %s", key(f.path), k, msg)
			continue
		}
		if v := d.shapeEntry(p, k, kn, sf.Type, f.path, refusals(sf.Tag)); v != nil {
			p.Value = v
			kept = append(kept, p)
		}
	}
	m.Values = kept
	return replacement(n, m, f.value)
}

// replacement is what stands in the place of n, which resolved to value,
// once shaped into the mapping m: n itself, so that an anchor stays where
// goccy looks for it, unless m is new (it wraps a single pair) or n is a
// tag, which goccy would not look through.
func replacement(n ast.Node, m *ast.MappingNode, value ast.Node) ast.Node {
	if _, tagged := n.(*ast.TagNode); tagged || ast.Node(m) != value {
		return m
	}
	return n
}

// posToken is a token at n's position, for a mapping made in its place.
func posToken(n ast.Node) *token.Token {
	p := posOf(n)
	return &token.Token{Type: token.MappingStartType, Value: "{", Position: &p}
}

// shapeEntry records where the key k of the mapping at path and its value
// were written, and shapes the value.
func (d *decoder) shapeEntry(p *ast.MappingValueNode, k string, kn ast.Node, t reflect.Type, path string, refuse map[string]string) ast.Node {
	sub := path + "." + k
	f := field{key: k, path: sub, keyN: kn, value: d.resolve(p.Value)}
	if isNull(f.value) {
		f.value = nil
	}
	d.set[sub] = posOf(f.node())
	d.keyAt[sub] = posOf(kn)
	return d.shape(p.Value, t, f, refuse)
}

// mapKey returns the key of the pair p of the mapping at path, or reports
// why it cannot be one.
func (d *decoder) mapKey(p *ast.MappingValueNode, path string) (string, ast.Node, bool) {
	if p == nil {
		return "", nil, false
	}
	kn := d.resolve(p.Key)
	if mk, ok := kn.(*ast.MappingKeyNode); ok {
		kn = d.resolve(mk.Value)
	}
	if _, ok := kn.(*ast.MergeKeyNode); ok {
		d.errorf(kn, path, "merge keys (<<) are not supported: use defaults: for what upstreams share")
		return "", nil, false
	}
	k, ok := scalarText(kn)
	if !ok {
		d.errorf(p.Key, path, "%s: a key must be a plain string", key(path))
	}
	return k, kn, ok
}

func (d *decoder) unknownKey(k string, kn ast.Node, path string, t reflect.Type) {
	where := key(path)
	if where == "" {
		where = "the top level"
	}
	allowed := keyNames(t)
	if s := suggest(k, allowed); s != "" {
		d.errorf(kn, path+"."+k, "unknown key %q in %s; did you mean %q?", k, where, s)
	} else {
		d.errorf(kn, path+"."+k, "unknown key %q in %s (allowed: %s)", k, where, strings.Join(allowed, ", "))
	}
}

// shapeList holds a list to items of type t.
func (d *decoder) shapeList(n ast.Node, t reflect.Type, f field) ast.Node {
	s, ok := f.value.(*ast.SequenceNode)
	if !ok {
		d.errorf(f.node(), f.path, "%s: expected a list, got %s", key(f.path), describe(f.value))
		return nil
	}
	kept := s.Values[:0]
	for i, item := range s.Values {
		p := f.path + "[" + strconv.Itoa(i) + "]"
		d.set[p] = posOf(d.resolve(item))
		if v := d.shape(item, t, field{path: p, keyN: f.keyN}, nil); v != nil {
			kept = append(kept, v)
		}
	}
	s.Values = kept
	return n
}

// shapeMap holds a mapping whose keys the file names to values of type t.
func (d *decoder) shapeMap(n ast.Node, t reflect.Type, f field) ast.Node {
	m, ok := f.value.(*ast.MappingNode)
	if !ok {
		mv, single := f.value.(*ast.MappingValueNode)
		if !single {
			d.errorf(f.value, f.path, "%s: expected a mapping, got %s", key(f.path), describe(f.value))
			return nil
		}
		m = ast.Mapping(mv.GetToken(), true, mv)
	}
	kept := m.Values[:0]
	for _, p := range m.Values {
		k, kn, ok := d.mapKey(p, f.path)
		if !ok {
			continue
		}
		if v := d.shapeEntry(p, k, kn, t, f.path, nil); v != nil {
			p.Value = v
			kept = append(kept, p)
		}
	}
	m.Values = kept
	return replacement(n, m, f.value)
}
