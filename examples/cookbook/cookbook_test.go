package cookbook_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goBlock matches a fenced Go block of a Markdown file.
var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// TestCookbookShowsTheCode keeps docs/cookbook.md and this package in step:
// every Go block of the page is the text of this package's code, and every
// Example (a recipe) is shown on the page.
func TestCookbookShowsTheCode(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("..", "..", "docs", "cookbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var code []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code = append(code, string(src))
	}
	blocks := goBlock.FindAllStringSubmatch(string(page), -1)
	if len(blocks) == 0 {
		t.Fatal("docs/cookbook.md has no Go block")
	}
	var shown strings.Builder
	for _, b := range blocks {
		if !containsAny(code, b[1]) {
			first, _, _ := strings.Cut(b[1], "\n")
			t.Errorf("docs/cookbook.md block %q… is not the text of examples/cookbook's code: copy it from there", first)
		}
		shown.WriteString(b[1])
	}
	for _, src := range code {
		for _, m := range regexp.MustCompile(`(?m)^func (Example\w*)\(\)`).FindAllStringSubmatch(src, -1) {
			if !strings.Contains(shown.String(), "func "+m[1]+"()") {
				t.Errorf("recipe %s is not shown in docs/cookbook.md", m[1])
			}
		}
	}
}

func containsAny(srcs []string, s string) bool {
	for _, src := range srcs {
		if strings.Contains(src, s) {
			return true
		}
	}
	return false
}
