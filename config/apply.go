package config

import (
	"context"
	"reflect"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// leaf is a value as the file wrote it: goccy's struct decoding puts it in
// its field of the schema, apply parses it into the field of the same name
// of the resolved configuration. f is nil where the file did not write it.
type leaf struct{ f *field }

type decoderKey struct{}

// UnmarshalYAML implements yaml.NodeUnmarshalerContext: n is a node shape
// recorded as a leaf (through an alias, the anchor's value). A node it did
// not record is still parsed, named by goccy's path, rather than dropped.
func (l *leaf) UnmarshalYAML(ctx context.Context, n ast.Node) error {
	d := ctx.Value(decoderKey{}).(*decoder)
	f, ok := d.leaves[n]
	if !ok {
		f = field{path: n.GetPath(), keyN: n, value: d.resolve(n)}
	}
	l.f = &f
	return nil
}

// leafOptions are a schema field's cfg and values tags (see schema.go).
type leafOptions struct {
	zero   bool
	kind   string
	values []string
}

func optionsOf(tag reflect.StructTag) leafOptions {
	o := leafOptions{values: strings.Fields(tag.Get("values"))}
	for opt := range strings.SplitSeq(tag.Get("cfg"), ",") {
		if opt == "zero" {
			o.zero = true
		} else {
			o.kind = opt
		}
	}
	return o
}

// least is the smallest number a count or a number may be: 1, or 0 when
// 0 has a meaning of its own.
func (o leafOptions) least() int {
	if o.zero {
		return 0
	}
	return 1
}

// apply parses the leaves of src, a schema struct, into the fields of the
// same name of dst, a resolved struct: what src does not write keeps its
// value in dst, the default or the value inherited. Fields tagged
// cfg:"apart" are resolved by the caller; a field dst does not have is
// refused or resolved by a parser of its own.
func (d *decoder) apply(dst, src reflect.Value) {
	for i := range src.NumField() {
		sf := src.Type().Field(i)
		to := dst.FieldByName(sf.Name)
		o := optionsOf(sf.Tag)
		if !to.IsValid() || o.kind == "apart" {
			continue
		}
		from := src.Field(i)
		switch {
		case sf.Type == leafType:
			if l := from.Interface().(leaf); l.f != nil {
				d.parseLeaf(*l.f, o, to, dst)
			}
		case sf.Type.Kind() == reflect.Slice && sf.Type.Elem() == leafType:
			if !from.IsNil() {
				d.parseList(from, o, to)
			}
		case sf.Type.Kind() == reflect.Map:
			if !from.IsNil() {
				d.parseMap(from, o, to)
			}
		case sf.Type.Kind() == reflect.Slice:
			if from.IsNil() {
				continue
			}
			out := reflect.MakeSlice(to.Type(), from.Len(), from.Len())
			for j := range from.Len() {
				d.apply(out.Index(j), from.Index(j))
			}
			to.Set(out)
		case sf.Type.Kind() == reflect.Pointer:
			if from.IsNil() {
				continue
			}
			if to.IsNil() {
				to.Set(newSection(to.Type().Elem()))
			}
			d.apply(to.Elem(), from.Elem())
		default:
			d.apply(to, from)
		}
	}
}

func newSection(t reflect.Type) reflect.Value {
	if def, ok := sectionDefaults[t]; ok {
		return reflect.ValueOf(def())
	}
	return reflect.New(t)
}

// parseList parses a list of leaves; an item that does not parse is left
// out (and reported), and an empty list is nil, as an absent one, so that
// both compare equal on reload.
func (d *decoder) parseList(from reflect.Value, o leafOptions, to reflect.Value) {
	out := reflect.MakeSlice(to.Type(), 0, from.Len())
	for j := range from.Len() {
		l := from.Index(j).Interface().(leaf)
		if l.f == nil {
			continue
		}
		v := reflect.New(to.Type().Elem()).Elem()
		before := len(d.errs)
		d.parseLeaf(*l.f, o, v, to)
		if len(d.errs) == before {
			out = reflect.Append(out, v)
		}
	}
	if out.Len() == 0 {
		out = reflect.Zero(to.Type())
	}
	to.Set(out)
}

func (d *decoder) parseMap(from reflect.Value, o leafOptions, to reflect.Value) {
	out := reflect.MakeMapWithSize(to.Type(), from.Len())
	for it := from.MapRange(); it.Next(); {
		l := it.Value().Interface().(leaf)
		if l.f == nil {
			continue
		}
		v := reflect.New(to.Type().Elem()).Elem()
		d.parseLeaf(*l.f, o, v, to)
		out.SetMapIndex(it.Key(), v)
	}
	to.Set(out)
}

// parse parses the leaf f into dst, a field of parent, by dst's type and
// the options of its schema field; on error dst keeps its value.
func (d *decoder) parseLeaf(f field, o leafOptions, dst, parent reflect.Value) {
	if p, ok := parsers[o.kind]; ok {
		p(d, f, dst, parent)
		return
	}
	switch p := dst.Addr().Interface().(type) {
	case *string:
		if len(o.values) > 0 {
			d.oneOf(f, p, o.values...)
		} else {
			d.str(f, p)
		}
	case *bool:
		d.boolean(f, p)
	case *int:
		d.integer(f, p, o.least())
	case *int64:
		d.size(f, p, !o.zero)
	case *time.Duration:
		d.duration(f, p, !o.zero)
	case *float64:
		switch o.kind {
		case "percent":
			d.percent(f, p)
		case "rate":
			d.rate(f, p)
		default:
			d.number(f, p, float64(o.least()))
		}
	}
}

// parsers are the values with a syntax or a check of their own, by the
// name a cfg tag gives them.
var parsers = map[string]func(d *decoder, f field, dst, parent reflect.Value){
	"status":       func(d *decoder, f field, dst, _ reflect.Value) { d.status(f, dst.Addr().Interface().(*int)) },
	"header_bytes": func(d *decoder, f field, dst, _ reflect.Value) { d.headerBytes(f, dst.Addr().Interface().(*int)) },
	"window_size": func(d *decoder, f field, _, parent reflect.Value) {
		d.windowSize(f, parent.Addr().Interface().(*Window))
	},
	"sync": func(d *decoder, f field, _, parent reflect.Value) { d.sync(f, parent.Addr().Interface().(*Queue)) },
	"hedge_delay": func(d *decoder, f field, _, parent reflect.Value) {
		d.hedgeDelay(f, parent.Addr().Interface().(*Hedge))
	},
	"key_scope": func(d *decoder, f field, dst, _ reflect.Value) { d.keyScope(f, dst.Addr().Interface().(*string)) },
	"retry_on":  func(d *decoder, f field, dst, _ reflect.Value) { d.retryOn(f, dst.Addr().Interface().(*string)) },
	"fault_percent": func(d *decoder, f field, dst, _ reflect.Value) {
		d.faultPercent(f, dst.Addr().Interface().(*float64))
	},
	"fault_delay": func(d *decoder, f field, dst, _ reflect.Value) {
		d.faultDelay(f, dst.Addr().Interface().(*time.Duration))
	},
	"fault_status": func(d *decoder, f field, dst, _ reflect.Value) { d.faultStatus(f, dst.Addr().Interface().(*int)) },
	"cookie":       func(d *decoder, f field, dst, _ reflect.Value) { d.cookieName(f, dst.Addr().Interface().(*string)) },
	"limit_rate":   func(d *decoder, f field, dst, _ reflect.Value) { d.limitRate(f, dst.Addr().Interface().(*Rate)) },
	"limit_key":    func(d *decoder, f field, dst, _ reflect.Value) { d.limitKey(f, dst.Addr().Interface().(*string)) },
	"shed_share":   func(d *decoder, f field, dst, _ reflect.Value) { d.shedShare(f, dst.Addr().Interface().(*float64)) },
	"protocol": func(d *decoder, f field, dst, _ reflect.Value) {
		d.protocol(f, dst.Addr().Interface().(*string))
	},
	"host": func(d *decoder, f field, dst, _ reflect.Value) {
		d.str(f, dst.Addr().Interface().(*string))
		dst.SetString(strings.ToLower(dst.String()))
	},
	"method": func(d *decoder, f field, dst, _ reflect.Value) {
		d.str(f, dst.Addr().Interface().(*string))
		dst.SetString(strings.ToUpper(dst.String()))
	},
}
