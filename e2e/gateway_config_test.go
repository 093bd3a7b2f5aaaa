package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/config"
)

// badConfigs are broken (or suspicious) gateway files and the exact lines
// config.Load and `spillway validate` must print for them, with FILE
// standing for the file's path. Columns are 1-based and point at the
// offending key or value.
var badConfigs = []struct {
	name     string
	yaml     string
	errors   []string // FILE:LINE:COL: message
	warnings []string // FILE:LINE:COL: message (validate adds "warning: ")
}{
	{
		name: "unknown key with a suggestion",
		yaml: `upstreams:
  svc:
    instances: [http://127.0.0.1:9001]
    breaker: {min_call: 5}
routes:
  - name: r
    upstream: svc
`,
		errors: []string{`FILE:4:15: unknown key "min_call" in upstreams.svc.breaker; did you mean "min_calls"?`},
	},
	{
		name: "route to an unknown upstream",
		yaml: `upstreams:
  svc:
    instances: [http://127.0.0.1:9001]
routes:
  - name: r
    upstream: scv
`,
		errors: []string{`FILE:6:15: route "r": unknown upstream "scv"; did you mean "svc"?`},
	},
	{
		name: "attempt longer than total",
		yaml: `upstreams:
  svc:
    instances: [http://127.0.0.1:9001]
    timeouts: {attempt: 3s, total: 2s}
routes:
  - name: r
    upstream: svc
`,
		errors: []string{`FILE:4:25: upstreams.svc.timeouts: attempt (3s) is longer than total (2s): attempt <= total`},
	},
	{
		name: "every problem at once",
		yaml: `upstreams:
  svc:
    instances: [http://127.0.0.1:9001]
    timeouts: {attempt: 100 ms}
    retries: {max_attempts: 2}
routes:
  - name: r
    upstream: scv
`,
		errors: []string{
			`FILE:4:25: upstreams.svc.timeouts.attempt: invalid duration "100 ms" (write 250ms, 2s, 5m, 1h30m)`,
			`FILE:5:5: unknown key "retries" in upstreams.svc (allowed: instances, balance, timeouts, retry, breaker, bulkhead, throttle, hedge, health, outlier, max_replay_body, tls, http2, shed, slow_start)`,
			`FILE:8:15: route "r": unknown upstream "scv"; did you mean "svc"?`,
		},
	},
	{
		name: "attempt equal to total is a warning",
		yaml: `upstreams:
  svc:
    instances: [http://127.0.0.1:9001]
    timeouts: {attempt: 2s, total: 2s}
routes:
  - name: r
    upstream: svc
`,
		warnings: []string{`FILE:4:25: upstreams.svc.timeouts: attempt (2s) is not shorter than total (2s): the first attempt can use the whole budget and no retry will ever start`},
	},
}

// writeConfigs writes every case of badConfigs to dir and returns the paths.
func writeConfigs(t *testing.T, dir string) []string {
	t.Helper()
	paths := make([]string, len(badConfigs))
	for i, c := range badConfigs {
		paths[i] = filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
		if err := os.WriteFile(paths[i], []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

func expand(lines []string, file string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.Replace(l, "FILE", file, 1)
	}
	return out
}

func diffLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot\n\t%s\nwant\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// config.Load reports every problem of a file as FILE:LINE:COL: message.
func TestBadConfigsLoad(t *testing.T) {
	paths := writeConfigs(t, t.TempDir())
	for i, c := range badConfigs {
		t.Run(c.name, func(t *testing.T) {
			cfg, warnings, err := config.Load(paths[i])
			var errs config.Errors
			switch {
			case len(c.errors) == 0 && err != nil:
				t.Fatalf("Load: %v, want no error", err)
			case len(c.errors) > 0 && !errors.As(err, &errs):
				t.Fatalf("Load: %v (%T), want config.Errors", err, err)
			case len(c.errors) > 0 && cfg != nil:
				t.Error("Load returned a configuration with its errors")
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			diffLines(t, "errors", got, expand(c.errors, paths[i]))
			got = nil
			for _, w := range warnings {
				got = append(got, w.String())
			}
			diffLines(t, "warnings", got, expand(c.warnings, paths[i]))
		})
	}
}

// The real binary, built from the root module: `spillway validate -c FILE`
// prints the same lines (warnings prefixed "warning: "), exits 1 on an
// error and 0 with warnings alone.
func TestBadConfigsValidateBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "spillway")
	build := exec.Command("go", "build", "-o", bin, "./cmd/spillway")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/spillway: %v\n%s", err, out)
	}
	paths := writeConfigs(t, dir)
	for i, c := range badConfigs {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, "validate", "-c", paths[i])
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			want := expand(c.errors, paths[i])
			for _, w := range expand(c.warnings, paths[i]) {
				file, rest, _ := strings.Cut(w, ": ")
				want = append(want, file+": warning: "+rest)
			}
			var exit *exec.ExitError
			switch n := len(c.errors); {
			case n == 0:
				if err != nil {
					t.Fatalf("validate: %v, want exit 0\n%s%s", err, &stdout, &stderr)
				}
				want = append(want, paths[i]+": ok, 1 warning(s)")
			case !errors.As(err, &exit) || exit.ExitCode() != 1:
				t.Fatalf("validate: %v, want exit status 1\n%s%s", err, &stdout, &stderr)
			default:
				suffix := "1 error"
				if n > 1 {
					suffix = strconv.Itoa(n) + " errors"
				}
				if got, w := strings.TrimSpace(stderr.String()), "spillway: "+paths[i]+": "+suffix; got != w {
					t.Errorf("stderr %q, want %q", got, w)
				}
			}
			diffLines(t, "stdout", strings.Split(strings.TrimSpace(stdout.String()), "\n"), want)
		})
	}
}
