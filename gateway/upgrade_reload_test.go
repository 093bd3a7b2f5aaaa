package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/spillway-dev/spillway/gateway"
)

// wantGoingAway checks that the gateway closed c and its connection to the
// upstream e with 1001 and reason on both sides: the upstream received a
// close frame, not a bare TCP close (1006).
func wantGoingAway(t *testing.T, c *websocket.Conn, e *echoServer, reason string) {
	t.Helper()
	if code, got := readClose(t, c); code != websocket.StatusGoingAway || got != reason {
		t.Errorf("the client: closed with %d %q, want 1001 %q", code, got, reason)
	}
	select {
	case ce := <-e.closes:
		if ce.Code != websocket.StatusGoingAway || ce.Reason != reason {
			t.Errorf("the upstream: closed with %d %q, want 1001 %q", ce.Code, ce.Reason, reason)
		}
	case <-time.After(10 * time.Second):
		t.Error("the upstream's connection still open")
	}
}

// wantOpen checks that c still echoes and that its upstream e saw no close.
func wantOpen(t *testing.T, c *websocket.Conn, e *echoServer, after string) {
	t.Helper()
	echo(t, c, "still there after "+after)
	select {
	case ce := <-e.closes:
		t.Errorf("after %s: the upstream's connection closed with %d %q", after, ce.Code, ce.Reason)
	default:
	}
}

// TestUpgradeUpstreamToldOnClose: when the gateway ends a WebSocket — its
// shutdown, the idle limit, a reload that changes its route — the upstream
// receives a close frame 1001 with the gateway's reason, as the client
// does, and the bulkhead slot is given back.
func TestUpgradeUpstreamToldOnClose(t *testing.T) {
	for _, tc := range []struct {
		name, keys, reason string
		end                func(*gateway.Gateway, *echoServer) error
	}{
		{"shutdown", "", "gateway shutting down", func(g *gateway.Gateway, _ *echoServer) error {
			go g.CloseUpgrades()
			return nil
		}},
		{"idle", "    upgrade: {idle_timeout: 100ms}\n", "idle timeout", func(*gateway.Gateway, *echoServer) error { return nil }},
		{"reload", "", "route changed", func(g *gateway.Gateway, e *echoServer) error {
			_, err := g.Apply(parse(t, fmt.Sprintf(strings.Replace(wsRoute, "/ws}", "/other}", 1), e.URL, ""), nil))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEchoServer(t)
			g, addr := startWS(t, e, tc.keys)
			c := dialWS(t, addr)
			echo(t, c, "ping")
			if err := tc.end(g, e); err != nil {
				t.Fatal(err)
			}
			wantGoingAway(t, c, e, tc.reason)
			waitFor(t, "in_flight back to 0", func() bool { return g.Status().Upstreams["app"].InFlight == 0 })
		})
	}
}

// TestUpgradeKeptAcrossInPlaceChanges: a reload that changes the
// upstream's breaker thresholds, bulkhead and timeouts, and a runtime
// override of the upstream, apply in place: an open WebSocket stays open
// and echoing, and keeps its bulkhead slot.
func TestUpgradeKeptAcrossInPlaceChanges(t *testing.T) {
	e := newEchoServer(t)
	g, addr := startWS(t, e, "")
	c := dialWS(t, addr)
	echo(t, c, "ping")
	changed := strings.Replace(wsRoute, "    outlier:",
		"    breaker: {failure_rate: '30%%', min_calls: 7}\n    bulkhead: {max_concurrent: 40}\n    timeouts: {total: 20s}\n    outlier:", 1)
	cs, err := g.Apply(parse(t, fmt.Sprintf(changed, e.URL, ""), nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cs.Applied, func(ch gateway.Change) bool { return ch.Part == "breaker" }) {
		t.Fatalf("the reload changed %v, want the breaker", cs.Applied)
	}
	wantOpen(t, c, e, "a reload of the breaker, bulkhead and timeouts")
	if _, err := g.PatchUpstream(gateway.Actor{Who: "test"}, "app", []byte(`{"breaker": {"min_calls": 9}}`)); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, c, e, "a runtime override")
	if n := g.Status().Upstreams["app"].InFlight; n != 1 {
		t.Errorf("in_flight %d, want the open WebSocket's 1", n)
	}
}

