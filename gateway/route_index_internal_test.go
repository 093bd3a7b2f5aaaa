package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/spillway-dev/spillway/config"
)

// linearMatch is the oracle: the linear scan the index replaced, the
// first declared route whose conditions r satisfies.
func linearMatch(routes []*route, r *http.Request) *route {
	for _, rt := range routes {
		if matches(&rt.cfg.Match, r) {
			return rt
		}
	}
	return nil
}

// Small alphabets, so that random routes overlap and random requests hit
// them: hosts differing only in case (and by the Kelvin sign, which
// strings.EqualFold folds to k), paths sharing prefixes at and off segment
// boundaries, with and without a trailing slash.
var (
	genHosts    = []string{"", "a.example", "A.Example", "b.example", "k", "K", "\u212a", "[::1]", "::1", "a.example.", "x\xff"}
	genReqHosts = []string{"", "a.example", "a.EXAMPLE:8080", "b.example", "k", "\u212a:80", "K", "[::1]:80", "::1", "x\xfe", "x\ufffd", "c"}
	genSegs     = []string{"a", "ab", "b", "", "api", "v1"}
	genMethods  = []string{"GET", "POST", "PUT"}
	genHeaders  = []string{"X-A", "x-b"}
)

func genPath(t *rapid.T, label string) string {
	n := rapid.IntRange(0, 3).Draw(t, label+"segs")
	var b strings.Builder
	for range n {
		b.WriteString("/" + rapid.SampledFrom(genSegs).Draw(t, label+"seg"))
	}
	if n == 0 || rapid.Bool().Draw(t, label+"slash") {
		b.WriteString("/")
	}
	return b.String()
}

func genMatch(t *rapid.T) config.Match {
	var m config.Match
	m.Host = rapid.SampledFrom(genHosts).Draw(t, "host")
	switch rapid.IntRange(0, 3).Draw(t, "pathKind") {
	case 1:
		m.Path = genPath(t, "path")
	case 2, 3:
		m.PathPrefix = genPath(t, "prefix")
	}
	for _, meth := range genMethods {
		if rapid.IntRange(0, 3).Draw(t, "method") == 0 {
			m.Methods = append(m.Methods, meth)
		}
	}
	if rapid.IntRange(0, 3).Draw(t, "hasHeader") == 0 {
		m.Headers = map[string]string{rapid.SampledFrom(genHeaders).Draw(t, "header"): rapid.SampledFrom([]string{"1", "2"}).Draw(t, "value")}
	}
	return m
}

func genRequest(t *rapid.T) *http.Request {
	r := httptest.NewRequest(rapid.SampledFrom(genMethods).Draw(t, "reqMethod"), "/", nil)
	r.Host = rapid.SampledFrom(genReqHosts).Draw(t, "reqHost")
	r.URL.Path = genPath(t, "reqPath")
	if rapid.IntRange(0, 4).Draw(t, "emptyPath") == 0 {
		r.URL.Path = ""
	}
	for _, h := range genHeaders {
		if rapid.Bool().Draw(t, "reqHeader") {
			r.Header.Set(h, rapid.SampledFrom([]string{"1", "2"}).Draw(t, "reqValue"))
		}
	}
	return r
}

// TestRouteIndexAgreesWithLinearScan: for random route tables and random
// requests, the index answers the route the linear scan would, declaration
// order deciding where routes overlap.
func TestRouteIndexAgreesWithLinearScan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 30).Draw(t, "routes")
		routes := make([]*route, n)
		for i := range routes {
			m := genMatch(t)
			routes[i] = &route{cfg: &config.Route{Name: fmt.Sprint("r", i), Match: m}}
		}
		x := newRouteIndex(routes)
		for range 20 {
			r := genRequest(t)
			if got, want := x.match(r), linearMatch(routes, r); got != want {
				t.Fatalf("%s %q%s: index answered %s, the linear scan %s", r.Method, r.Host, r.URL.Path, name(got), name(want))
			}
		}
	})
}

