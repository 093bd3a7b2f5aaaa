package server

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// spillway serve --upstream URL: no file, one catch-all route to URL, and a
// generated admin token printed once on stderr that the admin API accepts.
func TestServeWithNoFileProxiesEverythingAndPrintsAToken(t *testing.T) {
	app := upstream(t, "app")
	s := startRun(t, Options{Upstream: app.URL, Listen: "127.0.0.1:0", Admin: "127.0.0.1:0"})
	for _, path := range []string{"/", "/any/path?q=1"} {
		if code, body := s.get(t, s.public+path); code != http.StatusOK || !strings.HasPrefix(body, "app") {
			t.Errorf("GET %s: %d %q, want the upstream's answer", path, code, body)
		}
	}
	tokens := regexp.MustCompile(`spillway: admin token ([0-9a-f]{64}) `).FindAllStringSubmatch(s.stderr.String(), -1)
	if len(tokens) != 1 {
		t.Fatalf("want one 256-bit admin token line on stderr:\n%s", s.stderr)
	}
	if code, _, _ := s.do(t, http.MethodPost, s.admin+"/api/v1/reload", "", nil); code != http.StatusUnauthorized {
		t.Errorf("reload without the token: %d, want 401", code)
	}
	if code, body, _ := s.do(t, http.MethodPost, s.admin+"/api/v1/reload", tokens[0][1], nil); code != http.StatusOK {
		t.Errorf("reload with the printed token: %d %s, want 200", code, body)
	}
	if code, body := s.get(t, s.admin+"/api/v1/status"); code != http.StatusOK || !strings.Contains(body, `"app"`) {
		t.Errorf("status: %d %s", code, body)
	}
}

// A token given (SPILLWAY_ADMIN_TOKEN in serve) is used and never printed.
func TestServeWithNoFileUsesTheGivenToken(t *testing.T) {
	app := upstream(t, "app")
	s := startRun(t, Options{Upstream: app.URL, Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Token: "s3cret"})
	if strings.Contains(s.stderr.String(), "s3cret") || strings.Contains(s.stderr.String(), "admin token") {
		t.Errorf("stderr shows a token:\n%s", s.stderr)
	}
	if code, _, _ := s.do(t, http.MethodPost, s.admin+"/api/v1/reload", "s3cret", nil); code != http.StatusOK {
		t.Errorf("reload with the given token: %d, want 200", code)
	}
}

func TestServeWithNoFileRefusesBadFlags(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{File: "spillway.yaml", Upstream: "http://127.0.0.1:9000"}, "choose one"},
		{Options{Upstream: "ftp://127.0.0.1:9000"}, "http:// or https://"},
		{Options{Upstream: "http://127.0.0.1:9000", Listen: "nowhere"}, "--upstream:"},
		// A value cannot add keys: it is one expanded scalar.
		{Options{Upstream: "http://127.0.0.1:9000", Listen: "127.0.0.1:0\"\nupstreamz: {}\n#", Token: "t"}, "--upstream:1:"},
	} {
		var stderr strings.Builder
		err := Run(context.Background(), tt.o, io.Discard, &stderr, nil, func(string, string) { t.Errorf("%+v: started", tt.o) })
		if strings.Contains(stderr.String(), "admin token") {
			t.Errorf("%+v: a token was printed for a start that failed", tt.o)
		}
		if err == nil || !strings.Contains(err.Error()+stderr.String(), tt.want) {
			t.Errorf("%+v: %v\n%s\nwant an error with %q", tt.o, err, stderr.String(), tt.want)
		}
	}
}
