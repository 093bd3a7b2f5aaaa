package main

import (
	"bytes"
	"context"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestVersion(t *testing.T) {
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "spillway ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("version printed %q", out.String())
	}
}

// spillway --version is spillway version.
func TestVersionFlag(t *testing.T) {
	run := func(arg string) string {
		cmd := newRootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs([]string{arg})
		if err := cmd.Execute(); err != nil {
			t.Fatalf("spillway %s: %v", arg, err)
		}
		return out.String()
	}
	if flag, sub := run("--version"), run("version"); flag != sub {
		t.Errorf("--version printed %q, version %q", flag, sub)
	}
}

// A build reports what it was built from: never "(devel)" alone.
func TestBuildVersion(t *testing.T) {
	const rev = "4160cef705eacbd766bec8e5c9961b273a5db17a"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name, set string
		bi        *debug.BuildInfo
		want      string
	}{
		{"ldflags wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v1.2.3"},
		{"go install @version", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: vcs("false")}, "v1.2.3"},
		{"pseudo-version of a checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261206091528-4160cef705ea+dirty"}}, "v0.0.0-20261206091528-4160cef705ea+dirty"},
		{"devel with a clean revision", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")}, "4160cef705ea"},
		{"devel with a dirty revision", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")}, "4160cef705ea-dirty"},
		{"nothing recorded", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, noVersion},
		{"no build info", "", nil, noVersion},
	}
	for _, tt := range tests {
		if got := buildVersion(tt.set, tt.bi); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestDemoShowsEveryPhaseAndTheBreakerOpening(t *testing.T) {
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"demo", "--library", "--phase", "600ms", "--tick", "150ms"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"healthy", "failing", "slow", "recovered", "done:"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	m := regexp.MustCompile(`the breaker opened (\d+) times`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no final summary:\n%s", text)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Errorf("the breaker never opened while the downstream failed 90 %% of calls:\n%s", text)
	}
	if !strings.Contains(text, "in flight 0.") {
		t.Errorf("the bulkhead must be empty once the callers stopped:\n%s", text)
	}
}

func TestDemoLibraryRefusesDuration(t *testing.T) {
	cmd := newRootCommand()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetArgs([]string{"demo", "--library", "--duration", "1s"})
	if err := cmd.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "--duration") {
		t.Fatalf("demo --library --duration: got %v, want an error naming --duration", err)
	}
}