func name(r *route) string {
	if r == nil {
		return "no route"
	}
	return fmt.Sprintf("%s %+v", r.cfg.Name, r.cfg.Match)
}

// TestFoldHostIsEqualFold: two hosts have the same key exactly when
// strings.EqualFold says they are equal, for ASCII, Unicode and invalid
// UTF-8 alike.
func TestFoldHostIsEqualFold(t *testing.T) {
	host := rapid.StringOfN(rapid.SampledFrom([]rune{'a', 'A', 'k', 'K', '\u212a', 's', 'S', '\u017f', '.', '\ufffd', 'é', 'É'}), 0, 4, -1)
	rapid.Check(t, func(t *rapid.T) {
		a, b := host.Draw(t, "a"), host.Draw(t, "b")
		if rapid.Bool().Draw(t, "invalid") {
			a += "\xff"
			b += rapid.SampledFrom([]string{"\xfe", "\ufffd", ""}).Draw(t, "tail")
		}
		if got, want := foldHost(a) == foldHost(b), strings.EqualFold(a, b); got != want {
			t.Fatalf("%q, %q: same key %v, EqualFold %v", a, b, got, want)
		}
	})
}

// TestRouteIndexDeclarationOrder: where routes overlap, the first declared
// wins even when a later one is more specific, and a route refused by its
// methods or headers passes the request on to the next one.
func TestRouteIndexDeclarationOrder(t *testing.T) {
	mk := func(name string, m config.Match) *route { return &route{cfg: &config.Route{Name: name, Match: m}} }
	routes := []*route{
		mk("post-only", config.Match{PathPrefix: "/api", Methods: []string{"POST"}}),
		mk("beta", config.Match{PathPrefix: "/api", Headers: map[string]string{"X-Beta": "1"}}),
		mk("api", config.Match{PathPrefix: "/api"}),
		mk("api-v1", config.Match{PathPrefix: "/api/v1"}),
		mk("host", config.Match{Host: "Shop.Example", Path: "/api/v1/x"}),
		mk("catalog", config.Match{PathPrefix: "/catalog"}),
		mk("any", config.Match{}),
	}
	x := newRouteIndex(routes)
	for _, c := range []struct{ method, host, path, header, want string }{
		{"POST", "h", "/api/v1/x", "", "post-only"},
		{"GET", "h", "/api/v1/x", "1", "beta"},
		{"GET", "shop.example:443", "/api/v1/x", "", "api"},
		{"GET", "shop.example", "/apiary", "", "any"},
		{"GET", "h", "/catalogue", "", "any"},
		{"GET", "h", "/catalog/", "", "catalog"},
	} {
		r := httptest.NewRequest(c.method, "http://"+c.host+c.path, nil)
		if c.header != "" {
			r.Header.Set("X-Beta", c.header)
		}
		if got := x.match(r); got == nil || got.cfg.Name != c.want {
			t.Errorf("%s %s%s: %s, want %s", c.method, c.host, c.path, name(got), c.want)
		}
	}
}

// BenchmarkMatch: the request is for the last of n routes, each its own
// path_prefix. The linear scan's cost grew with n; the index's should not.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		routes := make([]*route, n)
		for i := range routes {
			routes[i] = &route{cfg: &config.Route{Name: fmt.Sprint("r", i), Match: config.Match{PathPrefix: fmt.Sprintf("/svc%05d", i)}}}
		}
		x := newRouteIndex(routes)
		r := httptest.NewRequest("GET", fmt.Sprintf("http://gw/svc%05d/items/42", n-1), nil)
		b.Run(fmt.Sprint("index/routes=", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if x.match(r) != routes[n-1] {
					b.Fatal("wrong route")
				}
			}
		})
		b.Run(fmt.Sprint("linear/routes=", n), func(b *testing.B) {
			for b.Loop() {
				if linearMatch(routes, r) != routes[n-1] {
					b.Fatal("wrong route")
				}
			}
		})
		// What the index holds: B/op is its memory for n routes.
		b.Run(fmt.Sprint("build/routes=", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				newRouteIndex(routes)
			}
		})
	}
}
