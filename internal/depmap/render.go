package depmap

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Formats are the names Write accepts.
var Formats = []string{"mermaid", "dot", "json"}

// Write renders g to w in format (one of Formats).
func (g *Graph) Write(w io.Writer, format string) error {
	switch format {
	case "mermaid":
		return g.mermaid(w)
	case "dot":
		return g.dot(w)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(g)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

// shape is how a kind of node is drawn: Mermaid's brackets around the
// quoted label, Graphviz's shape.
type shape struct {
	open, close, dot string
}

var (
	shapes = map[string]shape{
		KindRoute:      {"[", "]", "box"},
		KindUpstream:   {"(", ")", "ellipse"},
		KindInstance:   {"([", "])", "box"},
		KindStaleCache: {"[(", ")]", "cylinder"},
		KindStatic:     {">", "]", "note"},
		KindDefault:    {">", "]", "note"},
	}
	asyncShape = shape{"[/", "/]", "parallelogram"}
)

func shapeOf(n Node) shape {
	if n.Async {
		return asyncShape
	}
	return shapes[n.Kind]
}

func (g *Graph) mermaid(w io.Writer) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for _, n := range g.Nodes {
		sh := shapeOf(n)
		fmt.Fprintf(&b, "  %s%s\"%s%s\"%s\n", n.ID, sh.open, mermaidEscape(n.Name), suffix(n), sh.close)
	}
	for _, e := range g.Edges {
		switch e.Kind {
		case EdgeFallback:
			fmt.Fprintf(&b, "  %s -.->|\"fallback %d\"| %s\n", e.From, e.Step, e.To)
		default:
			fmt.Fprintf(&b, "  %s --> %s\n", e.From, e.To)
		}
	}
	classes := g.classes()
	for _, c := range []string{"ok", "degraded", "down"} {
		if ids := classes[c]; len(ids) > 0 {
			fmt.Fprintf(&b, "  classDef %s fill:%s\n  class %s %s\n", c, fills[c], strings.Join(ids, ","), c)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// suffix is what the map adds to a node's name: the route's mode, the live
// state.
func suffix(n Node) string {
	var s string
	switch {
	case n.Async:
		s = " (async)"
	case n.Optional:
		s = " (optional)"
	}
	if n.State != "" {
		s += " [" + n.State + "]"
	}
	return s
}

// classes groups the IDs of the nodes with a state by health.
func (g *Graph) classes() map[string][]string {
	classes := make(map[string][]string)
	for _, n := range g.Nodes {
		if h := health(n.State); h != "" {
			classes[h] = append(classes[h], n.ID)
		}
	}
	return classes
}

// mermaidEscape writes every character of s but letters, digits, space and
// . _ - : / as a Mermaid entity code (#60; for <): inside a quoted label
// nothing can then end the label, open markup or start a comment.
func mermaidEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c == ' ' || c == '.' || c == '_' || c == '-' || c == ':' || c == '/' ||
			('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
			b.WriteRune(c)
		} else {
			fmt.Fprintf(&b, "#%d;", c)
		}
	}
	return b.String()
}

func (g *Graph) dot(w io.Writer) error {
	var b strings.Builder
	b.WriteString("digraph spillway {\n  rankdir=LR;\n  node [fontname=\"sans-serif\"];\n")
	for _, n := range g.Nodes {
		attrs := []string{"label=" + dotQuote(n.Name+suffix(n)), "shape=" + shapeOf(n).dot}
		var style []string
		if n.Kind == KindInstance {
			style = append(style, "rounded")
		}
		if h := health(n.State); h != "" {
			style = append(style, "filled")
			attrs = append(attrs, "fillcolor="+dotQuote(fills[h]))
		}
		if len(style) > 0 {
			attrs = append(attrs, "style="+dotQuote(strings.Join(style, ",")))
		}
		fmt.Fprintf(&b, "  %s [%s];\n", dotQuote(n.ID), strings.Join(attrs, ", "))
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %s -> %s", dotQuote(e.From), dotQuote(e.To))
		if e.Kind == EdgeFallback {
			fmt.Fprintf(&b, " [style=dashed, label=\"fallback %d\"]", e.Step)
		}
		b.WriteString(";\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotQuote returns s as a DOT double-quoted string: a backslash is doubled
// (so no label escape such as \N or \l reaches Graphviz), a double quote is
// escaped, a line break becomes \n, and other control characters are
// dropped; nothing in s can end the string.
func dotQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c < 0x20 || c == 0x7f:
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
