package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `make test > out.txt 2>&1` keeps every line: no recipe or script of the
// build reopens the terminal or the process's own output (/dev/stderr,
// /dev/tty, /proc/self/fd), which truncates a file the output is redirected
// to, or writes past it.
func TestMakeOutputCanBeRedirectedToAFile(t *testing.T) {
	files, _ := filepath.Glob("../scripts/*.sh")
	files = append(files, "../Makefile")
	reopen := regexp.MustCompile(`/dev/(stderr|stdout|tty|fd/)|/proc/self/fd`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "#") && reopen.MatchString(line) {
				t.Errorf("%s:%d reopens the output: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}

	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Skip("no make")
	}
	// As a shell does for `make fmt > out.txt 2>&1`, after a line the
	// file holds already.
	out := filepath.Join(t.TempDir(), "out.txt")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("before make\n"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(makeBin, "-s", "-C", "..", "fmt")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		data, _ := os.ReadFile(out)
		t.Fatalf("make fmt: %v\n%s", err, data)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data); !strings.HasPrefix(got, "before make\n") || !strings.Contains(got, "== gofmt -l .\n") {
		t.Errorf("the redirected output lost lines:\n%s", got)
	}
}
