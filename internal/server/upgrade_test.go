package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestServeShutdownClosesWebSockets: SIGTERM closes an open WebSocket with
// a close frame 1001 the client reads as the drain begins, while an
// ordinary request still holds the drain (net/http's Shutdown does not
// know hijacked connections: serve registers the gateway's CloseUpgrades).
func TestServeShutdownClosesWebSockets(t *testing.T) {
	release := make(chan struct{})
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			<-release
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil || c.Write(r.Context(), typ, msg) != nil {
				return
			}
		}
	}))
	t.Cleanup(echo.Close)
	free := sync.OnceFunc(func() { close(release) })
	t.Cleanup(free) // before echo.Close, which waits for /slow
	s := startServe(t, strings.Replace(fmt.Sprintf(oneRoute, echo.URL), "shutdown_grace: 10s", "shutdown_grace: 1h", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.public, "http")+"/app/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				closed <- err
				return
			}
		}
	}()
	slow, err := s.client.Get(s.public + "/app/slow")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	s.signals <- syscall.SIGTERM // the drain waits for /app/slow
	var ce websocket.CloseError
	if err := <-closed; !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
		t.Fatalf("the client read %v, want a close frame 1001", err)
	}
	free()
	if err := s.stop(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
}
