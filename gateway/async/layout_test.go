package async

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestAsyncDoesNotImportTheGateway: package gateway imports package async
// to construct it; async knows the gateway only through Upstreams, never
// by importing it (docs/architecture.md, "Layout").
func TestAsyncDoesNotImportTheGateway(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "github.com/spillway-dev/spillway/gateway" {
				t.Errorf("%s imports %s", file, path)
			}
		}
	}
}
