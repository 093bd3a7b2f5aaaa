package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/gateway/admin"
	"github.com/spillway-dev/spillway/internal/server"
	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

const ctlToken = "s3cret-token"

// ctlGateway runs `spillway serve` of a file (upstream app, an optional
// route "recs", a rate-limited route "app") with admin token ctlToken, both listeners on 127.0.0.1:0;
// it returns the admin URL and the upstream's instance URL.
func ctlGateway(t *testing.T) (adminURL, instance string) {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "up") }))
	t.Cleanup(up.Close)
	file := filepath.Join(t.TempDir(), "spillway.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token: %s}
upstreams:
  app:
    instances: [%s]
    bulkhead: {max_concurrent: 10}
routes:
  - name: recs
    match: {path_prefix: /recs}
    upstream: app
    optional: true
    default: {status: 200, body: "[]"}
  - {name: app, match: {path_prefix: /app}, upstream: app, rate_limit: {rate: 1000/s}}
`, ctlToken, up.URL)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return serveInTest(t, server.Options{File: file}), up.URL
}

// serveInTest runs server.Run with o until the test ends and returns its
// admin URL.
func serveInTest(t *testing.T, o server.Options) (adminURL string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, stopped := make(chan string, 1), make(chan error, 1)
	go func() {
		stopped <- server.Run(ctx, o, io.Discard, io.Discard, nil,
			func(_, adminAddr string) { ready <- "http://" + adminAddr })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case adminURL = <-ready:
	case err := <-stopped:
		stopped <- nil // for the cleanup
		t.Fatalf("serve stopped at once: %v", err)
	}
	return adminURL
}

// ctlRun runs `spillway ctl ARGS` against adminURL with the token and
// returns its stdout, its error as main prints it, and its exit code.
func ctlRun(t *testing.T, ctx context.Context, adminURL string, args ...string) (stdout, errText string, code int) {
	t.Helper()
	return ctlRunWith(ctx, &bytes.Buffer{}, append([]string{"--admin", adminURL, "--token", ctlToken}, args...)...)
}

func ctlRunWith(ctx context.Context, out interface {
	io.Writer
	String() string
}, args ...string) (stdout, errText string, code int) {
	cmd := newRootCommand()
	var stderr spillwaytest.Buffer
	cmd.SetOut(out)
	cmd.SetErr(&stderr)
	cmd.SetArgs(append([]string{"ctl"}, args...))
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		return out.String(), err.Error(), code
	}
	return out.String(), stderr.String(), 0
}

func TestCtlBreakerOpenThenStatus(t *testing.T) {
	adm, _ := ctlGateway(t)
	ctx := context.Background()
	out, errText, code := ctlRun(t, ctx, adm, "breaker", "open", "app")
	if code != 0 || !strings.Contains(out, "breaker   forced_open") {
		t.Fatalf("breaker open: exit %d, %s\n%s", code, errText, out)
	}
	out, errText, code = ctlRun(t, ctx, adm, "status")
	if code != 0 || !strings.Contains(out, "UPSTREAM") || !regexp.MustCompile(`(?m)^app +forced_open +0% +0 +1/1 healthy, 0 ejected`).MatchString(out) {
		t.Fatalf("status after breaker open: exit %d, %s\n%s", code, errText, out)
	}
	if !strings.Contains(out, "1 runtime override(s)") {
		t.Errorf("status does not list the override:\n%s", out)
	}
	out, _, _ = ctlRun(t, ctx, adm, "--json", "status")
	if !strings.Contains(out, `"state":"forced_open"`) {
		t.Errorf("status --json is not the API's JSON: %s", out)
	}
	out, errText, code = ctlRun(t, ctx, adm, "breaker", "auto", "app")
	if code != 0 || !strings.Contains(out, "breaker   closed (mode closed)") {
		t.Fatalf("breaker auto: exit %d, %s\n%s", code, errText, out)
	}
}

// A change the gateway refuses prints the key refused and exits 1.
func TestCtlSetRefusedPrintsTheField(t *testing.T) {
	adm, _ := ctlGateway(t)
	_, errText, code := ctlRun(t, context.Background(), adm, "set", "app", "breaker.failure_rate=130%")
	if code != 1 || !strings.HasPrefix(errText, "breaker.failure_rate: ") {
		t.Fatalf("set breaker.failure_rate=130%%: exit %d, %q; want exit 1 and the field", code, errText)
	}
	out, errText, code := ctlRun(t, context.Background(), adm, "set", "app", "breaker.failure_rate=30%", "timeouts.attempt=1s", "bulkhead.max_concurrent=50")
	if code != 0 || !strings.Contains(out, "opens at 30%") || !strings.Contains(out, "attempt 1s") || !strings.Contains(out, "0/50 in use") {
		t.Fatalf("set: exit %d, %s\n%s", code, errText, out)
	}
}

func TestCtlMissingToken(t *testing.T) {
	adm, _ := ctlGateway(t)
	t.Setenv("SPILLWAY_ADMIN_TOKEN", "")
	_, errText, code := ctlRunWith(context.Background(), &bytes.Buffer{}, "--admin", adm, "upstreams")
	if code != 1 || !strings.Contains(errText, "--token") || !strings.Contains(errText, "SPILLWAY_ADMIN_TOKEN") {
		t.Fatalf("upstreams without a token: exit %d, %q", code, errText)
	}
	// The token comes from the environment too, and is never printed.
	t.Setenv("SPILLWAY_ADMIN_TOKEN", ctlToken)
	t.Setenv("SPILLWAY_ADMIN", adm)
	out, errText, code := ctlRunWith(context.Background(), &bytes.Buffer{}, "upstreams", "app")
	if code != 0 || !strings.HasPrefix(out, "app\n") || strings.Contains(out+errText, ctlToken) {
		t.Fatalf("upstreams app with $SPILLWAY_ADMIN_TOKEN: exit %d, %s\n%s", code, errText, out)
	}
	out, _, _ = ctlRunWith(context.Background(), &bytes.Buffer{}, "status", "--help")
	if strings.Contains(out, ctlToken) {
		t.Errorf("help prints the token of $SPILLWAY_ADMIN_TOKEN:\n%s", out)
	}
}

func TestCtlEventsPrintsABreakerTransition(t *testing.T) {
	adm, _ := ctlGateway(t)
	if _, errText, code := ctlRun(t, context.Background(), adm, "breaker", "open", "app"); code != 0 {
		t.Fatal(errText)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out spillwaytest.Buffer
	done := make(chan string, 1)
	go func() {
		_, errText, _ := ctlRunWith(ctx, &out, "--admin", adm, "--token", ctlToken, "events", "--since", "0")
		done <- errText
	}()
	want := " breaker app closed -> forced_open\n"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), want); {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("events printed no breaker transition in 10s:\n%s\nstderr: %s", out.String(), <-done)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if errText := <-done; errText != "" {
		t.Errorf("events after Ctrl-C: %q, want a clean end", errText)
	}
}

// A dropped stream is opened again with Last-Event-ID, the id of the last
// event printed.
func TestCtlEventsReconnectsWithLastEventID(t *testing.T) {
	var mu sync.Mutex
	var resumed []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		resumed = append(resumed, r.Header.Get("Last-Event-ID"))
		n := len(resumed)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		// Each connection sends one event, then drops.
		fmt.Fprintf(w, "id: %d\nevent: breaker\ndata: {\"id\":%d,\"time\":\"2026-12-06T11:40:40Z\",\"kind\":\"breaker\",\"data\":{\"upstream\":\"app\",\"from\":\"closed\",\"to\":\"open\"}}\n\n", 40+n, 40+n)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out spillwaytest.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctlRunWith(ctx, &out, "--admin", srv.URL, "--token", ctlToken, "events")
	}()
	for deadline := time.Now().Add(10 * time.Second); strings.Count(out.String(), "\n") < 2; {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(resumed) < 2 || resumed[0] != "" || resumed[1] != "41" {
		t.Fatalf("Last-Event-ID of each connection: %q, want \"\" then \"41\"\n%s", resumed, out.String())
	}
}

// Every other subcommand against a real gateway, and the usage errors.
func TestCtlSubcommands(t *testing.T) {
	adm, instance := ctlGateway(t)
	ctx := context.Background()
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"upstreams"}, 0, "bulkhead  0/10 in use"},
		{[]string{"routes"}, 0, "recs   app       true      true     false"},
		{[]string{"routes"}, 0, "1000/s burst 1000 by client_ip (0 keys, 0 refused)"},
		{[]string{"bulkhead", "resize", "app", "20", "--waiting", "5"}, 0, "0/20 in use, 0/5 waiting"},
		{[]string{"instance", "eject", "app", instance}, 0, instance + " ejected by hand"},
		{[]string{"instance", "restore", "app", instance}, 0, instance + " healthy"},
		{[]string{"route", "disable", "recs"}, 0, "recs   app       true      false"},
		{[]string{"route", "disable", "app"}, 1, "enabled: "},
		{[]string{"overrides"}, 0, `upstream app  {"bulkhead":{"max_concurrent":20,"max_waiting":5}} by admin`},
		{[]string{"reload"}, 0, "override kept"},
		{[]string{"overrides", "--clear"}, 0, "override(s) cleared"},
		{[]string{"overrides"}, 0, "no runtime override"},
		{[]string{"upstreams", "nope"}, 1, "no upstream nope"},
		{[]string{"breaker", "ajar", "app"}, 2, "want open, close, disable"},
		{[]string{"bulkhead", "resize", "app"}, 2, "usage: spillway ctl bulkhead"},
		{[]string{"set", "app", "retry"}, 2, "want KEY=VALUE"},
		{[]string{"status", "--nope"}, 2, "--nope"},
		{[]string{"--admin", "file:///etc/passwd", "status"}, 2, "want an http:// or https:// URL"},
	}
	for _, s := range steps {
		out, errText, code := ctlRun(t, ctx, adm, s.args...)
		if code != s.code || !strings.Contains(out+errText, s.want) {
			t.Errorf("ctl %s: exit %d, %q\n%s\nwant exit %d and %q", strings.Join(s.args, " "), code, errText, out, s.code, s.want)
		}
	}
}

func TestPatchBody(t *testing.T) {
	got, err := patchBody([]string{"breaker.failure_rate=30%", "bulkhead.max_concurrent=50", "breaker.min_calls=20", "retry.on=[\"timeout\"]"})
	if err != nil {
		t.Fatal(err)
	}
	want := `map[breaker:map[failure_rate:30% min_calls:20] bulkhead:map[max_concurrent:50] retry:map[on:[timeout]]]`
	if fmt.Sprint(got) != want {
		t.Errorf("patchBody: %v, want %s", got, want)
	}
	for _, bad := range [][]string{{"a.b=1", "a=2"}, {"a=1", "a.b=2"}, {"a=1", "a=1"}, {"=1"}} {
		if _, err := patchBody(bad); err == nil {
			t.Errorf("patchBody(%q): no error", bad)
		}
	}
}

// ctl reload names the settings that wait for a restart.
func TestCtlReloadPrintsRestartRequired(t *testing.T) {
	var b strings.Builder
	printReload(&b, admin.ReloadResult{RestartRequired: []string{"admin.listen", "listen"}})
	if got := b.String(); !strings.Contains(got, "no change") || !strings.Contains(got, "restart required for: admin.listen, listen") {
		t.Errorf("ctl reload printed %q", got)
	}
	b.Reset()
	printReload(&b, admin.ReloadResult{})
	if strings.Contains(b.String(), "restart") {
		t.Errorf("ctl reload with nothing waiting printed %q", b.String())
	}
}
