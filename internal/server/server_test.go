package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/gateway/admin"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// served is a Run running in the test's process.
type served struct {
	file           string
	public, admin  string // base URLs
	signals        chan os.Signal
	done           chan error
	stdout, stderr *spillwaytest.Buffer
	client         *http.Client
	stopOnce       sync.Once
	err            error
}

// startServe writes config (a format string whose %s are filled by args)
// to a file and runs Run on it until the test ends.
func startServe(t *testing.T, config string) *served {
	t.Helper()
	file := filepath.Join(t.TempDir(), "spillway.yaml")
	writeFile(t, file, config)
	return startRun(t, Options{File: file})
}

// startRun runs Run with o until the test ends.
func startRun(t *testing.T, o Options) *served {
	t.Helper()
	file := o.File
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	s := &served{
		file:    file,
		signals: make(chan os.Signal, 1),
		done:    make(chan error, 1),
		stdout:  &spillwaytest.Buffer{},
		stderr:  &spillwaytest.Buffer{},
		client:  &http.Client{Transport: tr, Timeout: 20 * time.Second},
	}
	addrs := make(chan [2]string, 1)
	go func() {
		s.done <- Run(context.Background(), o, s.stdout, s.stderr, s.signals, func(public, admin string) {
			addrs <- [2]string{public, admin}
		})
	}()
	select {
	case a := <-addrs:
		s.public, s.admin = "http://"+a[0], "http://"+a[1]
	case err := <-s.done:
		t.Fatalf("serve ended before it was ready: %v\nstderr:\n%s", err, s.stderr)
	case <-time.After(10 * time.Second):
		t.Fatalf("serve not ready after 10s\nstderr:\n%s", s.stderr)
	}
	t.Cleanup(func() {
		if err := s.stop(t); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s
}

// stop sends SIGTERM (once) and returns Run's result.
func (s *served) stop(t *testing.T) error {
	s.stopOnce.Do(func() {
		s.signals <- syscall.SIGTERM
		select {
		case s.err = <-s.done:
		case <-time.After(15 * time.Second):
			t.Fatalf("serve did not stop 15s after SIGTERM\nstderr:\n%s", s.stderr)
		}
	})
	return s.err
}

func (s *served) do(t *testing.T, method, url, token string, body io.Reader) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (s *served) get(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, _ := s.do(t, http.MethodGet, url, "", nil)
	return code, body
}

// eventually polls cond until it holds or 10 s passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeFile(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// upstream answers "NAME PATH" to every request.
func upstream(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// oneRoute is a configuration with a single route /app to the upstream at %s.
const oneRoute = `listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
  token: s3cret
server:
  max_body: 1KiB
  shutdown_grace: 10s
upstreams:
  app:
    instances: [%s]
routes:
  - name: app
    match: {path_prefix: /app}
    upstream: app
`

// twoRoutes adds the route /other to the upstream other at %s.
const twoRoutes = oneRoute + `  - name: other
    match: {path_prefix: /other}
    upstream: other
`

func twoRoutesConfig(app, other string) string {
	return strings.Replace(fmt.Sprintf(twoRoutes, app), "routes:", "  other:\n    instances: ["+other+"]\nroutes:", 1)
}

func TestServeProxiesAndAnswersTheAdminEndpoints(t *testing.T) {
	app := upstream(t, "app")
	s := startServe(t, fmt.Sprintf(oneRoute, app.URL))

	if code, body := s.get(t, s.public+"/app/items?x=1"); code != 200 || body != "app /app/items" {
		t.Fatalf("proxied GET: %d %q", code, body)
	}
	if code, body := s.get(t, s.public+"/elsewhere"); code != 404 || !json.Valid([]byte(body)) {
		t.Errorf("unmatched GET: %d %q, want a 404 JSON answer", code, body)
	}
	if code, body := s.get(t, s.admin+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := s.get(t, s.admin+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d %q", code, body)
	}
	code, metrics := s.get(t, s.admin+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, name := range []string{"spillway_requests_total", "spillway_request_duration_seconds", "spillway_upstream_attempts_total", "spillway_circuit_state"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	code, body := s.get(t, s.admin+"/api/v1/status")
	var status struct {
		Upstreams map[string]struct {
			Breaker struct {
				State       string   `json:"state"`
				FailureRate *float64 `json:"failure_rate"`
			} `json:"breaker"`
			InFlight  *int `json:"in_flight"`
			Instances []struct {
				URL     string `json:"url"`
				Healthy bool   `json:"healthy"`
			} `json:"instances"`
		} `json:"upstreams"`
	}
	if err := json.Unmarshal([]byte(body), &status); code != 200 || err != nil {
		t.Fatalf("/api/v1/status: %d %v %s", code, err, body)
	}
	u, ok := status.Upstreams["app"]
	if !ok || u.Breaker.State != "closed" || u.Breaker.FailureRate == nil || u.InFlight == nil ||
		len(u.Instances) != 1 || u.Instances[0].URL != app.URL || !u.Instances[0].Healthy {
		t.Errorf("/api/v1/status lacks the brief's shape: %s", body)
	}

	eventually(t, "an access log line on stdout", func() bool { return strings.Contains(s.stdout.String(), `"route":"app"`) })
	line, _, _ := strings.Cut(s.stdout.String(), "\n")
	if !json.Valid([]byte(line)) {
		t.Errorf("the access log is not JSON: %q", line)
	}
	for _, want := range []string{"spillway: public " + s.public, "spillway: admin  " + s.admin, "spillway: status " + s.admin + "/api/v1/status",
		"spillway: dashboard " + s.admin + "/dashboard/"} {
		if !strings.Contains(s.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, s.stderr)
		}
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("a graceful stop returns nil, got %v", err)
	}
}

func TestServeReloadsThroughTheAdminAPI(t *testing.T) {
	app, other := upstream(t, "app"), upstream(t, "other")
	s := startServe(t, fmt.Sprintf(oneRoute, app.URL))
	reload := s.admin + "/api/v1/reload"

	if code, _ := s.get(t, s.public+"/other/x"); code != 404 {
		t.Fatalf("/other before the reload: %d, want 404", code)
	}
	writeFile(t, s.file, twoRoutesConfig(app.URL, other.URL))
	for _, token := range []string{"", "wrong"} {
		if code, body, h := s.do(t, http.MethodPost, reload, token, nil); code != 401 || h.Get("WWW-Authenticate") == "" {
			t.Errorf("reload with token %q: %d %s, want 401", token, code, body)
		}
	}
	if code, _ := s.get(t, s.public+"/other/x"); code != 404 {
		t.Fatalf("a refused reload changed the configuration: /other answers %d", code)
	}
	want := `{"reloaded":true,"changes":[{"route":"other","part":"route","detail":"added"},` +
		`{"upstream":"other","part":"upstream","detail":"added"}],"resets":[],"overrides":{"kept":[],"dropped":[]},"restart_required":[]}`
	// The wrong token slowed this address down for a second (429).
	code, body, _ := s.do(t, http.MethodPost, reload, "s3cret", nil)
	for deadline := time.Now().Add(5 * time.Second); code == http.StatusTooManyRequests && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		code, body, _ = s.do(t, http.MethodPost, reload, "s3cret", nil)
	}
	if code != 200 || strings.TrimSpace(body) != want {
		t.Fatalf("reload with the token: %d %s, want 200 %s", code, body, want)
	}
	if code, body := s.get(t, s.public+"/other/x"); code != 200 || body != "other /other/x" {
		t.Fatalf("/other after the reload: %d %q", code, body)
	}

	writeFile(t, s.file, fmt.Sprintf(oneRoute, app.URL)+"bogus_key: 1\n")
	code, body, _ = s.do(t, http.MethodPost, reload, "s3cret", nil)
	if code != 400 || !strings.Contains(body, s.file+":") {
		t.Errorf("reload of an invalid file: %d %s, want 400 naming the file", code, body)
	}
	if code, _ := s.get(t, s.public+"/other/x"); code != 200 {
		t.Errorf("an invalid file replaced the running configuration: /other answers %d", code)
	}

	// A refused reload neither answers nor logs a value that came from the
	// environment (issue 9, item 10).
	t.Setenv("SPILLWAY_TEST_SECRET", "hunter2-reload")
	writeFile(t, s.file, fmt.Sprintf(oneRoute, app.URL)+"    timeout: ${SPILLWAY_TEST_SECRET}\n")
	code, body, _ = s.do(t, http.MethodPost, reload, "s3cret", nil)
	if code != 400 || strings.Contains(body, "hunter2") || !strings.Contains(body, "${SPILLWAY_TEST_SECRET}") {
		t.Errorf("reload of a file with a bad value from the environment: %d %s", code, body)
	}
	if strings.Contains(s.stderr.String(), "hunter2") {
		t.Errorf("the log echoes a value from the environment:\n%s", s.stderr)
	}
}

func TestServeReloadsOnSIGHUP(t *testing.T) {
	app, other := upstream(t, "app"), upstream(t, "other")
	s := startServe(t, fmt.Sprintf(oneRoute, app.URL))

	writeFile(t, s.file, twoRoutesConfig(app.URL, other.URL))
	s.signals <- syscall.SIGHUP
	eventually(t, "/other served after SIGHUP", func() bool {
		code, _ := s.get(t, s.public+"/other/x")
		return code == 200
	})
	// Logged once, with what changed (the line follows the table swap:
	// wait for it).
	eventually(t, "the reload logged", func() bool { return strings.Contains(s.stderr.String(), "configuration reloaded") })
	if n := strings.Count(s.stderr.String(), "configuration reloaded"); n != 1 ||
		!regexp.MustCompile(`configuration reloaded.*changes="\[route other: route: added upstream other: upstream: added\]" resets=\[\]`).MatchString(s.stderr.String()) {
		t.Errorf("the reload is not logged once with its changes:\n%s", s.stderr)
	}

	writeFile(t, s.file, "listen: 127.0.0.1:0\nupstreams:\n  app:\n    instancez: []\n")
	s.signals <- syscall.SIGHUP
	eventually(t, "the refusal logged", func() bool { return strings.Contains(s.stderr.String(), "reload refused") })
	// Reloads run one at a time: the first one's lines are all written.
	if n := strings.Count(s.stderr.String(), "configuration reloaded"); n != 1 {
		t.Errorf("one reload logged %d times, want once:\n%s", n, s.stderr)
	}
	if !regexp.MustCompile(regexp.QuoteMeta(s.file) + `:4:5: `).MatchString(s.stderr.String()) {
		t.Errorf("the refusal does not give FILE:LINE:COL:\n%s", s.stderr)
	}
	if code, body := s.get(t, s.public+"/other/x"); code != 200 {
		t.Errorf("an invalid file replaced the running configuration: %d %q", code, body)
	}
}

func TestServeDrainsInFlightRequestsOnSIGTERM(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "finally")
	}))
	defer slow.Close()
	s := startServe(t, fmt.Sprintf(oneRoute, slow.URL))

	type result struct {
		code int
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := s.client.Get(s.public + "/app/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	<-arrived
	s.signals <- syscall.SIGTERM
	publicAddr := strings.TrimPrefix(s.public, "http://")
	eventually(t, "the public listener closed", func() bool {
		c, err := net.Dial("tcp", publicAddr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-s.done:
		t.Fatalf("serve returned with a request in flight: %v", err)
	default:
	}
	close(release)
	if r := <-got; r.err != nil || r.code != 200 || r.body != "finally" {
		t.Fatalf("the in-flight request: %+v, want 200 finally", r)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("serve after draining: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after the drain")
	}
	s.stopOnce.Do(func() {})
}

func TestServeRefusesAnExposedAdminWithoutAToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "spillway.yaml")
	writeFile(t, file, `listen: 127.0.0.1:0
admin:
  listen: 0.0.0.0:0
upstreams:
  app:
    instances: [http://127.0.0.1:1]
routes:
  - name: app
    match: {path_prefix: /}
    upstream: app
`)
	var stderr spillwaytest.Buffer
	err := Run(context.Background(), Options{File: file}, io.Discard, &stderr, nil, func(string, string) {
		t.Error("serve started")
	})
	// The loader refuses it with the position of admin.listen; CheckListen
	// guards a configuration built any other way.
	if err == nil || !strings.Contains(err.Error()+stderr.String(), "token") {
		t.Fatalf("Run = %v, want a refusal that mentions the token\nstderr:\n%s", err, stderr.String())
	}
}

func TestServeRefusesAnInvalidFileWithItsPositions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "spillway.yaml")
	writeFile(t, file, "listen: 127.0.0.1:0\nupstreamz: {}\n")
	var stderr spillwaytest.Buffer
	err := Run(context.Background(), Options{File: file}, io.Discard, &stderr, nil, nil)
	if err == nil {
		t.Fatal("an invalid file was served")
	}
	if !strings.Contains(stderr.String(), file+":2:1: ") {
		t.Errorf("stderr lacks %s:2:1: ...:\n%s", file, stderr.String())
	}
}

