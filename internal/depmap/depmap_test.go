package depmap

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/pool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hostile is a route and upstream named to break out of every format:
// markup for a browser, quotes, a backslash and label escapes for DOT,
// Mermaid's entity and comment characters, a line break.
const hostile = `<img src=x onerror=alert(1)> "q" \N \" ]; #x; %% end` + "\n" + `}`

// hostileConfig is built in memory: config.Load refuses such names, but the
// renderer must not rely on it.
func hostileConfig() *config.Config {
	return &config.Config{
		Upstreams: map[string]*config.Upstream{
			hostile:      {Name: hostile, Instances: []string{`http://127.0.0.1:9001/"><script>`}},
			"with space": {Name: "with space", Instances: []string{"http://127.0.0.1:9002"}},
		},
		Routes: []*config.Route{{
			Name: hostile, Upstream: hostile,
			Fallback: []config.Fallback{{Upstream: "with space"}, {StaleCache: &config.StaleCache{}}, {Static: &config.Static{Status: 200}}},
		}, {
			Name: "it's \"quoted\"", Upstream: "with space", Async: &config.Async{},
		}},
	}
}

func render(t *testing.T, g *Graph, format string) string {
	t.Helper()
	var b bytes.Buffer
	if err := g.Write(&b, format); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Every Mermaid line is a node with a quoted label made only of safe
// characters and entity codes, an edge between generated IDs, or a class
// statement: no name can end a label or reach the renderer as markup.
func TestMermaidEscapesNames(t *testing.T) {
	g := Build(hostileConfig())
	g.Colour(gateway.Status{Upstreams: map[string]gateway.UpstreamStatus{hostile: {Breaker: gateway.BreakerStatus{State: "open"}}}})
	out := render(t, g, "mermaid")
	node := regexp.MustCompile(`^  [a-z0-9]+(\[|\(|\(\[|\[\(|>|\[/)"[A-Za-z0-9 ._:/#;()\[\]-]*"(\]|\)|\]\)|\)\]|/\])$`)
	edge := regexp.MustCompile(`^  [a-z0-9]+ (-->|-\.->\|"fallback [0-9]+"\|) [a-z0-9]+$`)
	class := regexp.MustCompile(`^  (classDef [a-z]+ fill:#[0-9a-f]{6}|class [a-z0-9,]+ [a-z]+)$`)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "flowchart LR" {
		t.Fatalf("first line %q", lines[0])
	}
	for _, l := range lines[1:] {
		if !node.MatchString(l) && !edge.MatchString(l) && !class.MatchString(l) {
			t.Errorf("line not of the safe grammar: %q", l)
		}
	}
	for _, bad := range []string{"<img", "<script", `\N`, "%%", "\"q\""} {
		if strings.Contains(out, bad) {
			t.Errorf("%q reached the Mermaid output:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, "#60;img src#61;x onerror#61;alert#40;1#41;#62;") {
		t.Errorf("the route's name is not written as entity codes:\n%s", out)
	}
	if !strings.Contains(out, "class u1 down") && !strings.Contains(out, "class u2 down") {
		t.Errorf("the open breaker's upstream is not in class down:\n%s", out)
	}
}

// Every DOT label and ID is one double-quoted string whose only escapes are
// \\ and \" and \n: read back, it is the name.
func TestDOTQuotesNames(t *testing.T) {
	out := render(t, Build(hostileConfig()), "dot")
	quoted := regexp.MustCompile(`"((?:[^"\\\n]|\\[\\"n])*)"`)
	found := false
	for _, m := range quoted.FindAllStringSubmatch(out, -1) {
		unq := strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n").Replace(m[1])
		if unq == hostile {
			found = true
		}
	}
	if !found {
		t.Errorf("no quoted string reads back as the hostile name:\n%s", out)
	}
	// Outside the quoted strings only the DOT grammar remains.
	rest := quoted.ReplaceAllString(out, "Q")
	if bad := regexp.MustCompile(`[^A-Za-z0-9Q{}\[\];=,\->\s]`).FindString(rest); bad != "" {
		t.Errorf("%q outside quoted strings:\n%s", bad, rest)
	}
	if dot, err := exec.LookPath("dot"); err == nil {
		cmd := exec.Command(dot, "-Tsvg")
		cmd.Stdin = strings.NewReader(out)
		svg, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dot -Tsvg: %v\n%s", err, svg)
		}
		if bytes.Contains(svg, []byte("<img")) || bytes.Contains(svg, []byte("<script")) {
			t.Errorf("markup from a name reached the SVG")
		}
	}
}

func TestDOTQuote(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:        `"plain"`,
		`a "b"`:        `"a \"b\""`,
		`back\slash\`:  `"back\\slash\\"`,
		"two\nlines\r": `"two\nlines"`,
		`\N \G \l`:     `"\\N \\G \\l"`,
	} {
		if got := dotQuote(in); got != want {
			t.Errorf("dotQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// The JSON map carries the names as they are (encoding/json escapes) and
// the live states Colour sets.
func TestJSONCarriesNamesAndStates(t *testing.T) {
	g := Build(hostileConfig())
	g.Colour(gateway.Status{Upstreams: map[string]gateway.UpstreamStatus{
		"with space": {Breaker: gateway.BreakerStatus{State: "half_open"}, Instances: []pool.InstanceStatus{{URL: "http://127.0.0.1:9002", Healthy: true, Ejected: true}}},
		hostile:      {Breaker: gateway.BreakerStatus{State: "closed"}, Instances: []pool.InstanceStatus{{URL: `http://127.0.0.1:9001/"><script>`}}},
	}})
	var back Graph
	if err := json.Unmarshal([]byte(render(t, g, "json")), &back); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, n := range back.Nodes {
		states[n.Kind+" "+n.Name] = n.State
	}
	for key, want := range map[string]string{
		"route " + hostile:                          "",
		"upstream " + hostile:                       "closed",
		"upstream with space":                       "half_open",
		"instance http://127.0.0.1:9002":            "ejected",
		`instance http://127.0.0.1:9001/"><script>`: "unhealthy",
		"stale_cache stale cache":                   "",
	} {
		got, ok := states[key]
		if !ok || got != want {
			t.Errorf("%q: state %q (present %v), want %q", key, got, ok, want)
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	if err := Build(hostileConfig()).Write(&bytes.Buffer{}, "svg"); err == nil {
		t.Fatal("format svg accepted")
	}
}

// FromAPI gives the graph Build and Colour give for the same gateway,
// hostile names included: the same IDs, edges and states; only the static
// leaf lacks its status, which the API does not report.
func TestFromAPIIsBuildColoured(t *testing.T) {
	cfg := hostileConfig()
	st := gateway.Status{Upstreams: map[string]gateway.UpstreamStatus{
		hostile:      {Breaker: gateway.BreakerStatus{State: "open"}, Instances: []pool.InstanceStatus{{URL: `http://127.0.0.1:9001/"><script>`, Healthy: true}}},
		"with space": {Breaker: gateway.BreakerStatus{State: "half_open"}, Instances: []pool.InstanceStatus{{URL: "http://127.0.0.1:9002", Ejected: true}}},
	}}
	want := Build(cfg)
	want.Colour(st)
	var ups []gateway.UpstreamView
	for name, s := range st.Upstreams {
		ups = append(ups, gateway.UpstreamView{Name: name, Instances: s.Instances, Live: gateway.LiveView{Breaker: s.Breaker}})
	}
	routes := []gateway.RouteView{
		{Name: hostile, Upstream: hostile, Fallback: []string{"upstream:with space", "stale_cache", "static"}},
		{Name: `it's "quoted"`, Upstream: "with space", Async: true, Fallback: []string{}},
	}
	got := FromAPI(ups, routes)
	for i := range want.Nodes {
		if want.Nodes[i].Kind == KindStatic {
			want.Nodes[i].Name = "static"
		}
	}
	a, b := render(t, want, "json"), render(t, got, "json")
	if a != b {
		t.Errorf("FromAPI:\n%s\nBuild and Colour:\n%s", b, a)
	}
}
