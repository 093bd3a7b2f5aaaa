package config_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// loadIn writes yaml as spillway.yaml into dir and loads it.
func loadIn(t *testing.T, dir, yaml string) (*config.Config, []config.Warning, error) {
	t.Helper()
	p := filepath.Join(dir, "spillway.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Load(p)
}

const tlsRoutes = `
routes:
  - name: r
    match: {path_prefix: /}
    upstream: secure
`

// TestUpstreamTLS: tls: is inherited from defaults: key by key, its
// relative files are resolved against the file's directory and parsed at
// load time, and insecure_skip_verify is a warning.
func TestUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	ca := spillwaytest.NewCA(t, "upstream CA")
	ca.WriteCA(t, dir, "ca.pem")
	spillwaytest.WritePair(t, ca.Client(t, "gateway"), dir, "client")
	cfg, warns, err := loadIn(t, dir, `
defaults:
  tls: {ca_file: ca.pem, min_version: "1.3"}
upstreams:
  secure:
    instances: [https://127.0.0.1:9443]
    tls: {cert_file: client.crt, key_file: client.key, server_name: api.internal}
`+tlsRoutes)
	if err != nil || len(warns) != 0 {
		t.Fatalf("err %v, warnings %v", err, warns)
	}
	got := *cfg.Upstreams["secure"].TLS
	want := config.UpstreamTLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.crt"), KeyFile: filepath.Join(dir, "client.key"),
		ServerName: "api.internal", MinVersion: "1.3"}
	if got != want {
		t.Fatalf("tls:\n got %+v\nwant %+v", got, want)
	}
	tc, err := got.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.MinVersion != tls.VersionTLS13 || tc.ServerName != "api.internal" || len(tc.Certificates) != 1 || tc.RootCAs == nil || tc.InsecureSkipVerify {
		t.Fatalf("client config %+v", tc)
	}

	_, warns, err = loadIn(t, dir, "upstreams:\n  secure:\n    instances: [https://127.0.0.1:9443]\n    tls: {insecure_skip_verify: true}\n"+tlsRoutes)
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0].String(), "spillway.yaml:4:") ||
		!strings.Contains(warns[0].Msg, "insecure_skip_verify: the instances' certificates are not checked") {
		t.Fatalf("insecure_skip_verify: err %v, warnings %v", err, warns)
	}
}

// TestUpstreamTLSRefused: each bad tls: value is an error at its key.
func TestUpstreamTLSRefused(t *testing.T) {
	dir := t.TempDir()
	ca := spillwaytest.NewCA(t, "upstream CA")
	spillwaytest.WritePair(t, ca.Client(t, "gateway"), dir, "client")
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ tls, want string }{
		"cert without key": {`{cert_file: client.crt}`, "spillway.yaml:4:10: upstreams.secure.tls: cert_file and key_file go together"},
		"missing ca":       {`{ca_file: nowhere.pem}`, "spillway.yaml:4:20: upstreams.secure.tls.ca_file: cannot read " + filepath.Join(dir, "nowhere.pem") + ": no such file"},
		"not a ca":         {`{ca_file: junk.pem}`, "upstreams.secure.tls.ca_file: " + filepath.Join(dir, "junk.pem") + " holds no PEM certificate"},
		"key mismatch":     {`{cert_file: client.crt, key_file: junk.pem}`, "spillway.yaml:4:22: upstreams.secure.tls.cert_file: " + filepath.Join(dir, "client.crt") + " with key_file"},
		"min_version":      {`{min_version: "1.1"}`, `upstreams.secure.tls.min_version: "1.1" is not one of 1.2, 1.3`},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := loadIn(t, dir, "upstreams:\n  secure:\n    instances: [https://127.0.0.1:9443]\n    tls: "+c.tls+"\n"+tlsRoutes)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

// TestRouteMaxBody: a route's max_body defaults to server.max_body, and
// one larger is a warning (the server's limit wins).
func TestRouteMaxBody(t *testing.T) {
	cfg, warns, err := config.Parse("f.yaml", []byte(`
server: {max_body: 1MiB}
upstreams:
  u: {instances: [http://127.0.0.1:9000]}
routes:
  - {name: small, match: {path_prefix: /s}, upstream: u, max_body: 4KiB, buffer_body: true}
  - {name: plain, match: {path_prefix: /p}, upstream: u}
  - {name: big, match: {path_prefix: /b}, upstream: u, max_body: 2MiB}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Routes[0]; r.MaxBody != 4<<10 || !r.BufferBody {
		t.Errorf("small: %d %v", r.MaxBody, r.BufferBody)
	}
	if cfg.Routes[1].MaxBody != 1<<20 || cfg.Routes[2].MaxBody != 1<<20 {
		t.Errorf("plain %d, big %d: want server.max_body", cfg.Routes[1].MaxBody, cfg.Routes[2].MaxBody)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].String(), `f.yaml:8:`) || !strings.Contains(warns[0].Msg, "the server's limit wins") {
		t.Errorf("warnings %v", warns)
	}
}
