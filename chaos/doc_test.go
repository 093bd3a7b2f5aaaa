package chaos_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocExampleIsExampleNewFault holds docs/chaos.md's example to
// ExampleNewFault, which go test runs: every line of the page's Go block,
// without its trailing comment, is a line of example_test.go.
func TestDocExampleIsExampleNewFault(t *testing.T) {
	page, err := os.ReadFile("../docs/chaos.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for l := range strings.Lines(string(example)) {
		lines[code(l)] = true
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(page), -1)
	if len(blocks) == 0 {
		t.Fatal("docs/chaos.md has no Go example")
	}
	for l := range strings.Lines(blocks[0][1]) {
		if c := code(l); c != "" && !lines[c] {
			t.Errorf("docs/chaos.md's line %q is not in ExampleNewFault", c)
		}
	}
}

// code returns line without its indentation and trailing comment.
func code(line string) string {
	c, _, _ := strings.Cut(line, " // ")
	return strings.TrimSpace(c)
}
