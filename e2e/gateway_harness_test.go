package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spillway-dev/spillway/config"
	"github.com/spillway-dev/spillway/gateway"
	"github.com/spillway-dev/spillway/spillwayhttp"

	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// The gateway harness is four pieces on loopback:
//
//	test client → gateway (httptest server, gateway.New) → counting base → toxiproxy → upstream "svc"
//	                                                      → counting base → replica (no proxy)
//
// The gateway's Options.Base is a real *http.Transport whose attempts, dials
// and open connections are counted per address: with the proxy disabled an
// attempt never reaches a handler, so the base is where "upstream attempts"
// are counted during an outage. The upstream counts the requests its handlers
// saw and the state of every connection it accepted.

// gwConfig is the gateway's configuration; {{...}} are filled in by
// newGateway from the proxy's and the replica's addresses and from the
// test's overrides (see gwDefaults). Every policy is test-sized: attempt
// timeout 100ms, breaker judging a count window of 10 attempts from
// min_calls, open for 200ms with one half-open probe, a retry budget over
// 30s (longer than any test) so that nothing expires from it while a test
// runs. Outlier ejection is off: with a single instance it would turn
// failures into no_healthy_instance and hide what the breaker and the
// budget do, which is what these tests measure.
const gwConfig = `
upstreams:
  svc:
    instances: [http://{{proxy}}]
    timeouts: {connect: 1s, attempt: 100ms, total: 2s}
    retry:
      max_attempts: {{max_attempts}}
      backoff: {initial: 1ms, max: 5ms}
      budget: {ratio: {{ratio}}, window: 30s, min_per_second: {{min_per_second}}}
    breaker:
      mode: {{mode}}
      window: {type: count, size: 10}
      min_calls: {{min_calls}}
      failure_rate: {{failure_rate}}
      open_for: 200ms
      max_open_for: 200ms
      half_open_probes: 1
    outlier: {consecutive_failures: 0}
  replica:
    instances: [{{replica}}]
    timeouts: {connect: 1s, attempt: 1s, total: 2s}
    outlier: {consecutive_failures: 0}
routes:
  - name: static
    match: {path_prefix: /fb}
    strip_prefix: true
    upstream: svc
    fallback:
      - static: {status: 200, headers: {Content-Type: application/json}, body: '{"items":[]}'}
  - name: replicated
    match: {path_prefix: /rep}
    strip_prefix: true
    upstream: svc
    fallback:
      - upstream: replica
      - static: {status: 200, headers: {Content-Type: application/json}, body: '{"items":[]}'}
  - name: raw
    match: {path_prefix: /raw}
    strip_prefix: true
    upstream: svc
`

// gwDefaults are the values of gwConfig's placeholders unless a test
// overrides them. With ratio 0.2 and min_per_second 0.2 over the 30s
// window, the budget allows 0.2 × requests + 6 retries (+ 15 × 0.2 of the
// budget's documented slack).
var gwDefaults = map[string]string{
	"max_attempts":   "3",
	"ratio":          "0.2",
	"min_per_second": "0.2",
	"mode":           "closed",
	"min_calls":      "5",
	"failure_rate":   "50%",
}

// The budget of gwDefaults, for the bounds the tests assert.
const (
	gwRatio  = 0.2
	gwFloor  = 0.2 * 30 // min_per_second × window seconds
	gwSlack  = 15 * gwRatio
	gwMinCls = 5
)

const staticBody = `{"items":[]}`

// gwBase is the gateway's base round tripper: a real *http.Transport
// whose attempts, dials and still-open connections are counted by address.
type gwBase struct {
	*http.Transport
	mu       sync.Mutex
	attempts map[string]int
	dials    map[string]int
	open     map[string]int
}

func newGWBase() *gwBase {
	b := &gwBase{attempts: map[string]int{}, dials: map[string]int{}, open: map[string]int{}}
	b.Transport = spillwayhttp.NewBaseTransport(spillwayhttp.Timeouts{Connect: time.Second, ResponseHeader: 5 * time.Second})
	dial := b.Transport.DialContext
	b.Transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		b.mu.Lock()
		b.dials[addr]++
		b.mu.Unlock()
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		b.open[addr]++
		b.mu.Unlock()
		return &countedConn{Conn: c, b: b, addr: addr}, nil
	}
	return b
}

func (b *gwBase) RoundTrip(r *http.Request) (*http.Response, error) {
	b.mu.Lock()
	b.attempts[r.URL.Host]++
	b.mu.Unlock()
	return b.Transport.RoundTrip(r)
}

// counts returns the attempts sent to addr, the connections dialled to it
// and those of them not closed yet.
func (b *gwBase) counts(addr string) (attempts, dials, open int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.attempts[addr], b.dials[addr], b.open[addr]
}

func (b *gwBase) openTotal() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, o := range b.open {
		n += o
	}
	return n
}

// countedConn is a dialled connection that tells its base when it closes.
type countedConn struct {
	net.Conn
	b    *gwBase
	addr string
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.b.mu.Lock()
		c.b.open[c.addr]--
		c.b.mu.Unlock()
	})
	return c.Conn.Close()
}

// gwFixture is one test's upstream behind toxiproxy, replica, gateway and
// client.
type gwFixture struct {
	up      *upstream // "svc", behind px
	px      *proxy
	replica *upstream
	base    *gwBase
	gw      *gateway.Gateway
	srv     *httptest.Server     // the gateway's public listener
	serr    *spillwaytest.Buffer // the listener's error log (panics land here)
	client  *http.Client
	flaky   atomic.Int64 // hits on /flaky
	started time.Time
}

