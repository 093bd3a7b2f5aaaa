package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// lineWatcher is a process's stderr: it reports the first line that
// matches re.
type lineWatcher struct {
	spillwaytest.Buffer
	re    *regexp.Regexp
	found chan string
	once  sync.Once
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if m := w.re.FindStringSubmatch(w.String()); m != nil {
		w.once.Do(func() { w.found <- m[1] })
	}
	return n, err
}

func TestServeProcessStartsAndStopsOnSIGTERM(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGTERM is not delivered on Windows")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "spillway")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app %s", r.URL.Path)
	}))
	defer app.Close()
	file := filepath.Join(dir, "spillway.yaml")
	yaml := "listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:0}\nupstreams:\n  app: {instances: [" + app.URL + "]}\n" +
		"routes:\n  - {name: app, match: {path_prefix: /app}, upstream: app}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "serve", "-c", file)
	stderr := &lineWatcher{re: regexp.MustCompile(`spillway: admin +(http://\S+)\n`), found: make(chan string, 1)}
	publicRe := regexp.MustCompile(`spillway: public (http://\S+)\n`)
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var adminURL string
	select {
	case adminURL = <-stderr.found:
	case err := <-exited:
		t.Fatalf("spillway serve exited at once: %v\n%s", err, stderr.String())
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("no start lines after 20s:\n%s", stderr.String())
	}
	publicURL := publicRe.FindStringSubmatch(stderr.String())[1]

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for url, want := range map[string]string{publicURL + "/app/x": "app /app/x", adminURL + "/healthz": "ok\n"} {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("GET %s = %q, want %q", url, b, want)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("spillway serve after SIGTERM: %v, want exit status 0\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("spillway serve still running 20s after SIGTERM:\n%s", stderr.String())
	}
}

func TestTuneGCRaisesTheTargetUnlessGOGCIsSet(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tuneGC(func(string) string { return "50" })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set: GC percent %d, want it left at 100", got)
	}
	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != gatewayGCPercent {
		t.Errorf("without GOGC: GC percent %d, want %d", got, gatewayGCPercent)
	}
}

// serve takes a file or --upstream, not both and not neither; --listen and
// --admin only with --upstream.
func TestServeFlagsChooseOneSource(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-c", "spillway.yaml", "--upstream", "http://127.0.0.1:9000"}, "choose one"},
		{nil, "needs -c FILE, or --upstream URL"},
		{[]string{"-c", "spillway.yaml", "--listen", "127.0.0.1:0"}, "go with --upstream"},
	} {
		cmd := newRootCommand()
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"serve"}, tt.args...))
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("serve %v: %v, want an error with %q", tt.args, err, tt.want)
		}
	}
}
