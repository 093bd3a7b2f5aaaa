package gateway

import (
	"bufio"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
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

// closeGrace bounds a polite close once the gateway closes a tunnel: the
// end of the frames in flight each way, the close frames, and the
// upstream's close frame in answer.
const closeGrace = time.Second

// The reasons a tunnel is closed by the gateway; the text of the close
// frame of a WebSocket (status 1001, going away).
const (
	closeShutdown = "gateway shutting down"
	closeReload   = "route changed"
	closeInstance = "instance removed"
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
	t := &tunnel{client: client, backend: backend, route: x.route, up: up, req: r, inst: x.body.inst.String(), proto: proto,
		uc: uc, stop: make(chan string, 1), limits: make(chan config.Upgrade, 1)}
	if strings.EqualFold(proto, "websocket") {
		t.toClient, t.toUp = newWSWriter(client), newWSWriter(backend)
	}
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
	// One pass over h's few names rather than a delete (a hash) per
	// hop-by-hop name.
	for name := range h {
		if isHopByHop(name) {
			delete(h, name)
		}
	}
}

// tunnel is an upgraded connection: the client's, hijacked, joined to the
// upstream's.
type tunnel struct {
	client  net.Conn
	backend io.ReadWriteCloser
	route   *route
	up      *upstream
	// req is the upgrade request, matched again against a reloaded table.
	req *http.Request
	// inst is the instance the tunnel is connected to, as configured;
	// proto the protocol it carries.
	inst, proto string
	// last is when a byte last went through, either way (monoNow).
	last atomic.Int64
	// stop receives the reason the gateway closes the tunnel; limits the
	// route's upgrade: settings a reload changed.
	stop   chan string
	limits chan config.Upgrade
	// uc is the last limits given (tunnels.mu).
	uc config.Upgrade
	// toClient and toUp write a WebSocket's frames each way and follow
	// them, so that the gateway's close frames go between two of them;
	// nil for another protocol.
	toClient, toUp *wsWriter
	// errClient and errUp receive the end of the copies to the client and
	// to the upstream; clientOpen and upOpen say they are still running
	// (run's goroutine only).
	errClient, errUp   chan error
	clientOpen, upOpen bool
}

// run copies both ways until a side closes, the connection is idle or
// too old, or the gateway closes it; then closes both sides (end). body is
// the upstream response's body: closing it closes the upstream's
// connection and gives the bulkhead slot back.
func (t *tunnel) run(uc config.Upgrade, src io.Reader, body io.Closer) {
	start := monoNow()
	t.last.Store(start)
	t.errUp, t.errClient = make(chan error, 1), make(chan error, 1)
	t.upOpen, t.clientOpen = true, true
	go func() { t.errUp <- t.copy(t.backend, src, t.toUp) }()
	go func() { t.errClient <- t.copy(t.client, t.backend, t.toClient) }()
	t.end(t.wait(uc, start), body)
}

// wait waits for the tunnel to end and returns why the gateway ends it:
// "" when a side did.
func (t *tunnel) wait(uc config.Upgrade, start int64) string {
	idle, life := timer(uc.IdleTimeout), timer(uc.MaxLifetime)
	defer idle.Stop()
	defer life.Stop()
	for t.upOpen || t.clientOpen {
		select {
		case err := <-t.errUp:
			t.upOpen = false
			if err != nil {
				return ""
			}
		case err := <-t.errClient:
			t.clientOpen = false
			if err != nil {
				return ""
			}
		case <-idle.C:
			if quiet := time.Duration(monoNow() - t.last.Load()); quiet < uc.IdleTimeout {
				idle.Reset(uc.IdleTimeout - quiet)
				continue
			}
			return closeIdle
		case <-life.C:
			return closeLifetime
		case uc = <-t.limits:
			// New limits apply at once, counted from the last byte and
			// from the upgrade: a limit already passed closes the tunnel.
			rearm(idle, uc.IdleTimeout, t.last.Load())
			rearm(life, uc.MaxLifetime, start)
		case reason := <-t.stop:
			return reason
		}
	}
	return ""
}

// end closes both sides. When the gateway ends a WebSocket whose upstream
// is still there (reason set), each side gets a close frame first (close).
func (t *tunnel) end(reason string, body io.Closer) {
	deadline := time.Now().Add(closeGrace)
	// Once the upstream ended its side, its own close frame went through.
	if reason != "" && t.toClient != nil && t.clientOpen {
		t.close(reason, deadline, body)
	}
	body.Close()
	_ = t.client.SetDeadline(deadline)
	if t.clientOpen {
		<-t.errClient
	}
	t.client.Close()
	if t.upOpen {
		<-t.errUp
	}
}

// close writes a close frame 1001 with reason to the client and, masked,
// to the upstream, each between two frames (once the frame in flight each
// way ends), then waits for the upstream's close frame in answer; all of
// it until deadline. A write to the upstream has no deadline of its own:
// closing body at the deadline ends one.
func (t *tunnel) close(reason string, deadline time.Time, body io.Closer) {
	_ = t.client.SetWriteDeadline(deadline)
	expired := make(chan struct{})
	cut := time.AfterFunc(time.Until(deadline), func() {
		body.Close()
		close(expired)
	})
	defer func() {
		if !cut.Stop() {
			<-expired // body.Close has run: end's is the second
		}
	}()
	t.toClient.finish(closeFrame(reason, false))
	t.toUp.finish(closeFrame(reason, true))
	select {
	case <-t.toClient.answered:
	case <-t.errClient: // the upstream closed its side
		t.clientOpen = false
	case <-expired:
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

// rearm sets tm to fire d after since (monoNow), at once if that is past;
// it stops tm when d is 0.
func rearm(tm *time.Timer, d time.Duration, since int64) {
	if d <= 0 {
		tm.Stop()
		return
	}
	tm.Reset(d - time.Duration(monoNow()-since))
}

// copy copies src to dst (through w, a WebSocket's, when not nil), noting
// the time of each read; at src's end it closes dst's writing side and
// returns nil.
func (t *tunnel) copy(dst io.Writer, src io.Reader, w *wsWriter) error {
	out := dst
	if w != nil {
		out = w
	}
	buf := make([]byte, copyBufferSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			t.last.Store(monoNow())
			if _, werr := out.Write(buf[:n]); werr != nil {
				return werr
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

// closeFrame is a WebSocket close frame: status 1001, going away, and
// reason (at most 123 bytes); masked, as a client's frame must be (RFC
// 6455 §5.3), with a random key. The key protects nothing here (the
// gateway writes the payload itself) but a server refuses a frame without.
func closeFrame(reason string, masked bool) []byte {
	payload := append([]byte{0x03, 0xe9}, reason...)
	if !masked {
		return append([]byte{0x88, byte(len(payload))}, payload...)
	}
	key := rand.Uint32()
	out := append(make([]byte, 0, 6+len(payload)), 0x88, 0x80|byte(len(payload)),
		byte(key>>24), byte(key>>16), byte(key>>8), byte(key))
	for i, b := range payload {
		out = append(out, b^out[2+i%4])
	}
	return out
}

// wsWriter writes one direction of a WebSocket to dst and follows its
// frames, so that the gateway can put its close frame between two of them
// (finish). The lock is held while writing to dst: a write that blocks
// ends at the connection's deadline or close.
type wsWriter struct {
	dst    io.Writer
	mu     sync.Mutex
	frames wsFrames
	// pending is the close frame to write once the frame in flight ends.
	pending []byte
	// done: the close frame went, or cannot go; what follows is dropped,
	// and only followed to see the other end's close frame.
	done bool
	// answered is closed once a whole close frame came from the source
	// (for the client's side: the upstream's answer to the gateway's).
	answered chan struct{}
}

func newWSWriter(dst io.Writer) *wsWriter {
	return &wsWriter{dst: dst, answered: make(chan struct{})}
}

func (w *wsWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, closed := len(p), w.frames.sawClose
	if !w.done {
		k := w.frames.feed(p, w.pending != nil)
		if _, err := w.dst.Write(p[:k]); err != nil {
			w.frames.broken = true
			return 0, err
		}
		p = p[k:]
		if w.pending != nil && w.frames.boundary() {
			w.send(w.pending)
		}
	}
	w.frames.feed(p, false)
	if !closed && w.frames.sawClose {
		close(w.answered)
	}
	return n, nil
}

// finish writes frame, a close frame, between two frames: now, or once the
// frame in flight ends. Nothing is written when the stream is cut or
// already carried its own close frame (no frame may follow one).
func (w *wsWriter) finish(frame []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.done:
	case w.frames.broken || w.frames.sawClose:
		w.done = true
	case w.frames.boundary():
		w.send(frame)
	default:
		w.pending = frame
	}
}

func (w *wsWriter) send(frame []byte) {
	if _, err := w.dst.Write(frame); err != nil {
		w.frames.broken = true
	}
	w.done, w.pending = true, nil
}

// wsFrames follows a stream of WebSocket frames (RFC 6455 §5.2) just
// enough to know where each ends, and whether a close frame went.
type wsFrames struct {
	head      [14]byte
	n, need   int    // header bytes read, header length (0: unknown yet)
	remaining uint64 // payload bytes of the current frame still to come
	closing   bool   // the current frame is a close frame
	sawClose  bool   // a whole close frame went
	broken    bool   // a write failed: where the stream stands is unknown
}

// feed follows p and returns how much of it it took: all of it, or with
// stop, up to the end of the frame in flight.
func (f *wsFrames) feed(p []byte, stop bool) int {
	i := 0
	for i < len(p) && !(stop && f.n == 0 && f.remaining == 0) {
		if f.remaining > 0 {
			k := min(uint64(len(p)-i), f.remaining)
			i, f.remaining = i+int(k), f.remaining-k
			f.sawClose = f.sawClose || f.remaining == 0 && f.closing
			continue
		}
		f.head[f.n] = p[i]
		f.n++
		i++
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
			f.closing = f.head[0]&0x0f == 0x8
			f.sawClose = f.sawClose || f.remaining == 0 && f.closing
		}
	}
	return i
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
// shutdown (Gateway.CloseUpgrades, Close) closes them, a reload those it
// leaves without their route, upstream or instance (closeStaleTunnels).
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

// each calls f for each open tunnel, under the lock.
func (ts *tunnels) each(f func(*tunnel)) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for t := range ts.open {
		f(t)
	}
}

// ask asks t to close, for reason.
func (t *tunnel) ask(reason string) {
	select {
	case t.stop <- reason:
	default: // already asked
	}
}

// retune gives t its route's new limits, when they changed (tunnels.mu
// held: one sender).
func (t *tunnel) retune(uc config.Upgrade) {
	if uc.IdleTimeout == t.uc.IdleTimeout && uc.MaxLifetime == t.uc.MaxLifetime {
		return
	}
	t.uc = uc
	select {
	case <-t.limits: // not taken yet: replaced
	default:
	}
	t.limits <- uc
}

// CloseUpgrades closes the gateway's upgraded connections (WebSockets)
// politely — a WebSocket's client and upstream each get a close frame
// 1001 "going away", the upstream's answer awaited up to 1 s — refuses new
// ones, and returns once they are closed. http.Server.Shutdown
// does not know hijacked connections: register it with
// RegisterOnShutdown. Close calls it.
func (g *Gateway) CloseUpgrades() {
	g.tunnels.mu.Lock()
	g.tunnels.closed = true
	g.tunnels.mu.Unlock()
	g.tunnels.each(func(t *tunnel) { t.ask(closeShutdown) })
	g.tunnels.wg.Wait()
}

// closeStaleTunnels closes, after a reload to t, the tunnels that lost
// what they depend on: their route (gone, no longer the route their
// upgrade request matches, or no longer allowing their protocol), their upstream (the route goes to another one) or their
// instance (gone from the upstream's list). A change the reload applied
// to the upstream in place (breaker, bulkhead, timeouts, retry, tls, a
// runtime override) closes none; new idle and lifetime limits apply to
// the open tunnels.
func (g *Gateway) closeStaleTunnels(t *table) {
	g.tunnels.each(func(tu *tunnel) {
		rt := t.match(tu.req)
		var uc config.Upgrade
		if rt != nil && rt.cfg.Name == tu.route.cfg.Name {
			uc = rt.upgradeConfig()
		}
		switch {
		case !uc.Allows(tu.proto) || rt.up == nil || rt.up.name != tu.up.name:
			tu.ask(closeReload)
		case !slices.Contains(rt.up.cfg.Instances, tu.inst):
			tu.ask(closeInstance)
		default:
			tu.retune(uc)
		}
	})
}
