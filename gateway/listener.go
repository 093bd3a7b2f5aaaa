package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ListenerOptions configure the public listener's connections (NewListener)
// and the http.Server serving them (ConfigureServer).
type ListenerOptions struct {
	// TLSConfig, when set, makes the listener terminate TLS itself, offering
	// HTTP/2 and HTTP/1.1 (ALPN): net/http serves HTTP/2 and checks
	// nothing of HTTP/1 framing unless it holds the *tls.Conn, so the
	// listener decrypts, the framing check reads the clear text, and the
	// server speaks HTTP/2 over the decrypted connection (ConfigureServer).
	TLSConfig *tls.Config
	// WriteTimeout bounds how long a write to the client may make no
	// progress (the socket's buffer stays full: the client does not read);
	// past it the write fails, the response is abandoned and its upstream
	// body closed. For HTTP/2 it also bounds each write of a stream, which
	// the client's flow control can stall on its own. 0: no limit.
	WriteTimeout time.Duration
	// H2C lets a plain connection open with the HTTP/2 preface (prior
	// knowledge, as gRPC clients without TLS speak): the server then
	// speaks cleartext HTTP/2 on it, HTTP/1 on the others.
	H2C bool
}

// NewListener returns ln with each connection it accepts prepared for the
// gateway: writes bounded by o.WriteTimeout, TLS terminated with
// o.TLSConfig, and the HTTP/1 request stream followed by a framing check
// (see ServeHTTP), which needs the http.Server set up by ConfigureServer.
func NewListener(ln net.Listener, o ListenerOptions) net.Listener {
	l := &listener{Listener: ln, o: o}
	if o.TLSConfig != nil {
		l.tls = o.TLSConfig.Clone()
		if len(l.tls.NextProtos) == 0 {
			l.tls.NextProtos = []string{"h2", "http/1.1"}
		}
	}
	return l
}

// ConfigureServer sets up s to serve the connections of a NewListener
// made with o: its ConnContext (the one s has is kept, called first), and
// with TLS or H2C its Protocols, HTTP/1 and HTTP/2 "unencrypted", which
// means HTTP/2 inside the listener's TLS, or in clear with H2C.
func ConfigureServer(s *http.Server, o ListenerOptions) {
	prev := s.ConnContext
	s.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		return ConnContext(ctx, c)
	}
	if o.TLSConfig != nil || o.H2C {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		s.Protocols = &p
	}
}

// ConnContext returns ctx carrying c when c is a connection of a
// NewListener, so that ServeHTTP finds its framing check; other
// connections are left alone (and their requests unchecked).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if pc, ok := c.(*publicConn); ok {
		return context.WithValue(ctx, connKey{}, pc)
	}
	return ctx
}

type connKey struct{}

// connOf returns the public connection a request came on, nil when it did
// not come through a NewListener.
func connOf(ctx context.Context) *publicConn {
	c, _ := ctx.Value(connKey{}).(*publicConn)
	return c
}

type listener struct {
	net.Listener
	o   ListenerOptions
	tls *tls.Config
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c = &readDeadlineConn{Conn: c}
	if l.o.WriteTimeout > 0 {
		c = &writeTimeoutConn{Conn: c, timeout: l.o.WriteTimeout}
	}
	pc := &publicConn{writeTimeout: l.o.WriteTimeout}
	if l.tls != nil {
		// The handshake runs on the first read, in the connection's own
		// goroutine and under the server's header read deadline.
		pc.tlsConn = tls.Server(c, l.tls)
		c = pc.tlsConn
		pc.f.allowH2 = true
	}
	pc.f.allowH2 = pc.f.allowH2 || l.o.H2C
	pc.Conn = c
	return pc, nil
}

// publicConn is a connection of the public listener: it follows the
// requests read from it (framing) and knows its TLS state.
type publicConn struct {
	net.Conn
	f            framing
	tlsConn      *tls.Conn // nil on a plain connection
	tlsState     atomic.Pointer[tls.ConnectionState]
	writeTimeout time.Duration
	// err fails every read once set (the reads are never concurrent).
	err error
}

func (c *publicConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if k := c.f.feed(p[:n]); k < n {
			// The server must not see the rest (see framing.feed).
			c.err = errAmbiguousFraming
			if k == 0 {
				return 0, c.err
			}
			return k, nil
		}
	}
	return n, err
}

// errAmbiguousFraming fails the reads of a connection whose framing check
// withheld a request head: net/http answers a failed read of a head with
// 400 and closes the connection.
var errAmbiguousFraming = errors.New("gateway: ambiguous request framing")

// CloseWrite shuts the writing side down when the connection under can:
// net/http does it before closing a connection whose client may still be
// sending, so that its last answer is not lost to a reset.
func (c *publicConn) CloseWrite() error { return closeWrite(c.Conn) }

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// connectionState returns the TLS state of c (nil when plain), which
// net/http cannot set on the requests of a connection it does not see as
// a *tls.Conn. Requests come once the handshake is complete.
func (c *publicConn) connectionState() *tls.ConnectionState {
	if c.tlsConn == nil {
		return nil
	}
	if s := c.tlsState.Load(); s != nil {
		return s
	}
	s := c.tlsConn.ConnectionState()
	c.tlsState.CompareAndSwap(nil, &s)
	return c.tlsState.Load()
}

