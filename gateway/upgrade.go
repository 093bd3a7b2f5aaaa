package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway-dev/spillway"
	"github.com/spillway-dev/spillway/config"
)

// An upgrade (WebSocket, or another protocol a route's upgrade: allows)
// takes its own path once routed: it is sent once through the upstream's
// delivery transport — breaker, bulkhead, time limits and an instance of
// the pool, no retry — and, when the upstream answers 101, the client's
// connection is hijacked and joined to the upstream's. The bulkhead slot
// and the instance's in-flight count are held by the upstream response's
// body, which the tunnel closes when it ends. See docs/gateway.md,
// "WebSockets and upgrades".

// closeGrace bounds what the gateway still writes to a client once it
// closes a tunnel: the end of a frame in flight, then its close frame.
const closeGrace = time.Second

// The reasons a tunnel is closed by the gateway; the text of the close
// frame of a WebSocket (status 1001, going away).
const (
	closeShutdown = "gateway shutting down"
	closeReload   = "route changed"
	closeIdle     = "idle timeout"
	closeLifetime = "max lifetime"
)

// upgradeProto returns the protocol r asks to switch to: its Upgrade
// header when its Connection header names upgrade, "" otherwise. HTTP/2
// has no Upgrade (a WebSocket over HTTP/2 is an extended CONNECT, which
// screen refuses).
func upgradeProto(r *http.Request) string {
	if r.ProtoMajor != 1 || !anyToken(r.Header["Connection"], func(s string) bool { return strings.EqualFold(s, "upgrade") }) {
		return ""
	}
	return r.Header.Get("Upgrade")
}

// upgradeConfig returns the route's upgrade: settings.
func (rt *route) upgradeConfig() config.Upgrade {
	if rt.cfg.Upgrade != nil {
		return *rt.cfg.Upgrade
	}
	return config.DefaultUpgrade()
}

// upgrade proxies r when it asks for a protocol its route allows, and
// reports whether it did (answered). A request for another protocol has
// its Upgrade header dropped and goes on as an ordinary request: a server
// may ignore Upgrade (RFC 9110 §7.8), and the proxy would forward it.
func (g *Gateway) upgrade(rec *recorder, x *exchange, r *http.Request) bool {
	proto := upgradeProto(r)
	uc := x.route.upgradeConfig()
	if proto == "" || !uc.Allows(proto) {
		delete(r.Header, "Upgrade")
		return false
	}
	if r.ContentLength != 0 {
		// Where would the body end and the new protocol begin? Refused as
		// any framing a proxy in front could read otherwise.
		g.local(rec, x, http.StatusBadRequest, ReasonBadRequest, "an upgrade request has no body")
		return true
	}
	up := x.route.up
	x.up, x.totalKey, x.intercept = up, x.route.totalKey, false
	in := x.request()
	out := in.Clone(x)
	out.RequestURI, out.Body, out.ContentLength, out.Close = "", http.NoBody, 0, false
	removeHopByHop(out.Header)
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", proto)
	rewrite(&httputil.ProxyRequest{In: in, Out: out})
	resp, err := up.delivery.RoundTrip(out)
	if err != nil {
		if !g.callerDone(rec, x) {
			g.failed(rec, x, err)
		}
		return true
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		passThrough(rec, resp)
		return true
	}
	backend, ok := x.body.ReadCloser.(io.ReadWriteCloser)
	if !ok || !strings.EqualFold(resp.Header.Get("Upgrade"), proto) {
		g.local(rec, x, http.StatusBadGateway, string(spillway.ReasonUpstreamError), "the upstream switched to another protocol than the one asked for")
		return true
	}
	client, brw, err := http.NewResponseController(rec).Hijack()
	if err != nil {
		g.local(rec, x, http.StatusInternalServerError, string(spillway.ReasonUpstreamError), "the connection cannot be upgraded")
		return true
	}
	rec.status = http.StatusSwitchingProtocols
	if c := connOf(r.Context()); c != nil {
		// The connection carries the new protocol from here on: not HTTP
		// requests to follow. The server reads nothing more from it.
		c.f.state = stHTTP2
	}
	t := &tunnel{client: client, backend: backend, route: x.route, up: up,
		websocket: strings.EqualFold(proto, "websocket"), stop: make(chan string, 1)}
	if !g.tunnels.add(t) {
		client.Close()
		return true
	}
	defer g.tunnels.remove(t)
	if err := writeSwitch(brw, resp); err != nil {
		client.Close()
		return true
	}
	var src io.Reader = client
	if n := brw.Reader.Buffered(); n > 0 {
		// What the client sent after its request head, already read.
		src = io.MultiReader(io.LimitReader(brw.Reader, int64(n)), client)
	}
	t.run(uc, src, resp.Body)
	return true
}

