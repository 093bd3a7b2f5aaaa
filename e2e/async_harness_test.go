package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/spillway-dev/spillway/spillwayhttp"
)

// The async harness runs the real binary:
//
//	test clients → `spillway serve` (async routes, queue) → recorder (httptest, in the test process)
//	                       ↕ embedded NATS JetStream in a temp dir, or an in-process nats-server on 127.0.0.1
//
// The gateway is a child process so that it can be killed with SIGKILL and
// restarted on the same store directory. The recorder is the deduping
// upstream: it applies each Idempotency-Key once and counts every raw
// delivery, so a test can tell a lost job (never applied), a duplicate that
// a deduping upstream absorbs (a redelivery) and one it cannot (the same
// body under two keys).

// adminToken is the admin API's Bearer token in every async configuration.
const adminToken = "e2e-token"

// buildSpillway builds cmd/spillway from the root module into dir.
func buildSpillway(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "spillway")
	build := exec.Command("go", "build", "-o", bin, "./cmd/spillway")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/spillway: %v\n%s", err, out)
	}
	return bin
}

// gwProc is one running `spillway serve -c FILE` process.
type gwProc struct {
	cmd    *exec.Cmd
	public string // http://127.0.0.1:port of the public listener
	admin  string // http://127.0.0.1:port of the admin listener
	log    *addrWatcher
	exited chan struct{} // closed once the process has exited and been waited for
	err    error         // Wait's answer, once exited is closed
}

// addrWatcher is the process's stderr: kept whole for failure messages, and
// scanned for the listeners' addresses that serve prints once it listens.
type addrWatcher struct {
	mu            sync.Mutex
	buf           bytes.Buffer
	public, admin string
	ready         chan struct{} // closed when both addresses are known
}

func (w *addrWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.public != "" && w.admin != "" {
		return len(p), nil
	}
	sc := bufio.NewScanner(bytes.NewReader(w.buf.Bytes()))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "spillway: public "); ok {
			w.public = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "spillway: admin "); ok {
			w.admin = strings.TrimSpace(v)
		}
	}
	if w.public != "" && w.admin != "" {
		close(w.ready)
	}
	return len(p), nil
}

func (w *addrWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startGW starts `bin serve -c cfg` and waits until it prints both
// listeners' addresses (the queue is open by then). The process is killed
// when the test ends if it still runs, and dies with the test process
// (Pdeathsig) however that ends.
func startGW(t *testing.T, bin, cfg string) *gwProc {
	t.Helper()
	w := &addrWatcher{ready: make(chan struct{})}
	cmd := exec.Command(bin, "serve", "-c", cfg)
	cmd.Stderr = w // stdout (the access log) goes to /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start spillway: %v", err)
	}
	p := &gwProc{cmd: cmd, log: w, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("spillway serve -c %s (stderr, last 4 KiB):\n%s", cfg, tail(w.String(), 4<<10))
		}
	})
	select {
	case <-w.ready:
	case <-p.exited:
		t.Fatalf("spillway exited before listening: %v\n%s", p.err, w)
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("spillway did not listen within 30s\n%s", w)
	}
	p.public, p.admin = w.public, w.admin
	return p
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// kill sends SIGKILL (kill -9) and waits for the process to be reaped.
// Safe to call on an exited process.
func (p *gwProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// term sends SIGTERM and waits for a clean exit (status 0): the gateway
// drains and closes its queue.
func (p *gwProc) term(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("spillway after SIGTERM: %v\n%s", p.err, p.log)
		}
	case <-time.After(30 * time.Second):
		p.kill()
		t.Errorf("spillway did not exit within 30s of SIGTERM\n%s", p.log)
	}
}

// asyncConfig is a test's gateway file: one upstream svc and async routes.
type asyncConfig struct {
	queue     string   // the lines under queue:, indented by 2
	instances []string // the upstream svc's instances
	breaker   string   // svc's breaker: flow mapping; default one that never opens
	routes    string   // the routes: list, indented by 2
}

