package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

const schemaFile = "../docs/spillway.schema.json"

// compileSchema loads docs/spillway.schema.json, the JSON Schema editors
// use to complete and check a gateway configuration.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", schemaFile, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("spillway.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("spillway.schema.json")
	if err != nil {
		t.Fatalf("%s does not compile: %v", schemaFile, err)
	}
	return sch
}

// instance converts a YAML configuration to the JSON value the schema
// checks, as an editor's YAML language server does.
func instance(t *testing.T, name string, data []byte) any {
	t.Helper()
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func TestSchemaAcceptsEveryExampleConfig(t *testing.T) {
	sch := compileSchema(t)
	files, _ := filepath.Glob("../examples/*/*.yaml")
	files = append(files, "../config/testdata/warnings.yaml") // valid, with warnings
	files = append(files, "../config/testdata/shed-warnings.yaml")
	if len(files) < 2 {
		t.Fatalf("found only %v", files)
	}
	for _, file := range files {
		t.Run(filepath.Base(filepath.Dir(file))+"/"+filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(instance(t, file, data)); err != nil {
				t.Errorf("%s does not match the schema: %v", file, err)
			}
		})
	}
}

func TestSchemaRefusesBrokenConfigs(t *testing.T) {
	sch := compileSchema(t)
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "listn: 127.0.0.1:8080\n", "listn"},
		{"misspelt breaker key", "upstreams:\n  a:\n    instances: [http://127.0.0.1:1]\n    breaker: {min_call: 5}\n", "min_call"},
		{"instances missing", "upstreams:\n  a: {balance: random}\n", "instances"},
		{"not a URL", "upstreams:\n  a:\n    instances: [ftp://127.0.0.1:1]\n", "/upstreams/a/instances/0"},
		{"bad balance", "upstreams:\n  a:\n    instances: [http://127.0.0.1:1]\n    balance: fastest\n", "/upstreams/a/balance"},
		{"duration without unit", "defaults:\n  timeouts: {total: 15}\n", "/defaults/timeouts/total"},
		{"percent out of range", "defaults:\n  breaker: {failure_rate: 50}\n", "/defaults/breaker/failure_rate"},
		{"bad size", "server: {max_body: 10 MiBs}\n", "/server/max_body"},
		{"two kinds in one fallback step", "routes:\n  - name: r\n    upstream: a\n    fallback: [{upstream: b, static: {body: x}}]\n", "/routes/0/fallback/0"},
		{"route without name", "routes:\n  - upstream: a\n", "name"},
		{"status out of range", "routes:\n  - name: r\n    fallback: [static: {status: 700}]\n", "/routes/0/fallback/0/static/status"},
		{"readiness key misspelt", "readiness: {required_upstream: [a]}\n", "required_upstream"},
		{"fault half written", "routes:\n  - name: r\n    fault: {abort: {percent: 1}}\n", "status"},
		{"fault status not an error", "routes:\n  - name: r\n    fault: {abort: {percent: 1, status: 302}}\n", "/routes/0/fault/abort/status"},
		{"unknown priority class", "routes:\n  - name: r\n    priority: {default: urgent}\n", "/routes/0/priority/default"},
		{"shed key misspelt", "upstreams:\n  a:\n    instances: [http://127.0.0.1:1]\n    shed: {sheddable_above: 50%}\n", "sheddable_above"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sch.Validate(instance(t, tt.name, []byte(tt.yaml)))
			if err == nil {
				t.Fatalf("the schema accepts:\n%s", tt.yaml)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("the error does not mention %q: %v", tt.want, err)
			}
		})
	}
	// The broken configs of the config package's tests that are broken in
	// a way a schema can see.
	for _, file := range []string{"../config/testdata/unknown-keys.yaml", "../config/testdata/values.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if sch.Validate(instance(t, file, data)) == nil {
			t.Errorf("the schema accepts %s", file)
		}
	}
}