// writeSwitch writes the upstream's 101 answer, its header as it is, to
// the hijacked client connection.
func writeSwitch(w *bufio.ReadWriter, resp *http.Response) error {
	if _, err := w.WriteString("HTTP/1.1 101 Switching Protocols\r\n"); err != nil {
		return err
	}
	if err := resp.Header.Write(w); err != nil {
		return err
	}
	if _, err := w.WriteString("\r\n"); err != nil {
		return err
	}
	return w.Flush()
}

// passThrough writes the upstream's answer to an upgrade it refused (an
// authentication failure, 426, a 5xx) as it is, but its hop-by-hop headers.
func passThrough(w http.ResponseWriter, resp *http.Response) {
	removeHopByHop(resp.Header)
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// hopByHop are the headers of one connection (RFC 9110 §7.6.1), as
// httputil.ReverseProxy removes them.
var hopByHop = [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopByHop removes from h the hop-by-hop headers and those its
// Connection header names.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		delete(h, name)
	}
}

// tunnel is an upgraded connection: the client's, hijacked, joined to the
// upstream's.
type tunnel struct {
	client    net.Conn
	backend   io.ReadWriteCloser
	route     *route
	up        *upstream
	websocket bool
	// last is when a byte last went through, either way (monoNow).
	last atomic.Int64
	// stop receives the reason the gateway closes the tunnel.
	stop chan string
	// frames follows the WebSocket frames sent to the client, so that a
	// close frame goes between two of them.
	frames wsFrames
}

// run copies both ways until a side closes, the connection is idle or
// too old, or the gateway closes it; then closes both sides, a WebSocket
// client with a close frame (1001) when the gateway ended it. body is the
// upstream response's body: closing it closes the upstream's connection
// and gives the bulkhead slot back.
func (t *tunnel) run(uc config.Upgrade, src io.Reader, body io.Closer) {
	t.last.Store(monoNow())
	toUp, toClient := make(chan error, 1), make(chan error, 1)
	go func() { toUp <- t.copy(t.backend, src, nil) }()
	go func() { toClient <- t.copy(t.client, t.backend, &t.frames) }()
	idle, life := timer(uc.IdleTimeout), timer(uc.MaxLifetime)
	defer idle.Stop()
	defer life.Stop()
	upOpen, clientOpen := true, true
	reason := ""
loop:
	for upOpen || clientOpen {
		select {
		case err := <-toUp:
			upOpen = false
			if err != nil {
				break loop
			}
		case err := <-toClient:
			clientOpen = false
			if err != nil {
				break loop
			}
		case <-idle.C:
			if quiet := time.Duration(monoNow() - t.last.Load()); quiet < uc.IdleTimeout {
				idle.Reset(uc.IdleTimeout - quiet)
				continue
			}
			reason = closeIdle
			break loop
		case <-life.C:
			reason = closeLifetime
			break loop
		case reason = <-t.stop:
			break loop
		}
	}
	body.Close()
	_ = t.client.SetDeadline(time.Now().Add(closeGrace))
	// Once the upstream ended its side, its own close frame went through.
	polite := reason != "" && t.websocket && clientOpen
	if clientOpen {
		<-toClient
	}
	if polite && t.frames.boundary() {
		_, _ = t.client.Write(closeFrame(reason))
	}
	t.client.Close()
	if upOpen {
		<-toUp
	}
}

// timer returns a timer firing after d, or one that never fires when d
// is 0.
func timer(d time.Duration) *time.Timer {
	if d <= 0 {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return t
	}
	return time.NewTimer(d)
}