func TestServeAnswers413ToALargeBody(t *testing.T) {
	app := upstream(t, "app")
	s := startServe(t, fmt.Sprintf(oneRoute, app.URL))
	small := strings.Repeat("x", 1024)
	large := small + "x"

	if code, body, _ := s.do(t, http.MethodPost, s.public+"/app/up", "", strings.NewReader(small)); code != 200 {
		t.Errorf("a body of exactly max_body: %d %q", code, body)
	}
	if code, body, _ := s.do(t, http.MethodPost, s.public+"/app/up", "", strings.NewReader(large)); code != 413 || !strings.Contains(body, `"reason":"body_too_large"`) {
		t.Errorf("a declared body over max_body: %d %q, want 413 JSON", code, body)
	}
	// A reader of unknown length is sent chunked: the limit cuts it while
	// the gateway reads it.
	chunked := io.MultiReader(strings.NewReader(large), strings.NewReader(large))
	if code, body, _ := s.do(t, http.MethodPost, s.public+"/app/up", "", chunked); code != 413 || !strings.Contains(body, `"reason":"body_too_large"`) {
		t.Errorf("a chunked body over max_body: %d %q, want 413 JSON", code, body)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	c := spillwaytest.LoopbackCert(t)
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return certFile, keyFile, c.Roots()
}

func TestServeOverTLSWithHTTP2(t *testing.T) {
	app := upstream(t, "app")
	certFile, keyFile, roots := selfSigned(t, t.TempDir())
	s := startServe(t, fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\n", certFile, keyFile)+fmt.Sprintf(oneRoute, app.URL))
	public := strings.Replace(s.public, "http://", "https://", 1)
	if !strings.Contains(s.stderr.String(), "spillway: public "+public) {
		t.Errorf("the start line does not give the https URL %s:\n%s", public, s.stderr)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(public + "/app/secure")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "app /app/secure" || resp.ProtoMajor != 2 {
		t.Errorf("GET over TLS: %d %s %q, want 200 over HTTP/2", resp.StatusCode, resp.Proto, b)
	}
}

func TestServeH2C(t *testing.T) {
	app := upstream(t, "app")
	s := startServe(t, strings.Replace(fmt.Sprintf(oneRoute, app.URL), "server:\n", "server:\n  h2c: true\n", 1))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(s.public + "/app/clear")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "app /app/clear" || resp.ProtoMajor != 2 {
		t.Errorf("GET over h2c: %d %s %q, want 200 over HTTP/2", resp.StatusCode, resp.Proto, b)
	}
	// HTTP/1 is served as before.
	resp, err = http.Get(s.public + "/app/one")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 1 {
		t.Errorf("GET over HTTP/1: %d %s, want 200", resp.StatusCode, resp.Proto)
	}
}

func TestServeStopsWhenItsContextEnds(t *testing.T) {
	app := upstream(t, "app")
	file := filepath.Join(t.TempDir(), "spillway.yaml")
	writeFile(t, file, fmt.Sprintf(oneRoute, app.URL))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{File: file}, io.Discard, io.Discard, nil, func(string, string) { cancel() })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after its context ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10s after its context ended")
	}
}

func TestRestartKeysNameWhatAReloadCannotApply(t *testing.T) {
	base := func() *config.Config {
		return &config.Config{Listen: "127.0.0.1:8080", Server: config.Server{MaxBody: 1 << 20, IdleTimeout: time.Minute}, Admin: config.Admin{Listen: "127.0.0.1:9901"}}
	}
	tests := []struct {
		name   string
		change func(*config.Config)
		want   string
	}{
		{"nothing", func(*config.Config) {}, ""},
		{"routes only", func(c *config.Config) { c.Routes = []*config.Route{{Name: "x"}} }, ""},
		{"max_body, applied by the gateway", func(c *config.Config) { c.Server.MaxBody = 1 }, ""},
		{"listen", func(c *config.Config) { c.Listen = "127.0.0.1:8081" }, "listen"},
		{"tls on", func(c *config.Config) { c.TLS = &config.TLS{CertFile: "c", KeyFile: "k"} }, "tls"},
		{"idle timeout and token, the token applied", func(c *config.Config) { c.Server.IdleTimeout = time.Hour; c.Admin.Token = "t" }, "server"},
		{"named tokens, applied", func(c *config.Config) { c.Admin.Tokens = []config.AdminToken{{Name: "n", Token: "t", Role: "read"}} }, ""},
		{"admin listener", func(c *config.Config) { c.Admin.Listen = "127.0.0.1:9902"; c.Admin.AllowedHosts = []string{"gw"} }, "admin.listen,admin.allowed_hosts"},
		{"queue", func(c *config.Config) { c.Queue.Servers = []string{"nats://n:4222"} }, "queue"},
		{"telemetry on", func(c *config.Config) { c.Telemetry = &config.Telemetry{Traces: config.Traces{SampleRatio: 0.01}} }, "telemetry"},
	}
	for _, tt := range tests {
		next := base()
		tt.change(next)
		if got := strings.Join(restartKeys(base(), next), ","); got != tt.want {
			t.Errorf("%s: restartKeys = %q, want %q", tt.name, got, tt.want)
		}
	}
	withTLS := base()
	withTLS.TLS = &config.TLS{CertFile: "c", KeyFile: "k"}
	sameTLS := base()
	sameTLS.TLS = &config.TLS{CertFile: "c", KeyFile: "k"}
	if got := restartKeys(withTLS, sameTLS); len(got) != 0 {
		t.Errorf("equal tls settings in two files: restartKeys = %v", got)
	}
}

// asyncRoute is a configuration whose route /orders is async, its queue's
// store in the directory %s, delivering to the upstream at %s.
const asyncRoute = `listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
  token: s3cret
queue:
  dir: %s
upstreams:
  orders:
    instances: [%s]
routes:
  - name: orders
    match: {path_prefix: /orders}
    upstream: orders
    async: {backoff: {initial: 10ms, max: 100ms}}
`

func TestServeAsyncRouteStoresDeliversAndStops(t *testing.T) {
	var mu sync.Mutex
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Header.Get("Idempotency-Key")+" "+string(b))
		mu.Unlock()
	}))
	defer up.Close()
	dir := t.TempDir()
	s := startServe(t, fmt.Sprintf(asyncRoute, dir, up.URL))
	code, body, hdr := s.do(t, "POST", s.public+"/orders", "", strings.NewReader("order 1"))
	var a struct{ ID string }
	if code != http.StatusAccepted || json.Unmarshal([]byte(body), &a) != nil || hdr.Get("Location") != "/_spillway/jobs/"+a.ID {
		t.Fatalf("POST: %d %q %v", code, body, hdr)
	}
	eventually(t, "the job delivered", func() bool {
		_, body := s.get(t, s.public+"/_spillway/jobs/"+a.ID)
		return strings.Contains(body, `"state":"delivered"`)
	})
	mu.Lock()
	if len(got) != 1 || got[0] != a.ID+" order 1" {
		t.Errorf("upstream got %q", got)
	}
	mu.Unlock()
	if code, body, _ := s.do(t, "GET", s.admin+"/api/v1/jobs/"+a.ID, "s3cret", nil); code != 200 || !strings.Contains(body, `"delivered"`) {
		t.Errorf("admin job: %d %s", code, body)
	}
	if _, body := s.get(t, s.admin+"/metrics"); !strings.Contains(body, `spillway_queue_deliveries_total{result="delivered",route="orders"} 1`) ||
		!strings.Contains(body, `spillway_queue_pending{route="orders"} 0`) {
		t.Errorf("metrics lack the queue's series")
	}
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.stderr.String(), "embedded NATS JetStream store") {
		t.Errorf("stderr does not say where the store is:\n%s", s.stderr)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
		t.Errorf("the store directory is empty: %v", err)
	}
}

