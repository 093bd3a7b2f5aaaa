package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Load reads the file at path and parses it with the process environment
// (see Parse). The error, when not nil, is an [Errors] unless the file
// could not be read at all.
func Load(path string) (*Config, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse parses data, the contents of file (used in messages and as the
// directory static.file and tls paths are relative to), expanding ${VAR}
// with env (os.LookupEnv in Load). It returns the resolved configuration
// and its warnings, or an [Errors] listing every problem found, sorted by
// position. It never panics, whatever data holds.
func Parse(file string, data []byte, env func(string) (string, bool)) (*Config, []Warning, error) {
	d := newDecoder(file, env)
	root := d.parse(data)
	var cfg *Config
	if d.errs == nil {
		cfg = d.config(d.decode(root))
		d.validate(cfg)
		cfg.set = d.set
	}
	d.redact()
	if d.errs != nil {
		return nil, nil, sortErrors(d.errs)
	}
	sortWarnings(d.warns)
	return cfg, d.warns, nil
}

// newDecoder returns a decoder of file, whose relative paths are relative to
// its directory ("." when file is ""); a nil env has no variable.
func newDecoder(file string, env func(string) (string, bool)) *decoder {
	d := &decoder{file: file, dir: filepath.Dir(file), env: env, set: map[string]token.Position{}, keyAt: map[string]token.Position{},
		null: map[string]bool{}, anchors: map[string]ast.Node{}, leaves: map[ast.Node]field{}}
	if file == "" {
		d.dir = "."
	}
	if env == nil {
		d.env = func(string) (string, bool) { return "", false }
	}
	return d
}

// decoder decodes the YAML AST into the schema (schema.go) and resolves
// it. It records the position of every key it decoded (set) so that
// cross-field validation can point at the value the user wrote, or at the
// defaults: entry it was inherited from.
type decoder struct {
	file string
	dir  string
	env  func(string) (string, bool)
	errs Errors
	// decodeErrs counts the errors of decoding (errs[:decodeErrs]): the
	// values they leave at a default or an inherited value (see replaced).
	decodeErrs int
	warns      []Warning
	set        map[string]token.Position
	// keyAt is where each key was written, by path (set holds where its
	// value was); null holds the paths of the sections written without a
	// value ("a:" and nothing after it).
	keyAt   map[string]token.Position
	null    map[string]bool
	anchors map[string]ast.Node
	// leaves is which field each leaf node is: the positions and paths
	// the messages of apply name.
	leaves map[ast.Node]field
	// expanded lists the environment values ${VAR} expanded to, which
	// redact keeps out of the messages.
	expanded []envValue
}

func (d *decoder) parse(data []byte) ast.Node {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		msg, pos := err.Error(), token.Position{Line: 1, Column: 1}
		var se *yaml.SyntaxError
		if errors.As(err, &se) {
			msg = se.Message
			if se.Token != nil && se.Token.Position != nil {
				pos = *se.Token.Position
			}
		}
		d.errAt(pos, "$", "%s", msg)
		return nil
	}
	var bodies []ast.Node
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			bodies = append(bodies, doc.Body)
		}
	}
	switch {
	case len(bodies) == 0:
		d.errAt(token.Position{Line: 1, Column: 1}, "$", "the configuration is empty: at least one route and its upstream are needed")
		return nil
	case len(bodies) > 1:
		d.errorf(bodies[1], "$", "a configuration file holds one YAML document, found %d", len(bodies))
		return nil
	}
	return bodies[0]
}

// decode shapes root to the schema (reporting what does not fit) and
// decodes it with goccy/go-yaml's strict struct decoding: an unknown key
// left would be an error, and each leaf gets the field it is.
func (d *decoder) decode(root ast.Node) *fileYAML { return decodeAs[fileYAML](d, root, "$") }

// decodeAs is decode for a part of the file: root holds the keys of the
// schema type T, written at path.
func decodeAs[T any](d *decoder, root ast.Node, path string) *T {
	root = d.shape(root, reflect.TypeFor[T](), field{path: path}, nil)
	var y T
	ctx := context.WithValue(context.Background(), decoderKey{}, d)
	err := yaml.NewDecoder(bytes.NewReader(nil), yaml.DisallowUnknownField()).DecodeFromNodeContext(ctx, root, &y)
	if err != nil && d.errs == nil {
		// What shape let through and goccy refuses (a tag it cannot
		// apply, ...), at goccy's position.
		pos, msg := token.Position{Line: 1, Column: 1}, err.Error()
		var ye yaml.Error
		if errors.As(err, &ye) {
			msg = ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				pos = *tk.Position
			}
		}
		d.errAt(pos, "$", "%s", msg)
	}
	return &y
}

func (d *decoder) errAt(pos token.Position, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: pos.Line, Col: pos.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) errorf(n ast.Node, path, format string, args ...any) {
	d.errAt(posOf(n), path, format, args...)
}

