package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spillway-dev/spillway/internal/natstest"

	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":             "nats://127.0.0.1:4222",
		"nats://alice:hunter2@n1:4222":      "nats://REDACTED@n1:4222",
		"tls://s3cr3t-token@n1:4222":        "tls://REDACTED@n1:4222",
		"nats://alice:pa/ss@word@n1:4222":   "nats://REDACTED@n1:4222", // a '/' before the '@' makes it no URL
		"alice:hunter2@n1:4222":             "REDACTED@n1:4222",
		"ws://u:p@n1:8080/path?x=1":         "ws://REDACTED@n1:8080/path?x=1",
		"nats://alice:hunter2@n1:4222/a@b?": "nats://REDACTED@b?", // over-hiding is harmless
		"":                                  "",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConnectErrorHidesCredentials: the error of a failed connection
// names the servers without their user information, even when the client
// library quotes a URL that does not parse.
func TestConnectErrorHidesCredentials(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	for _, servers := range [][]string{
		{"nats://alice:hunter2@" + refused, "nats://s3cr3t-token@" + refused},
		{"nats://alice:hunter2@127.0.0.1:port"}, // the URL parser quotes it
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		q, err := Open(ctx, Config{Servers: servers, Logger: slog.New(slog.DiscardHandler)})
		cancel()
		if err == nil {
			q.Close()
			t.Fatalf("Open(%q) succeeded", servers)
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("Open(%q) = %v, want ErrUnavailable", servers, err)
		}
		for _, secret := range []string{"alice", "hunter2", "s3cr3t-token"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows %q: %v", secret, err)
			}
		}
		if !strings.Contains(err.Error(), "nats://REDACTED@127.0.0.1:") {
			t.Errorf("the error does not name the server: %v", err)
		}
	}
}

// TestConnectionLogsHideCredentials: the lines logged when the connection
// is lost and when it comes back hold no user information of the URL (here
// a token in the user's place, which nats.go's own redaction shows).
func TestConnectionLogsHideCredentials(t *testing.T) {
	const token = "s3cr3t-token"
	opts := server.Options{Host: "127.0.0.1", Port: natstest.FreePorts(t, 1)[0], Authorization: token, NoSigs: true, NoLog: true}
	start := func() *server.Server {
		o := opts // NewServer keeps what it is given
		return natstest.Start(t, &o)
	}
	s := start()
	// Without JetStream Open cannot finish, but it has connected and
	// logs what the connection does.
	var log spillwaytest.Buffer
	q := &queueImpl{cfg: Config{Servers: []string{fmt.Sprintf("nats://%s@127.0.0.1:%d", token, opts.Port)}},
		log: slog.New(slog.NewTextHandler(&log, nil))}
	q.cfg.setDefaults()
	q.redact = secretsReplacer(q.cfg.Servers)
	if err := q.dial(time.Second); err != nil {
		t.Fatal(err)
	}
	defer q.shutdown()
	s.Shutdown()
	s.WaitForShutdown()
	eventually(t, "the disconnection logged", func() bool { return strings.Contains(log.String(), "disconnected from NATS") })
	start()
	within(t, 15*time.Second, "the reconnection logged", func() bool { return strings.Contains(log.String(), "reconnected to NATS") })
	if strings.Contains(log.String(), token) {
		t.Errorf("the log shows the token:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "REDACTED@127.0.0.1") {
		t.Errorf("the log does not name the server:\n%s", log.String())
	}
}

// TestStallGuard: a reconnection is forced by stallLimit publishes in a row
// without an answer within the window; an answer in between, or a run
// spread over more than the window, forces none; and two forced
// reconnections are at least forceCooldown apart.
func TestStallGuard(t *testing.T) {
	const window = 10 * time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var g stallGuard
	// One slow acknowledgement, then answers: nothing.
	if g.stalled(at(0), window) {
		t.Fatal("forced after one publish without an answer")
	}
	g.answered()
	if g.stalled(at(time.Second), window) || g.stalled(at(2*time.Second), window) {
		t.Fatal("forced after an answer broke the run")
	}
	g.answered()
	// A run spread beyond the window: each stall starts a new run.
	for i := range 5 {
		if g.stalled(at(time.Minute+time.Duration(i)*(window/2+time.Second)), window) {
			t.Fatalf("forced by stall %d of a run spread beyond the window", i)
		}
	}
	g.answered()
	// Three in a row within the window: forced, once.
	start := 2 * time.Minute
	for i := range stallLimit {
		forced := g.stalled(at(start+time.Duration(i)*time.Second), window)
		if forced != (i == stallLimit-1) {
			t.Fatalf("stall %d: forced %v", i+1, forced)
		}
	}
	// The next run within the cooldown forces nothing, the one after does.
	forcedAt := start + (stallLimit-1)*time.Second
	for i := range 2 * stallLimit {
		if g.stalled(at(forcedAt+forceCooldown-time.Second+time.Duration(i)*time.Millisecond), window) {
			t.Fatalf("forced within the cooldown (stall %d)", i+1)
		}
	}
	// The run went on through the cooldown: the first stall after it
	// forces.
	if !g.stalled(at(forcedAt+forceCooldown), window) {
		t.Fatal("not forced after the cooldown")
	}
}

func TestNoAnswer(t *testing.T) {
	const timeout = 2 * time.Second
	apiErr := &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "store failed"}
	for _, tt := range []struct {
		name   string
		err    error
		waited time.Duration
		want   bool
	}{
		{"own timeout", fmt.Errorf("publish: %w", context.DeadlineExceeded), timeout, true},
		{"nats timeout", nats.ErrTimeout, timeout, true},
		{"no responders", jetstream.ErrNoStreamResponse, time.Millisecond, true},
		{"a caller's short deadline", context.DeadlineExceeded, timeout / 4, false},
		{"a caller gone", context.Canceled, timeout, false},
		{"the server refused", apiErr, time.Millisecond, false},
		{"disconnected", nats.ErrConnectionReconnecting, 0, false},
	} {
		if got := noAnswer(tt.err, tt.waited, timeout); got != tt.want {
			t.Errorf("%s: noAnswer = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// freezer is a TCP proxy to one server that can stop forwarding in both
// directions while keeping the connections open: a stalled server as its
// clients see it.
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen chan struct{} // closed when thawed; nil while not frozen
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	f.wg.Go(f.accept)
	t.Cleanup(f.close)
	return f
}

func (f *freezer) url() string { return "nats://" + f.ln.Addr().String() }

func (f *freezer) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, c, s)
		f.mu.Unlock()
		f.wg.Go(func() { f.pipe(s, c) })
		f.wg.Go(func() { f.pipe(c, s) })
	}
}