// TestUpgradeClosedWhenItsInstanceGoes: a reload that removes another
// instance of the upstream keeps a WebSocket open; one that removes the
// instance it is connected to closes it with 1001, both sides.
func TestUpgradeClosedWhenItsInstanceGoes(t *testing.T) {
	a, b := newEchoServer(t), newEchoServer(t)
	two := strings.Replace(wsRoute, `instances: ["%s"]`, `instances: ["%s", "%s"]`, 1)
	g, addr := serveGateway(t, parse(t, fmt.Sprintf(two, a.URL, b.URL, ""), nil), gateway.ListenerOptions{})
	c := dialWS(t, addr)
	echo(t, c, "ping")
	on, other := a, b
	if b.hits.Load() == 1 {
		on, other = b, a
	}
	if _, err := g.Apply(parse(t, fmt.Sprintf(wsRoute, on.URL, ""), nil)); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, c, on, "removing the other instance")
	if _, err := g.Apply(parse(t, fmt.Sprintf(wsRoute, other.URL, ""), nil)); err != nil {
		t.Fatal(err)
	}
	wantGoingAway(t, c, on, "instance removed")
}

// TestUpgradeClosedWhenItsRouteGoes: a reload that removes the route, or
// makes its upgrade request match another route, or stops allowing
// WebSockets on it, or sends it to another upstream, closes its
// WebSockets with 1001, both sides.
func TestUpgradeClosedWhenItsRouteGoes(t *testing.T) {
	for _, tc := range []struct{ name, from, to string }{
		{"removed", "  - name: ws\n", "  - name: other\n"},
		{"match", "/ws}", "/other}"},
		{"protocol", "    upstream: app\n", "    upstream: app\n    upgrade: {protocols: [foo]}\n"},
		{"upstream", "routes:", "  app2:\n    instances: [\"%[1]s\"]\nroutes:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEchoServer(t)
			g, addr := startWS(t, e, "")
			c := dialWS(t, addr)
			yaml := strings.Replace(wsRoute, tc.from, tc.to, 1)
			if tc.name == "upstream" {
				yaml = strings.Replace(yaml, "    upstream: app\n", "    upstream: app2\n", 1)
			}
			if _, err := g.Apply(parse(t, fmt.Sprintf(yaml, e.URL, ""), nil)); err != nil {
				t.Fatal(err)
			}
			wantGoingAway(t, c, e, "route changed")
		})
	}
}

// TestUpgradeLimitsApplyToOpenConnections: a reload that shortens the
// route's idle_timeout applies to its open WebSockets.
func TestUpgradeLimitsApplyToOpenConnections(t *testing.T) {
	e := newEchoServer(t)
	g, addr := startWS(t, e, "    upgrade: {idle_timeout: 1h}\n")
	c := dialWS(t, addr)
	echo(t, c, "ping")
	if _, err := g.Apply(parse(t, fmt.Sprintf(wsRoute, e.URL, "    upgrade: {idle_timeout: 100ms}\n"), nil)); err != nil {
		t.Fatal(err)
	}
	wantGoingAway(t, c, e, "idle timeout")
}

// TestUpgradeCloseWaitIsBounded: an upstream that never answers the
// gateway's close frame (it reads nothing) does not hold a shutdown: the
// client still gets its 1001 and CloseUpgrades returns.
func TestUpgradeCloseWaitIsBounded(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		<-release
	}))
	defer up.Close()
	defer close(release)
	g, addr := serveGateway(t, parse(t, fmt.Sprintf(wsRoute, up.URL, ""), nil), gateway.ListenerOptions{})
	c := dialWS(t, addr)
	done := make(chan struct{})
	go func() { defer close(done); g.CloseUpgrades() }()
	if code, reason := readClose(t, c); code != websocket.StatusGoingAway || reason != "gateway shutting down" {
		t.Errorf("closed with %d %q, want 1001 going away", code, reason)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("CloseUpgrades still waiting for the upstream")
	}
}
