package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/spillwayhttp"
)

// pathRoutes strips /catalog; /open strips too but allows unsafe paths;
// the catch-all / forwards as is.
const pathRoutes = `upstreams:
  app: {instances: ["%s"]}
routes:
  - name: catalog
    match: {path_prefix: /catalog}
    strip_prefix: true
    upstream: app
  - name: open
    match: {path_prefix: /open}
    strip_prefix: true
    allow_unsafe_paths: true
    upstream: app
  - name: rest
    match: {path_prefix: /}
    upstream: app
`

// TestPathsSomeUpstreamsResolveOutsideTheRouteAreRefused sends each target
// raw (no client normalises it) and checks what reaches the upstream.
func TestPathsSomeUpstreamsResolveOutsideTheRouteAreRefused(t *testing.T) {
	up := newRecordingUpstream(t)
	addr := servePublic(t, parse(t, fmt.Sprintf(pathRoutes, up.URL), nil), gateway.ListenerOptions{})
	for _, c := range []struct {
		target string
		want   int
		sent   string // the path the upstream gets (decoded), for 200
	}{
		{"/catalog/..;/admin", 400, ""},
		{"/catalog/.;/admin", 400, ""},
		{"/catalog/..;jsessionid=1/admin", 400, ""},
		{"/catalog/%2e%2e;/admin", 400, ""},
		{"/catalog/..%5Cadmin", 400, ""},
		{`/catalog/..\admin`, 400, ""},
		{`/catalog/a\b`, 400, ""},
		{"/catalog/..%5cadmin", 400, ""},
		{"/catalog/%2e%2e/admin", 400, ""},
		{"/catalog/%2E%2e%2Fadmin", 400, ""},
		{"/catalog/%252e%252e/admin", 400, ""},
		{"/catalog/%252e%252e%252fadmin", 400, ""},
		{"/catalog/%25252e%25252e/admin", 400, ""},
		{"/catalog/..%255cadmin", 400, ""},
		{"/catalog/a%00.txt", 400, ""},
		{"/catalog/a%0d%0aX:y", 400, ""},
		{"/catalog//evil.example/x", 400, ""},
		{"/catalog/%2F%2Fevil.example/x", 400, ""},
		{"//evil.example/x", 400, ""},
		{"/x/..%2f..%2fadmin", 400, ""},

		{"/catalog/items;jsessionid=1", 200, "/items;jsessionid=1"},
		{"/catalog/file.tar.gz", 200, "/file.tar.gz"},
		{"/catalog/a%2Fb", 200, "/a/b"},
		{"/catalog/..foo/a..b/...", 200, "/..foo/a..b/..."},
		{"/catalog/100%25", 200, "/100%"},
		{"/catalog/a//b", 200, "/a//b"},
		{"/catalog", 200, "/"},

		// allow_unsafe_paths forwards them; plain dot segments never.
		{"/open/..;/admin", 200, "/..;/admin"},
		{"/open/a%5Cb", 200, `/a\b`},
		{"/open//evil.example/x", 200, "//evil.example/x"},
		{"/open/../admin", 400, ""},
		{"/open/%2e%2e/admin", 400, ""},
	} {
		before := len(up.requests())
		res := rawExchange(t, addr, nil, 10*time.Second, "GET "+c.target+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		if len(res.status) != 1 || res.status[0] != c.want {
			t.Errorf("GET %s: answers %v, want %d", c.target, res.status, c.want)
			continue
		}
		reqs := up.requests()[before:]
		switch {
		case c.want == 400 && (len(reqs) != 0 || res.resp[0].Header.Get(spillwayhttp.ReasonHeader) != gateway.ReasonBadRequest):
			t.Errorf("GET %s: refused with %v, upstream saw %d requests", c.target, res.resp[0].Header, len(reqs))
		case c.want == 200 && (len(reqs) != 1 || reqs[0].path != c.sent):
			t.Errorf("GET %s: upstream saw %+v, want path %q", c.target, reqs, c.sent)
		}
	}
}
