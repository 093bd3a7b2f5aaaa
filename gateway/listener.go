package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
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
// with TLS its Protocols, HTTP/1 and HTTP/2 "unencrypted", which here means
// HTTP/2 inside the listener's TLS.
func ConfigureServer(s *http.Server, o ListenerOptions) {
	prev := s.ConnContext
	s.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		return ConnContext(ctx, c)
	}
	if o.TLSConfig != nil {
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
// write makes progress: a write fails once no byte could be written for
// timeout. It sits under TLS, where a timed-out write could not go on.
// A deadline its user sets (tls's 5 s for a close_notify) is kept when it
// is earlier.
type writeTimeoutConn struct {
	net.Conn
	timeout time.Duration
	// userDeadline is the write deadline the user set, in Unix nanoseconds;
	// 0 when none.
	userDeadline atomic.Int64
}

func (c *writeTimeoutConn) Write(p []byte) (n int, err error) {
	for {
		now := time.Now()
		dl := now.Add(c.timeout)
		user := c.userDeadline.Load()
		if user != 0 && user < dl.UnixNano() {
			dl = time.Unix(0, user)
		}
		if err := c.Conn.SetWriteDeadline(dl); err != nil {
			return n, err
		}
		m, err := c.Conn.Write(p[n:])
		n += m
		// A timeout after some progress is not a stall: go on with a new
		// deadline, unless it was the user's.
		if err == nil || m == 0 || !errors.Is(err, os.ErrDeadlineExceeded) || user != 0 && time.Now().UnixNano() >= user {
			return n, err
		}
	}
}

// CloseWrite is publicConn's.
func (c *writeTimeoutConn) CloseWrite() error { return closeWrite(c.Conn) }

func (c *writeTimeoutConn) SetWriteDeadline(t time.Time) error {
	c.setUser(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *writeTimeoutConn) SetDeadline(t time.Time) error {
	c.setUser(t)
	return c.Conn.SetDeadline(t)
}

func (c *writeTimeoutConn) setUser(t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.userDeadline.Store(ns)
}
