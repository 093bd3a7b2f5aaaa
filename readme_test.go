package spillway_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmePipelineIsTheExample holds the README's pipeline to Example,
// which `go test` compiles and runs: a README that drifts from the API
// fails here rather than in a reader's editor.
func TestReadmePipelineIsTheExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	body := dedent(string(example))
	found := false
	for _, m := range regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if !strings.Contains(m[1], "spillway.NewPipeline(") {
			continue
		}
		found = true
		if !strings.Contains(body, m[1]) {
			t.Errorf("the README's pipeline is not Example's code; update both:\n%s", m[1])
		}
	}
	if !found {
		t.Fatal("the README has no pipeline block")
	}
}

// dedent removes one level of indentation from every line, the Example
// function's.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "\t")
	}
	return strings.Join(lines, "\n")
}