// write renders c into dir/name.yaml and returns the path. Both listeners
// bind 127.0.0.1:0 (serve prints the addresses).
func (c asyncConfig) write(t *testing.T, dir, name string) string {
	t.Helper()
	if c.breaker == "" {
		c.breaker = "{window: {type: count, size: 100}, min_calls: 100, failure_rate: 100%}"
	}
	yml := fmt.Sprintf(`listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
  token: %s
queue:
%s
upstreams:
  svc:
    instances: [%s]
    timeouts: {connect: 1s, attempt: 2s, total: 5s}
    retry: {max_attempts: 1}
    breaker: %s
    outlier: {consecutive_failures: 0}
routes:
%s`, adminToken, c.queue, strings.Join(c.instances, ", "), c.breaker, c.routes)
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// delivery is one request the recorder received.
type delivery struct {
	listener int // which of the recorder's listeners got it
	method   string
	path     string // the request's path
	query    string // its raw query
	header   http.Header
	key      string // its Idempotency-Key
	jobID    string // its Spillway-Job-Id
	body     string
	status   int // what the recorder answered
}

// recorder is the upstream of the async tests: a deduping HTTP service on
// one or more loopback listeners (one per gateway in the scale-out test),
// sharing one record. A delivery answered 2xx applies its Idempotency-Key
// the first time; later ones with the same key are redeliveries.
type recorder struct {
	urls []string

	// answer decides the status of a delivery; nil: 200. It must not block.
	answer atomic.Pointer[func(d delivery) int]

	mu         sync.Mutex
	deliveries []delivery
	applied    map[string]delivery // by key: the first delivery answered 2xx
}

// newRecorder starts a recorder with n listeners on 127.0.0.1:0, closed
// when the test ends.
func newRecorder(t *testing.T, n int) *recorder {
	t.Helper()
	r := &recorder{applied: map[string]delivery{}}
	for i := range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			d := delivery{listener: i, method: req.Method, path: req.URL.Path, query: req.URL.RawQuery, header: req.Header, key: req.Header.Get(spillwayhttp.IdempotencyKeyHeader),
				jobID: req.Header.Get("Spillway-Job-Id"), body: string(body), status: http.StatusOK}
			if f := r.answer.Load(); f != nil {
				d.status = (*f)(d)
			}
			r.record(d)
			w.WriteHeader(d.status)
		}))
		t.Cleanup(srv.Close)
		r.urls = append(r.urls, srv.URL)
	}
	return r
}

// setAnswer makes f decide the status of every later delivery.
func (r *recorder) setAnswer(f func(d delivery) int) { r.answer.Store(&f) }

func (r *recorder) record(d delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries = append(r.deliveries, d)
	if d.status/100 == 2 && d.key != "" {
		if _, done := r.applied[d.key]; !done {
			r.applied[d.key] = d
		}
	}
}

// raw returns how many deliveries the recorder received, and how many of
// them it answered 2xx.
func (r *recorder) raw() (all, ok int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.deliveries {
		if d.status/100 == 2 {
			ok++
		}
	}
	return len(r.deliveries), ok
}

// appliedKey returns the first successful delivery of key.
func (r *recorder) appliedKey(key string) (delivery, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.applied[key]
	return d, ok
}

// snapshot returns a copy of every delivery so far.
func (r *recorder) snapshot() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.deliveries...)
}

// keysPerBody maps each body delivered with a 2xx to the distinct keys it
// was applied under: more than one would be applied twice by a deduping
// upstream.
func (r *recorder) keysPerBody() map[string]map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]map[string]bool{}
	for _, d := range r.deliveries {
		if d.status/100 != 2 {
			continue
		}
		if m[d.body] == nil {
			m[d.body] = map[string]bool{}
		}
		m[d.body][d.key] = true
	}
	return m
}

// accepted is a job the gateway answered 202 for: a promise.
type accepted struct {
	id, key, body, path string
	duplicate           bool
}

// deliveryKey is the Idempotency-Key the upstream must see for j: the
// client's, or the job id.
func (j accepted) deliveryKey() string {
	if j.key != "" {
		return j.key
	}
	return j.id
}

// postAnswer is the gateway's answer to a POST on an async route.
type postAnswer struct {
	status    int
	reason    string // Spillway-Reason
	location  string
	id        string
	statusURL string
	dup       bool
	took      time.Duration
}

// asyncClient posts to async routes and reads job statuses.
type asyncClient struct {
	hc *http.Client
}

