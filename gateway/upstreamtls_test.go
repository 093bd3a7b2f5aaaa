package gateway_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// tlsBackend is an https instance on 127.0.0.1 that requires a client
// certificate signed by its CA and records the name of each it saw.
type tlsBackend struct {
	*httptest.Server
	clients lines // request path and client certificate name
}

func newTLSBackend(t *testing.T, ca *spillwaytest.CA, maxVersion uint16) *tlsBackend {
	t.Helper()
	b := &tlsBackend{}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.clients.add(r.URL.Path + " " + r.TLS.PeerCertificates[0].Subject.CommonName)
		_, _ = io.WriteString(w, "secure")
	}))
	b.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes refused on purpose
	b.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t, "api.internal")},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool(), MaxVersion: maxVersion,
	}
	b.StartTLS()
	t.Cleanup(b.Close)
	return b
}

// tlsFiles writes a CA (the backend's) and a client certificate it signs.
type tlsFiles struct{ ca, cert, key string }

func newTLSFiles(t *testing.T, ca *spillwaytest.CA) tlsFiles {
	dir := t.TempDir()
	f := tlsFiles{ca: ca.WriteCA(t, dir, "ca.pem")}
	f.cert, f.key = spillwaytest.WritePair(t, ca.Client(t, "gateway"), dir, "client")
	return f
}

func tlsConfig(t *testing.T, instance, tlsYAML string) *config.Config {
	return parse(t, fmt.Sprintf(`
upstreams:
  secure:
    instances: [%s]
    retry: {max_attempts: 1}
    tls: %s
routes:
  - {name: r, match: {path_prefix: /}, upstream: secure}
`, instance, tlsYAML), nil)
}

// TestUpstreamTLS: an upstream's tls: says which CA signs its instances,
// which client certificate the gateway presents, the name checked and the
// lowest version; each refusal is a 502 that says it was the TLS
// handshake.
func TestUpstreamTLS(t *testing.T) {
	ca := spillwaytest.NewCA(t, "upstream CA")
	f := newTLSFiles(t, ca)
	b := newTLSBackend(t, ca, 0)
	b12 := newTLSBackend(t, ca, tls.VersionTLS12)
	other := newTLSFiles(t, spillwaytest.NewCA(t, "another CA"))
	mtls := fmt.Sprintf("ca_file: %s, cert_file: %s, key_file: %s", f.ca, f.cert, f.key)
	for _, c := range []struct {
		name, instance, tls string
		ok                  bool
		why                 string // in the log when refused
	}{
		{"trusted through ca_file, client certificate presented", b.URL, "{" + mtls + "}", true, ""},
		{"the system's roots do not know the CA", b.URL, fmt.Sprintf("{cert_file: %s, key_file: %s}", f.cert, f.key), false, "certificate signed by unknown authority"},
		{"another CA", b.URL, fmt.Sprintf("{ca_file: %s, cert_file: %s, key_file: %s}", other.ca, f.cert, f.key), false, "certificate signed by unknown authority"},
		{"no client certificate", b.URL, fmt.Sprintf("{ca_file: %s}", f.ca), false, "certificate required"},
		{"server_name the certificate names", b.URL, "{" + mtls + ", server_name: api.internal}", true, ""},
		{"server_name it does not name", b.URL, "{" + mtls + ", server_name: other.internal}", false, "not other.internal"},
		{"min_version 1.2 with a TLS 1.2 instance", b12.URL, "{" + mtls + ", min_version: \"1.2\"}", true, ""},
		{"min_version 1.3 with a TLS 1.2 instance", b12.URL, "{" + mtls + ", min_version: \"1.3\"}", false, "protocol version"},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs := &spillwaytest.Buffer{}
			h := startLogged(t, tlsConfig(t, c.instance, c.tls), logs)
			resp, body := h.do(t, "GET", "/x", nil, "")
			if c.ok {
				if resp.StatusCode != 200 || body != "secure" {
					t.Fatalf("%d %q, want 200 secure", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Spillway-Reason") != "upstream_error" {
				t.Fatalf("%d %s %q, want 503 upstream_error", resp.StatusCode, resp.Header.Get("Spillway-Reason"), body)
			}
			if !strings.Contains(logs.String(), "the TLS handshake with an upstream instance failed") || !strings.Contains(logs.String(), c.why) {
				t.Errorf("log %q: want the TLS failure with %q", logs.String(), c.why)
			}
		})
	}
	if got := b.clients.all(); len(got) == 0 || got[0] != "/x gateway" {
		t.Errorf("the instance saw the client certificates %v, want the gateway's", got)
	}
}

// TestUpstreamTLSHealthAndReload: the health checks connect as the
// attempts do, and a reload that changes tls: starts a new connection
// pool and says so; insecure_skip_verify is logged.
func TestUpstreamTLSHealthAndReload(t *testing.T) {
	ca := spillwaytest.NewCA(t, "upstream CA")
	f := newTLSFiles(t, ca)
	b := newTLSBackend(t, ca, 0)
	yaml := func(extra string) *config.Config {
		return parse(t, fmt.Sprintf(`
upstreams:
  secure:
    instances: [%s]
    health: {path: /healthz, interval: 20ms, timeout: 10ms, unhealthy_after: 1}
    tls: {ca_file: %s, cert_file: %s, key_file: %s%s}
routes:
  - {name: r, match: {path_prefix: /}, upstream: secure}
`, b.URL, f.ca, f.cert, f.key, extra), nil)
	}
	logs := &spillwaytest.Buffer{}
	gw, err := gateway.New(yaml(""), gateway.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	for deadline := time.Now().Add(5 * time.Second); !contains(b.clients.all(), "/healthz gateway"); {
		if time.Now().After(deadline) {
			t.Fatalf("no health check with the client certificate: %v", b.clients.all())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cs, err := gw.Apply(yaml(", insecure_skip_verify: true"))
	if err != nil {
		t.Fatal(err)
	}
	if !hasChange(cs.Resets, "connections", "tls.insecure_skip_verify false → true") || !hasChange(cs.Applied, "tls", "tls.insecure_skip_verify false → true") {
		t.Errorf("changes %+v: want the connections reset by the tls: change", cs)
	}
	if !strings.Contains(logs.String(), "tls.insecure_skip_verify") || !strings.Contains(logs.String(), "upstream=secure") {
		t.Errorf("log %q: want a warning of insecure_skip_verify", logs.String())
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