// writeTimeoutConn bounds each write by a deadline that moves while the
// write makes progress: a write fails once a whole window of timeout (up
// to a sixteenth more: the deadline is moved only once a sixteenth of
// timeout went by since it was last set, which spares a timer update per
// write and per request) passed with no byte written. A window in which
// some bytes went out is followed by a new one, so a write that stalls
// after some progress fails within two windows of its last byte. It sits under TLS, where a
// timed-out write could not go on. A deadline its user sets (tls's 5 s for
// a close_notify) is kept when earlier; the user's zero deadline, which
// net/http sets after each request, leaves the conn's own in force.
type writeTimeoutConn struct {
	net.Conn
	timeout time.Duration
	// armed is when the connection's own deadline was last set (monoNow),
	// 0 when the socket's deadline is not its own; user is the deadline its
	// user set (monoNow's scale), 0 when none.
	armed, user atomic.Int64
}

// epoch is the origin of monoNow.
var epoch = time.Now()

// monoNow is the time on the monotonic clock, in nanoseconds since epoch:
// a wall clock step must not make a deadline look fresh.
func monoNow() int64 { return int64(time.Since(epoch)) }

func (c *writeTimeoutConn) Write(p []byte) (n int, err error) {
	for {
		if err := c.arm(); err != nil {
			return n, err
		}
		m, err := c.Conn.Write(p[n:])
		n += m
		// A timeout after some progress is not a stall: go on with a new
		// deadline, unless it was the user's.
		if err == nil || m == 0 || !errors.Is(err, os.ErrDeadlineExceeded) || c.user.Load() != 0 {
			return n, err
		}
		c.armed.Store(0)
	}
}

// arm sets the write deadline before a write: timeout and a sixteenth
// ahead, unless the one set less than a sixteenth of timeout ago stands,
// or the user's when it is earlier.
func (c *writeTimeoutConn) arm() error {
	now := monoNow()
	if user := c.user.Load(); user != 0 {
		return c.Conn.SetWriteDeadline(epoch.Add(time.Duration(min(user, now+int64(c.timeout)))))
	}
	if armed := c.armed.Load(); armed != 0 && now-armed < int64(c.timeout/16) {
		return nil
	}
	c.armed.Store(now)
	return c.Conn.SetWriteDeadline(epoch.Add(time.Duration(now) + c.timeout + c.timeout/16))
}

// CloseWrite is publicConn's.
func (c *writeTimeoutConn) CloseWrite() error { return closeWrite(c.Conn) }

func (c *writeTimeoutConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.user.Store(0)
		if c.armed.Load() != 0 {
			return nil // the connection's own deadline stays
		}
		return c.Conn.SetWriteDeadline(t)
	}
	c.user.Store(max(int64(t.Sub(epoch)), 1))
	c.armed.Store(0)
	return c.Conn.SetWriteDeadline(t)
}

func (c *writeTimeoutConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// readDeadlineConn moves its socket's read deadline only when a deadline
// it is given comes earlier than the one in force. net/http sets six per
// keep-alive request, each an update of a runtime timer; here three cost a
// comparison (see docs/architecture.md, "The forwarder, and the
// connection's deadlines"). A Read the
// socket's deadline ends before the one wanted (an older, earlier one) is
// started again under the one wanted, so that no Read fails before its
// user's deadline nor outlives it. It sits under TLS, where a timed-out
// read could not go on.
type readDeadlineConn struct {
	net.Conn
	// want is the deadline its user set (monoNow's scale, 0 when none);
	// sock the socket's, under mu.
	want atomic.Int64
	mu   sync.Mutex
	sock int64
}

// deadlineOf returns t on monoNow's scale, 0 for the zero time (none).
func deadlineOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if d := int64(t.Sub(epoch)); d != 0 {
		return d
	}
	return 1
}

func (c *readDeadlineConn) SetReadDeadline(t time.Time) error {
	w := deadlineOf(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want.Store(w)
	if w == 0 || c.sock != 0 && c.sock <= w {
		// The socket's deadline comes no later than the one wanted: a
		// Read it ends early starts again (Read).
		return nil
	}
	c.sock = w
	return c.Conn.SetReadDeadline(t)
}

func (c *readDeadlineConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *readDeadlineConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !c.rearm() {
			return n, err
		}
	}
}

// rearm sets the socket's deadline to the one wanted after the socket's
// ended a Read, and reports whether the Read goes on: not when the one
// wanted has passed too.
func (c *readDeadlineConn) rearm() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.want.Load()
	if w != 0 && monoNow() >= w {
		return false
	}
	c.sock = w
	var t time.Time
	if w != 0 {
		t = epoch.Add(time.Duration(w))
	}
	return c.Conn.SetReadDeadline(t) == nil
}

// CloseWrite is publicConn's.
func (c *readDeadlineConn) CloseWrite() error { return closeWrite(c.Conn) }
