package server

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spillway-dev/spillway/config"

	"github.com/spillway-dev/spillway/internal/spillwaytest"
)

// TestOpenQueueHidesCredentials: OpenQueue logs the servers of
// queue.servers, and reports their connection failure, without the user
// information of their URLs (a user and password, or a token in the user's
// place).
func TestOpenQueueHidesCredentials(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there: the connection is refused
	yaml := "queue: {servers: ['nats://alice:hunter2@" + addr + "', 'nats://s3cr3t-token@" + addr + "']}\n" +
		"upstreams:\n  a: {instances: [http://127.0.0.1:1]}\nroutes: [{name: r, upstream: a, async: {}}]\n"
	cfg, _, err := config.Parse("t.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	var log spillwaytest.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	q, err := OpenQueue(ctx, cfg, slog.New(slog.NewTextHandler(&log, nil)))
	if err == nil {
		q.Close()
		t.Fatal("OpenQueue succeeded with no server")
	}
	for what, text := range map[string]string{"log": log.String(), "error": err.Error()} {
		for _, secret := range []string{"alice", "hunter2", "s3cr3t-token"} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s shows %q:\n%s", what, secret, text)
			}
		}
		if !strings.Contains(text, "nats://REDACTED@"+addr) {
			t.Errorf("the %s does not name the server without its credentials:\n%s", what, text)
		}
	}
}
