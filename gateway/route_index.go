package gateway

import (
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// routeIndex finds the first declared route a request matches without
// scanning every route: the routes are split by host (a hash of the folded
// host, plus one group for the routes of any host), and within a group a
// radix tree over path and path_prefix yields the few routes whose path
// condition can hold. Those candidates are then checked with matches, in
// declaration order, so the answer is exactly the linear scan's. It is
// built once per table and never changed: readers need no lock.
type routeIndex struct {
	routes []*route
	hosts  map[string]*pathNode // folded match.host → its routes' tree
	any    *pathNode            // the routes without match.host
}

// pathNode is a node of a radix tree over paths: label is the bytes its
// edge from the parent adds, prefix and exact the positions (in
// declaration order) of the routes whose path_prefix, resp. path, ends
// here. A route with neither sits in the root's prefix list.
type pathNode struct {
	label    string
	prefix   []int32
	exact    []int32
	first    []byte // first[i] is the first byte of children[i].label, sorted
	children []*pathNode
}

func newRouteIndex(routes []*route) *routeIndex {
	x := &routeIndex{routes: routes, hosts: map[string]*pathNode{}, any: &pathNode{}}
	for i, rt := range routes {
		m := &rt.cfg.Match
		root := x.any
		if m.Host != "" {
			k := foldHost(m.Host)
			if root = x.hosts[k]; root == nil {
				root = &pathNode{}
				x.hosts[k] = root
			}
		}
		// path and path_prefix together (refused by validation) index by
		// path; matches checks the prefix too.
		if m.Path != "" {
			n := root.insert(m.Path)
			n.exact = append(n.exact, int32(i))
		} else {
			n := root.insert(m.PathPrefix)
			n.prefix = append(n.prefix, int32(i))
		}
	}
	return x
}

// match returns the first declared route whose conditions r satisfies,
// nil when none does.
func (x *routeIndex) match(r *http.Request) *route {
	best := len(x.routes)
	if len(x.hosts) > 0 {
		if root := x.hostRoot(hostOnly(r.Host)); root != nil {
			best = x.walk(root, r, best)
		}
	}
	best = x.walk(x.any, r, best)
	if best == len(x.routes) {
		return nil
	}
	return x.routes[best]
}

// hostRoot returns the tree of the routes for host, nil when none. The
// common host (ASCII) is folded on the stack, without allocating.
func (x *routeIndex) hostRoot(host string) *pathNode {
	var buf [256]byte
	if len(host) <= len(buf) {
		n, ascii := 0, true
		for i := 0; i < len(host); i++ {
			c := host[i]
			if c >= utf8.RuneSelf {
				ascii = false
				break
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[n] = c
			n++
		}
		if ascii {
			return x.hosts[string(buf[:n])]
		}
	}
	return x.hosts[foldHost(host)]
}

// walk follows r's path down the tree from root and returns the position
// of the first declared route among those it meets that r matches, or
// best when none precedes it. Every list is in declaration order, so a
// list is left at its first match or at best.
func (x *routeIndex) walk(root *pathNode, r *http.Request, best int) int {
	path := r.URL.Path
	n, rest := root, path
	for {
		best = x.first(n.prefix, r, best)
		if rest == "" {
			return x.first(n.exact, r, best)
		}
		if n = n.child(rest[0]); n == nil || !strings.HasPrefix(rest, n.label) {
			return best
		}
		rest = rest[len(n.label):]
	}
}

func (x *routeIndex) first(list []int32, r *http.Request, best int) int {
	for _, i := range list {
		if int(i) >= best {
			break
		}
		if matches(&x.routes[i].cfg.Match, r) {
			return int(i)
		}
	}
	return best
}

func (n *pathNode) child(c byte) *pathNode {
	if i, ok := slices.BinarySearch(n.first, c); ok {
		return n.children[i]
	}
	return nil
}

// insert returns the node where key ends, splitting edges and adding
// nodes as needed.
func (n *pathNode) insert(key string) *pathNode {
	for key != "" {
		i, ok := slices.BinarySearch(n.first, key[0])
		if !ok {
			c := &pathNode{label: key}
			n.first = slices.Insert(n.first, i, key[0])
			n.children = slices.Insert(n.children, i, c)
			return c
		}
		c := n.children[i]
		l := commonPrefixLen(key, c.label)
		if l < len(c.label) {
			// Split c's edge at l: mid takes the shared part.
			mid := &pathNode{label: c.label[:l], first: []byte{c.label[l]}, children: []*pathNode{c}}
			c.label = c.label[l:]
			n.children[i] = mid
			c = mid
		}
		n, key = c, key[l:]
	}
	return n
}

func commonPrefixLen(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// foldHost maps host to a key that another host has exactly when
// strings.EqualFold says they are equal: each rune (an invalid byte being
// utf8.RuneError, as EqualFold reads it) becomes one fixed member of its
// case-folding orbit — for ASCII letters the lower case one.
func foldHost(host string) string {
	var b strings.Builder
	b.Grow(len(host))
	for _, c := range host {
		least := c
		for f := unicode.SimpleFold(c); f != c; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		if 'A' <= least && least <= 'Z' {
			least += 'a' - 'A'
		}
		b.WriteRune(least)
	}
	return b.String()
}