// copy copies src to dst, noting the time of each read and, with frames,
// the WebSocket frames written; at src's end it closes dst's writing side
// and returns nil.
func (t *tunnel) copy(dst io.Writer, src io.Reader, frames *wsFrames) error {
	buf := make([]byte, copyBufferSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			t.last.Store(monoNow())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				if frames != nil {
					frames.broken = true
				}
				return werr
			}
			if frames != nil {
				frames.feed(buf[:n])
			}
		}
		if err == io.EOF {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// closeFrame is a WebSocket close frame from a server (unmasked): status
// 1001, going away, and reason (at most 123 bytes).
func closeFrame(reason string) []byte {
	return append([]byte{0x88, byte(2 + len(reason)), 0x03, 0xe9}, reason...)
}

// wsFrames follows a stream of WebSocket frames (RFC 6455 §5.2) just
// enough to know where each ends.
type wsFrames struct {
	head      [14]byte
	n, need   int    // header bytes read, header length (0: unknown yet)
	remaining uint64 // payload bytes of the current frame still to come
	broken    bool   // a write failed: where the stream stands is unknown
}

func (f *wsFrames) feed(p []byte) {
	for len(p) > 0 {
		if f.remaining > 0 {
			k := min(uint64(len(p)), f.remaining)
			p, f.remaining = p[k:], f.remaining-k
			continue
		}
		f.head[f.n] = p[0]
		f.n++
		p = p[1:]
		if f.n == 2 {
			f.need = 2
			switch f.head[1] & 0x7f {
			case 126:
				f.need += 2
			case 127:
				f.need += 8
			}
			if f.head[1]&0x80 != 0 {
				f.need += 4 // the mask key
			}
		}
		if f.n >= 2 && f.n == f.need {
			f.remaining = f.payloadLen()
			f.n, f.need = 0, 0
		}
	}
}

func (f *wsFrames) payloadLen() uint64 {
	switch l := f.head[1] & 0x7f; l {
	case 126:
		return uint64(f.head[2])<<8 | uint64(f.head[3])
	case 127:
		var n uint64
		for _, b := range f.head[2:10] {
			n = n<<8 | uint64(b)
		}
		return n
	default:
		return uint64(l)
	}
}

// boundary reports whether the stream stands between two frames.
func (f *wsFrames) boundary() bool { return !f.broken && f.n == 0 && f.remaining == 0 }

// tunnels are the gateway's open upgraded connections: a graceful
// shutdown (Gateway.CloseUpgrades, Close) and a reload close them.
type tunnels struct {
	mu     sync.Mutex
	open   map[*tunnel]struct{}
	closed bool
	wg     sync.WaitGroup
}

// add registers t; false once the gateway closes its tunnels.
func (ts *tunnels) add(t *tunnel) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return false
	}
	if ts.open == nil {
		ts.open = map[*tunnel]struct{}{}
	}
	ts.open[t] = struct{}{}
	ts.wg.Add(1)
	return true
}

func (ts *tunnels) remove(t *tunnel) {
	ts.mu.Lock()
	delete(ts.open, t)
	ts.mu.Unlock()
	ts.wg.Done()
}

// closeIf asks the tunnels for which stale is true to close, for reason.
func (ts *tunnels) closeIf(stale func(*tunnel) bool, reason string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for t := range ts.open {
		if stale(t) {
			select {
			case t.stop <- reason:
			default: // already asked
			}
		}
	}
}

// CloseUpgrades closes the gateway's upgraded connections (WebSockets)
// politely — a WebSocket client gets a close frame 1001 "going away" —
// refuses new ones, and returns once they are closed. http.Server.Shutdown
// does not know hijacked connections: register it with
// RegisterOnShutdown. Close calls it.
func (g *Gateway) CloseUpgrades() {
	g.tunnels.mu.Lock()
	g.tunnels.closed = true
	g.tunnels.mu.Unlock()
	g.tunnels.closeIf(func(*tunnel) bool { return true }, closeShutdown)
	g.tunnels.wg.Wait()
}

// closeStaleTunnels closes, after a reload to t, the tunnels whose route
// is gone, now goes to another upstream or upgrades otherwise, or whose
// upstream's settings changed.
func (g *Gateway) closeStaleTunnels(t *table) {
	g.tunnels.closeIf(func(tu *tunnel) bool {
		rt := t.byName[tu.route.cfg.Name]
		return rt == nil || rt.up != tu.up || !reflect.DeepEqual(rt.cfg.Upgrade, tu.route.cfg.Upgrade)
	}, closeReload)
}