func newAsyncClient(t *testing.T) *asyncClient {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &asyncClient{hc: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

// post sends body to url with an optional Idempotency-Key. An error means
// no answer: the job's fate is unknown.
// header, if given, is name-value pairs added to the request.
func (c *asyncClient) post(ctx context.Context, url, body, key string, header ...string) (postAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return postAnswer{}, err
	}
	req.Header.Set("Content-Type", "text/plain")
	if key != "" {
		req.Header.Set(spillwayhttp.IdempotencyKeyHeader, key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return postAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return postAnswer{}, err
	}
	a := postAnswer{status: resp.StatusCode, reason: resp.Header.Get(spillwayhttp.ReasonHeader),
		location: resp.Header.Get("Location"), took: time.Since(start)}
	if a.status == http.StatusAccepted {
		var j struct {
			ID        string `json:"id"`
			StatusURL string `json:"status_url"`
			Duplicate bool   `json:"duplicate"`
		}
		if err := json.Unmarshal(b, &j); err != nil {
			return a, fmt.Errorf("202 with a body that is not the job's JSON: %w: %q", err, b)
		}
		a.id, a.statusURL, a.dup = j.ID, j.StatusURL, j.Duplicate
	}
	return a, nil
}

// checkAccepted checks the shape of a 202: a 32-hex id, the Location and
// status_url naming it.
func checkAccepted(t *testing.T, a postAnswer) {
	t.Helper()
	if len(a.id) != 32 || strings.Trim(a.id, "0123456789abcdef") != "" {
		t.Errorf("job id %q: want 32 lowercase hex digits", a.id)
	}
	if want := "/_spillway/jobs/" + a.id; a.location != want || !strings.HasSuffix(a.statusURL, want) {
		t.Errorf("Location %q, status_url %q: want %s", a.location, a.statusURL, want)
	}
}

// jobStatus is GET /_spillway/jobs/<id>.
type jobStatus struct {
	ID         string `json:"id"`
	Queue      string `json:"queue"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"last_status"`
	LastReason string `json:"last_reason"`
}

// status reads a job's status at url: the public /_spillway/jobs/<id>, or
// the admin API's /api/v1/jobs/<id> (the token is sent either way).
func (c *asyncClient) status(ctx context.Context, url string) (jobStatus, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return jobStatus{}, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := c.hc.Do(req)
	if err != nil {
		return jobStatus{}, 0, err
	}
	defer resp.Body.Close()
	var s jobStatus
	if resp.StatusCode == http.StatusOK {
		err = json.NewDecoder(resp.Body).Decode(&s)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	return s, resp.StatusCode, err
}

// admin calls the admin API with the Bearer token (or without, when token
// is false) and returns the status and body.
func (c *asyncClient) admin(ctx context.Context, method, url string, token bool) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token {
		req.Header.Set("Authorization", "Bearer "+adminToken)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// waitDelivered polls the status of every job in jobs on base (a public
// listener) until each is "delivered", failing the test at the deadline.
func (c *asyncClient) waitDelivered(t *testing.T, base string, jobs []accepted, d time.Duration) {
	t.Helper()
	left := append([]accepted(nil), jobs...)
	var last jobStatus
	within(t, d, "every accepted job to be delivered", func() bool {
		for len(left) > 0 {
			s, code, err := c.status(t.Context(), base+"/_spillway/jobs/"+left[0].id)
			if err != nil || code != http.StatusOK || s.State != "delivered" {
				last = s
				return false
			}
			left = left[1:]
		}
		return true
	}, func() string { return fmt.Sprintf("%d left; %+v", len(left), last) })
}

// within polls cond every 20ms until it holds, failing the test after d
// with what and, if given, the state detail describes.
func within(t *testing.T, d time.Duration, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			for _, f := range detail {
				msg += ": " + f()
			}
			t.Fatalf("timed out after %s waiting for %s%s", d, what, msg)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s", what)
		}
	}
}

// metric sums the samples of name whose labels include want, from a
// Prometheus text exposition at url; found is false when there is none.
func metric(ctx context.Context, url, name string, want map[string]string) (sum float64, found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		labels, value := "", rest
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			labels, value = rest[1:end], rest[end+1:]
		}
		for k, v := range want {
			if !strings.Contains(labels, k+`="`+v+`"`) {
				continue next
			}
		}
		f, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return 0, false, err
		}
		sum += f
		found = true
	}
	return sum, found, sc.Err()
}

// idsIn collects every "id" string anywhere in a JSON document.
func idsIn(b []byte) map[string]bool {
	var v any
	ids := map[string]bool{}
	if json.Unmarshal(b, &v) != nil {
		return ids
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && strings.EqualFold(k, "id") {
					ids[s] = true
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return ids
}

// natsServer is an external NATS server with JetStream, in the test
// process, on 127.0.0.1.
type natsServer struct {
	*server.Server
	port int
	dir  string
}

// startNATS starts a NATS server with JetStream storing in dir, on port
// (-1: a random one). It is shut down, and waited for, when the test ends.
func startNATS(t *testing.T, port int, dir string) *natsServer {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: "e2e",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		t.Fatal("nats server not ready within 10s")
	}
	ns := &natsServer{Server: s, port: s.Addr().(*net.TCPAddr).Port, dir: dir}
	t.Cleanup(ns.stop)
	return ns
}

// stop shuts the server down and waits until its goroutines are gone.
// Idempotent.
func (n *natsServer) stop() {
	n.Shutdown()
	n.WaitForShutdown()
}

// url is the server's client URL.
func (n *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }
