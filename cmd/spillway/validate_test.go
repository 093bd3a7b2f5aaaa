package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runValidateCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCommand(t, append([]string{"validate"}, args...)...)
}

// runCommand runs spillway with args and returns what it printed, stdout
// and stderr together.
func runCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "spillway.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    []string // FILE is replaced by the file's path
		wantErr string
	}{
		{
			name: "valid",
			yaml: "upstreams:\n  a:\n    instances: [http://127.0.0.1:9001]\nroutes:\n  - {name: r, upstream: a}\n",
			want: []string{"FILE: ok"},
		},
		{
			name: "warnings alone pass",
			yaml: "upstreams:\n  a:\n    instances: [http://127.0.0.1:9001]\n    breaker: {min_calls: 1}\nroutes:\n  - {name: r, upstream: a}\n",
			want: []string{
				"FILE:4:26: warning: upstreams.a.breaker.min_calls: MinCalls is 1: the breaker opens on the first failed call",
				"FILE: ok, 1 warning(s)",
			},
		},
		{
			name: "every error at once",
			yaml: "admin: {listen: '0.0.0.0:9901'}\nupstreams:\n  a:\n    instances: [http://127.0.0.1:9001]\n    breker: {}\nroutes:\n  - {name: r, upstream: b}\n",
			want: []string{
				"FILE:1:17: admin.listen: 0.0.0.0:9901 is not a loopback address and admin.token is empty: the admin API would be open to the network (set a token or listen on 127.0.0.1)",
				`FILE:5:5: unknown key "breker" in upstreams.a; did you mean "breaker"?`,
				`FILE:7:25: route "r": unknown upstream "b"; did you mean "a"?`,
			},
			wantErr: "FILE: 3 errors",
		},
		{
			// config accepts the duration; the breaker, built as serve
			// builds it, refuses it: validate says so at the key.
			name:    "a policy refuses a value",
			yaml:    "upstreams:\n  a:\n    instances: [http://127.0.0.1:9001]\n    breaker: {window: {type: time, size: 5ns}}\nroutes:\n  - {name: r, upstream: a}\n",
			want:    []string{`FILE:4:42: gateway: upstream "a": breaker: WindowDuration must be at least 1ns per bucket, got 5ns for 10 buckets`},
			wantErr: "FILE: 1 error",
		},
		{
			name:    "one error",
			yaml:    "listen: nowhere\nroutes: []\n",
			want:    []string{`FILE:1:9: listen: "nowhere" is not a host:port address`},
			wantErr: "FILE: 1 error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, tt.yaml)
			out, err := runValidateCommand(t, "-c", file)
			want := strings.ReplaceAll(strings.Join(tt.want, "\n")+"\n", "FILE", file)
			if out != want {
				t.Errorf("printed:\n%s\nwant:\n%s", out, want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.wantErr != "" && (err == nil || err.Error() != strings.ReplaceAll(tt.wantErr, "FILE", file)):
				t.Errorf("error %v, want %s", err, tt.wantErr)
			}
		})
	}
}

func TestValidateExample(t *testing.T) {
	t.Setenv("SPILLWAY_ADMIN_TOKEN", "")
	for _, file := range []string{"../../examples/gateway/spillway.yaml", "../../examples/gateway/overload.yaml"} {
		out, err := runValidateCommand(t, "-c", file)
		if err != nil || out != file+": ok\n" {
			t.Fatalf("%s: printed %q, error %v", file, out, err)
		}
	}
}

func TestValidateUnreadableFile(t *testing.T) {
	_, err := runValidateCommand(t, "-c", filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("error %v", err)
	}
	if _, err := runValidateCommand(t); err == nil || !strings.Contains(err.Error(), `"config" not set`) {
		t.Fatalf("without -c: error %v", err)
	}
}
