package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/config"
)

// What init writes, validate accepts, with the upstreams and routes asked
// for, whatever the names and URLs hold.
func TestInitWritesWhatValidateAccepts(t *testing.T) {
	for _, ups := range [][]string{
		{"app=http://127.0.0.1:9000"},
		{"catalog=http://127.0.0.1:9001", "true=https://example.com:8443/base", "7up=http://127.0.0.1:9003/a/${HOME}/'\""},
	} {
		file := filepath.Join(t.TempDir(), "spillway.yaml")
		args := []string{"init", "-o", file}
		for _, u := range ups {
			args = append(args, "--upstream", u)
		}
		if out, err := runCommand(t, args...); err != nil {
			t.Fatalf("init %v: %v\n%s", args, err, out)
		}
		var out bytes.Buffer
		if err := runValidate(&out, file); err != nil || !strings.HasSuffix(out.String(), file+": ok\n") {
			text, _ := os.ReadFile(file)
			t.Fatalf("validate of init's file: %v\n%s\n%s", err, out.String(), text)
		}
		cfg, _, err := config.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Routes) != len(ups) {
			t.Errorf("%d routes for %d upstreams", len(cfg.Routes), len(ups))
		}
		for i, u := range ups {
			name, url, _ := strings.Cut(u, "=")
			up := cfg.Upstreams[name]
			if up == nil || len(up.Instances) != 1 || up.Instances[0] != url {
				t.Errorf("upstream %s: %+v, want the instance %s", name, up, url)
			}
			r := cfg.Routes[i]
			want := "/" + name
			if len(ups) == 1 {
				want = "/"
			}
			if r.Name != name || r.Upstream != name || r.Match.PathPrefix != want {
				t.Errorf("route %d: %s → %s on %s, want %s → %[4]s on %s", i, r.Name, r.Upstream, r.Match.PathPrefix, name, want)
			}
		}
		if cfg.Admin.Listen != "127.0.0.1:9901" {
			t.Errorf("admin.listen %s, want loopback", cfg.Admin.Listen)
		}
	}
}

func TestInitRefusesToOverwriteWithoutForce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "spillway.yaml")
	if err := os.WriteFile(file, []byte("mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCommand(t, "init", "-o", file, "--upstream", "app=http://127.0.0.1:9000"); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("init over a file: %v, want a refusal naming --force", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "mine\n" {
		t.Fatalf("the file was changed: %q", b)
	}
	if _, err := runCommand(t, "init", "-o", file, "--force", "--upstream", "app=http://127.0.0.1:9000"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); !strings.Contains(string(b), "${SPILLWAY_ADMIN_TOKEN") {
		t.Fatalf("--force did not write the starter:\n%s", b)
	}
}

func TestInitRefusesBadUpstreams(t *testing.T) {
	for _, tt := range []struct{ arg, want string }{
		{"app", "NAME=URL"},
		{"a b=http://127.0.0.1:9000", "NAME=URL"},
		{"app=127.0.0.1:9000", "http:// or https://"},
		{"app=http://127.0.0.1:9000/?q=1", "no query"},
	} {
		file := filepath.Join(t.TempDir(), "spillway.yaml")
		if _, err := runCommand(t, "init", "-o", file, "--upstream", tt.arg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("--upstream %q: %v, want an error with %q", tt.arg, err, tt.want)
		}
		if _, err := os.Stat(file); err == nil {
			t.Errorf("--upstream %q: a file was written", tt.arg)
		}
	}
	file := filepath.Join(t.TempDir(), "spillway.yaml")
	if _, err := runCommand(t, "init", "-o", file, "--upstream", "a=http://127.0.0.1:1", "--upstream", "a=http://127.0.0.1:2"); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a name given twice: %v", err)
	}
}
