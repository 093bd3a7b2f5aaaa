package server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Shutting serve down ends the admin's event streams at once: an open
// stream must not hold the admin listener's Shutdown for the whole grace
// (an hour here; stop gives up after 15 s), and it ends cleanly, the
// handler returning rather than its connection being cut.
func TestServeShutdownEndsTheEventStreams(t *testing.T) {
	app := upstream(t, "app")
	s := startServe(t, strings.Replace(fmt.Sprintf(oneRoute, app.URL), "shutdown_grace: 10s", "shutdown_grace: 1h", 1))
	req, err := http.NewRequest(http.MethodGet, s.admin+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := io.Copy(io.Discard, bufio.NewReader(resp.Body)); err != nil {
		t.Fatalf("the stream was cut, not ended: %v", err)
	}
}
