package gateway_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"

	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// backend is an upstream instance on 127.0.0.1 whose answer a test changes.
type backend struct {
	*httptest.Server
	hits    atomic.Int64
	status  atomic.Int64 // 0: 200
	body    string
	mu      sync.Mutex
	lastReq *http.Request
}

func newBackend(t *testing.T, body string) *backend {
	t.Helper()
	b := &backend{body: body}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		b.mu.Lock()
		b.lastReq = r.Clone(r.Context())
		b.mu.Unlock()
		if s := b.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, b.body)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) last() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastReq
}

// harness is a gateway behind a real server, with its access log.
type harness struct {
	gw  *gateway.Gateway
	srv *httptest.Server
	log *spillwaytest.Buffer
}

// parse resolves a YAML configuration; vars replaces ${NAME} references.
func parse(t *testing.T, yaml string, vars map[string]string) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse("test.yaml", []byte(yaml), func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func start(t *testing.T, cfg *config.Config) *harness {
	t.Helper()
	return startLogged(t, cfg, io.Discard)
}

// startLogged is start with the gateway's log into logs.
func startLogged(t *testing.T, cfg *config.Config, logs io.Writer) *harness {
	t.Helper()
	h := &harness{log: &spillwaytest.Buffer{}}
	var err error
	h.gw, err = gateway.New(cfg, gateway.Options{
		AccessLog: slog.New(slog.NewJSONHandler(h.log, nil)),
		Logger:    slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.gw)
	t.Cleanup(func() {
		h.srv.Close()
		h.gw.Close()
	})
	return h
}

// do sends a request through the gateway and returns the answer, body read.
func (h *harness) do(t *testing.T, method, path string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, string(b)
}