// pipe copies from src to dst, holding each chunk while frozen.
func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		f.mu.Lock()
		thaw := f.frozen
		f.mu.Unlock()
		if thaw != nil {
			<-thaw
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen == nil {
		f.frozen = make(chan struct{})
	}
}

func (f *freezer) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen != nil {
		close(f.frozen)
		f.frozen = nil
	}
}

func (f *freezer) close() {
	f.thaw()
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// TestStalledServerIsLeft: a server that keeps the connection open but
// answers nothing (behind a frozen proxy) is left for another node of the
// cluster (n1 itself, reached directly, counts: its pool holds the
// discovered URLs) after three publishes without an answer, even with pings too
// rare to notice (PingInterval 1m here, so that only the publishes can
// tell). Intake resumes within a few store timeouts.
func TestStalledServerIsLeft(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	f := newFreezer(t, strings.TrimPrefix(c.URLs()[0], "nats://"))
	var log spillwaytest.Buffer
	openCtx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const timeout = 500 * time.Millisecond
	q, err := Open(openCtx, Config{Servers: []string{f.url()}, Replicas: 3, Prefix: "STALL", Timeout: timeout,
		PingInterval: time.Minute, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := t.Context()
	within(t, 15*time.Second, "a job stored", func() bool {
		_, _, err := q.Enqueue(ctx, "orders", Message{Data: []byte("before")})
		return err == nil
	})
	if got := q.q.nc.ConnectedUrl(); got != f.url() {
		t.Fatalf("connected to %q, want the proxy", got)
	}

	f.freeze()
	start := time.Now()
	failed := 0
	within(t, 10*time.Second, "a job stored through another server", func() bool {
		_, _, err := q.Enqueue(ctx, "orders", Message{Data: []byte("after")})
		if err != nil {
			failed++
			return false
		}
		return true
	})
	took := time.Since(start)
	t.Logf("intake resumed on %s after %v and %d refusals", q.q.nc.ConnectedUrl(), took.Round(time.Millisecond), failed)
	if got := q.q.nc.ConnectedUrl(); got == f.url() || got == "" {
		t.Errorf("connected to %q after the stall, want a server not behind the proxy", got)
	}
	// stallLimit timeouts and the reconnection: n1 itself is healthy, its
	// streams keep their leaders.
	if bound := (stallLimit + 2) * timeout; took > bound {
		t.Errorf("intake resumed after %v, want within %v", took, bound)
	}
	if !strings.Contains(log.String(), "moving to another server") {
		t.Errorf("the forced reconnection is not logged:\n%s", log.String())
	}
	f.thaw()
}
