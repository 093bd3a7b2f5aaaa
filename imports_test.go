package spillway_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// corePackages are the policy packages that must compile with nothing but
// the standard library and the root package: importing breaker must never
// pull in gRPC, NATS or Prometheus.
var corePackages = []string{".", "breaker", "retry", "timeout", "bulkhead", "fallback", "chaos", "ratelimit", "shed", "hedge", "throttle"}

const modulePath = "github.com/spillway-dev/spillway"

func TestCorePackagesImportOnlyTheStandardLibrary(t *testing.T) {
	for _, dir := range corePackages {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Errorf("%s: no Go files: is the package missing?", dir)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			if bad := nonStandardImports(t, file); len(bad) > 0 {
				t.Errorf("%s imports %v: core packages may import only the standard library and %s", file, bad, modulePath)
			}
		}
	}
}

// TestImportCheckCatchesAThirdPartyImport proves the check above can fail.
func TestImportCheckCatchesAThirdPartyImport(t *testing.T) {
	file := filepath.Join(t.TempDir(), "x.go")
	src := "package x\nimport (\n\t\"fmt\"\n\t\"github.com/prometheus/client_golang/prometheus\"\n\t\"" + modulePath + "\"\n)\n"
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := nonStandardImports(t, file)
	if len(bad) != 1 || bad[0] != "github.com/prometheus/client_golang/prometheus" {
		t.Fatalf("nonStandardImports = %v, want the prometheus import alone", bad)
	}
}

// nonStandardImports returns the imports of file that are neither in the
// standard library (no dot in the first path element) nor the root package.
func nonStandardImports(t *testing.T, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(path, "/")
		if path == modulePath || !strings.Contains(first, ".") {
			continue
		}
		bad = append(bad, path)
	}
	return bad
}