// elapsed is the time since the fixture started.
func (f *gwFixture) elapsed() time.Duration { return time.Since(f.started) }

// newGateway starts a fixture with gwConfig and the overrides in set
// (placeholder → value). When the test ends, after every piece is stopped,
// it checks that no goroutine started by the test is left, tolerating leaks
// (see toxiproxyLimitDataLeak).
func newGateway(t *testing.T, set map[string]string, leaks ...goleak.Option) *gwFixture {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, append(leaks, before)...) })

	f := &gwFixture{base: newGWBase(), serr: &spillwaytest.Buffer{}, started: time.Now()}
	mux := routes()
	mux.HandleFunc("/flaky", func(w http.ResponseWriter, r *http.Request) {
		// Every other request answers 503, the first one included.
		if f.flaky.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	f.up = newUpstream(t, mux)
	f.px = newProxy(t, f.up.srv.Listener.Addr().String())
	rmux := http.NewServeMux()
	rmux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "replica") })
	f.replica = newUpstream(t, rmux)

	vals := map[string]string{}
	for k, v := range gwDefaults {
		vals[k] = v
	}
	for k, v := range set {
		vals[k] = v
	}
	vals["proxy"], vals["replica"] = f.px.addr, f.replica.srv.URL
	var pairs []string
	for k, v := range vals {
		pairs = append(pairs, "{{"+k+"}}", v)
	}
	yml := strings.NewReplacer(pairs...).Replace(gwConfig)
	cfg, warnings, err := config.Parse("gateway.yaml", []byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yml)
	}
	for _, w := range warnings {
		if vals["mode"] != "disabled" {
			t.Fatalf("unexpected warning: %s", w)
		}
	}
	f.gw, err = gateway.New(cfg, gateway.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Base:   f.base,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(f.gw)
	f.srv.Config.ErrorLog = log.New(f.serr, "", 0)
	f.srv.Start()
	f.client = &http.Client{Transport: &http.Transport{}}
	t.Cleanup(f.close)
	return f
}

// close stops the client, the gateway's listener and the gateway, and drops
// the base's idle connections. Safe to call twice.
func (f *gwFixture) close() {
	f.client.CloseIdleConnections()
	f.srv.Close()
	f.gw.Close()
	f.base.CloseIdleConnections()
}

// answer is what the test client got from the gateway.
type answer struct {
	status int
	header http.Header
	body   string
	err    error // the request's, or the body read's
	took   time.Duration
}

func (a answer) fallback() string { return a.header.Get(gateway.FallbackHeader) }

// fromUpstream reports whether a is the upstream's own 200 "ok".
func (a answer) fromUpstream() bool {
	return a.err == nil && a.status == http.StatusOK && a.fallback() == "" && a.body == "ok"
}

// isStatic reports whether a is the route's static fallback.
func (a answer) isStatic() bool {
	return a.err == nil && a.status == http.StatusOK && a.fallback() == gateway.FallbackStatic && a.body == staticBody
}

// errorReason returns the reason of a brief-shaped error answer: status
// 503 or 504, Spillway-Reason equal to the JSON body's error.reason, and
// error.upstream "svc". It returns "" for anything else.
func (a answer) errorReason() string {
	if a.err != nil || (a.status != http.StatusServiceUnavailable && a.status != http.StatusGatewayTimeout) {
		return ""
	}
	var body struct {
		Error struct {
			Reason   string `json:"reason"`
			Upstream string `json:"upstream"`
			Message  string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(a.body), &body) != nil || body.Error.Reason == "" ||
		body.Error.Reason != a.header.Get(spillwayhttp.ReasonHeader) || body.Error.Upstream != "svc" {
		return ""
	}
	return body.Error.Reason
}

func (a answer) String() string {
	return strings.TrimSpace(
		strings.Join([]string{http.StatusText(a.status), a.header.Get(gateway.FallbackHeader),
			a.header.Get(spillwayhttp.ReasonHeader), a.body, errString(a.err)}, " | "))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// get sends GET path to the gateway and reads the whole answer.
func (f *gwFixture) get(t *testing.T, path string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := f.client.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(body), err: err, took: time.Since(start)}
}

// svc returns the attempts the gateway sent to the proxied upstream, the
// connections it dialled to it and those still open.
func (f *gwFixture) svc() (attempts, dials, open int) { return f.base.counts(f.px.addr) }

// breaker returns the state of svc's breaker, as GET /api/v1/status shows it.
func (f *gwFixture) breaker() gateway.BreakerStatus { return f.gw.Status().Upstreams["svc"].Breaker }

// metric sums the samples of the counter name whose labels include want.
func (f *gwFixture) metric(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := f.gw.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// noLeaks stops the gateway side (client, listener, gateway, base) and then
// checks that no connection is left: every connection the gateway dialled is
// closed, and, once the toxics that hold data are removed, the upstream and
// the replica see every connection they accepted closed. It also checks that
// no handler panicked (an aborted body is http.ErrAbortHandler, which the
// server does not log).
func (f *gwFixture) noLeaks(t *testing.T) {
	t.Helper()
	f.close()
	eventually(t, "the gateway's upstream connections to close", func() bool { return f.base.openTotal() == 0 })
	f.px.Toxics.ResetToxics(context.Background())
	for name, u := range map[string]*upstream{"svc": f.up, "replica": f.replica} {
		eventually(t, name+"'s connections to close", func() bool {
			_, open, _ := u.connections()
			return open == 0
		})
	}
	if s := f.serr.String(); strings.Contains(s, "panic") {
		t.Errorf("the gateway's listener logged a panic:\n%s", s)
	}
}