// A reload applies changed admin tokens at once: the old token gets 401,
// the new one works; a changed admin.listen is listed in the answer's
// restart_required (and logged) and the listener stays where it is.
func TestServeReloadRotatesTheAdminToken(t *testing.T) {
	app := upstream(t, "app")
	s := startServe(t, fmt.Sprintf(oneRoute, app.URL))
	routes := s.admin + "/api/v1/routes"
	rotated := strings.Replace(fmt.Sprintf(oneRoute, app.URL), "token: s3cret", "tokens: [{name: ops, token: n3w-token, role: admin}]", 1)
	writeFile(t, s.file, strings.Replace(rotated, "listen: 127.0.0.1:0\n  tokens", "listen: 127.0.0.1:1\n  tokens", 1))
	code, body, _ := s.do(t, http.MethodPost, s.admin+"/api/v1/reload", "s3cret", nil)
	if code != 200 || !strings.Contains(body, `"restart_required":["admin.listen"]`) {
		t.Fatalf("reload: %d %s, want 200 with restart_required [admin.listen]", code, body)
	}
	if code, body, _ := s.do(t, http.MethodGet, routes, "s3cret", nil); code != 401 {
		t.Errorf("the old token after the reload: %d %s, want 401", code, body)
	}
	// The wrong token slowed this address down (429): wait it out.
	eventually(t, "the new token accepted", func() bool {
		code, _, _ := s.do(t, http.MethodGet, routes, "n3w-token", nil)
		return code == 200
	})
	if !strings.Contains(s.stderr.String(), "changed settings take effect at the next restart") ||
		!strings.Contains(s.stderr.String(), "keys=admin.listen") {
		t.Errorf("the restart-only change is not logged:\n%s", s.stderr)
	}
}