func (d *decoder) warnAt(pos token.Position, path, format string, args ...any) {
	d.warns = append(d.warns, Warning{File: d.file, Line: pos.Line, Col: pos.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func posOf(n ast.Node) token.Position {
	// A block mapping's own token is the ':' of its first pair: point at
	// its first key instead.
	switch m := n.(type) {
	case *ast.MappingNode:
		if !m.IsFlowStyle && len(m.Values) > 0 && m.Values[0] != nil && m.Values[0].Key != nil {
			return posOf(m.Values[0].Key)
		}
	case *ast.MappingValueNode:
		if m.Key != nil {
			return posOf(m.Key)
		}
	}
	if n != nil {
		if tk := n.GetToken(); tk != nil && tk.Position != nil {
			return *tk.Position
		}
	}
	return token.Position{Line: 1, Column: 1}
}

// key is the dotted form of a YAML path for messages: $.a.b → a.b.
func key(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, "$"), ".") }

// resolve unwraps anchors, aliases and tags. An alias is resolved from the
// anchors seen so far, which YAML requires to come first.
func (d *decoder) resolve(n ast.Node) ast.Node {
	for range 16 { // bounds alias chains
		switch v := n.(type) {
		case *ast.AnchorNode:
			if name, ok := scalarText(v.Name); ok {
				d.anchors[name] = v.Value
			}
			n = v.Value
		case *ast.AliasNode:
			name, ok := scalarText(v.Value)
			if !ok {
				return nil
			}
			n = d.anchors[name]
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
	return n
}

// field is one key: value of a mapping.
type field struct {
	key   string
	path  string
	keyN  ast.Node
	value ast.Node // resolved; nil for a null value
}

// node is the position to report a problem with the field's value.
func (f field) node() ast.Node {
	if f.value != nil {
		return f.value
	}
	return f.keyN
}

func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return n == nil || ok
}

func describe(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case nil, *ast.NullNode:
		return "nothing"
	}
	if s, ok := scalarText(n); ok {
		return fmt.Sprintf("%q", s)
	}
	return n.Type().String()
}

// gluedPair undoes a goccy/go-yaml v1.19.2 misreading: inside a flow
// mapping it reads [http://127.0.0.1:9001] as the pair
// {"http://127.0.0.1": 9001}, although a ':' not followed by a space is
// part of a plain scalar. A single pair whose value starts right after
// its ':' is joined back into the scalar that was written.
func gluedPair(n ast.Node) (string, bool) {
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) == 1 && !m.IsFlowStyle {
		n = m.Values[0]
	}
	mv, ok := n.(*ast.MappingValueNode)
	if !ok || mv.Start == nil || mv.Start.Position == nil || mv.Key == nil {
		return "", false
	}
	k, kok := scalarText(mv.Key)
	v, vok := scalarText(mv.Value)
	colon, at := mv.Start.Position, posOf(mv.Value)
	if !kok || !vok || at.Line != colon.Line || at.Column != colon.Column+1 {
		return "", false
	}
	return k + ":" + v, true
}

// scalarText is the text of a scalar node, unquoted.
func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value == nil {
			return "", true
		}
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		if tk := v.GetToken(); tk != nil {
			return tk.Value, true
		}
	}
	return "", false
}

// scalar is the text of the field's value with ${VAR} expanded; ok is
// false (and the problem reported) when it is not a scalar or does not
// expand.
func (d *decoder) scalar(f field) (string, bool) {
	if f.value == nil {
		d.errorf(f.keyN, f.path, "%s: a value is required", key(f.path))
		return "", false
	}
	s, ok := scalarText(f.value)
	if !ok {
		s, ok = gluedPair(f.value)
	}
	if !ok {
		d.errorf(f.value, f.path, "%s: expected a single value, got %s", key(f.path), describe(f.value))
		return "", false
	}
	out, err := expand(s, d.lookupEnv)
	if err != nil {
		d.errorf(f.value, f.path, "%s: %v", key(f.path), err)
		return "", false
	}
	return out, true
}

// expand replaces ${VAR} and ${VAR:-default} (the default also when VAR
// is empty, as in the shell); $${ is a literal ${.
func expand(s string, env func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i])
			b.WriteString("{")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		expr := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("invalid variable name %q in ${%s}", name, expr)
		}
		v, ok := env(name)
		switch {
		case hasDef && v == "":
			v = def
		case !ok:
			return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} for a default)", name, name)
		}
		b.WriteString(v)
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c != '_' && !('A' <= c && c <= 'Z') && !('a' <= c && c <= 'z') && !(i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// suggest returns the candidate nearest to s by edit distance, or "" when
// none is near enough to be what was meant.
func suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := distance(strings.ToLower(s), c); d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= max(2, len(s)/3) {
		return best
	}
	return ""
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