// A reload that would leave the admin listener, running off loopback, with
// no token is refused as an invalid file (400 through the API), and the
// tokens in use stay.
func TestReloadRefusesToRemoveTheLastTokenOffLoopback(t *testing.T) {
	running := &config.Config{Admin: config.Admin{Listen: "0.0.0.0:9901", Token: "s3cret"}}
	next := &config.Config{Admin: config.Admin{Listen: "127.0.0.1:9901"}} // moved to loopback: only at the next start
	set := admin.NewTokenSet(running.Admin.Token, nil)
	var logs spillwaytest.Buffer
	r := &reloader{load: func() (*config.Config, []config.Warning, error) { return next, nil, nil }, file: "s.yaml",
		tokens: set, log: slog.New(slog.NewTextHandler(&logs, nil)), started: running} // no gateway: refused before it
	_, err := r.reload()
	if err == nil || !isConfigError(err) || !strings.Contains(err.Error(), "0.0.0.0:9901") || !strings.Contains(err.Error(), "token") {
		t.Fatalf("reload = %v, want a refusal naming the running address and the token", err)
	}
	if !strings.Contains(logs.String(), "reload refused") {
		t.Errorf("the refusal is not logged:\n%s", logs.String())
	}
	// Past the token check, a handler with no Reload answers 501.
	cfg, _, err := config.Parse("s.yaml", []byte(fmt.Sprintf(oneRoute, "http://127.0.0.1:1")), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h := admin.Handler(g, admin.Options{TokenSet: set})
	req := httptest.NewRequest(http.MethodPost, "http://localhost/api/v1/reload", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotImplemented {
		t.Errorf("the running token after the refused reload: %d, want it still accepted (501)", rec.Code)
	}
}
