// Package stallproxy is a TCP proxy for tests whose answers can be held
// back: the server behind it still gets every byte, but the client gets
// nothing back until Resume, as from a stalled (SIGSTOPped) or partitioned
// peer. It tells an unknown outcome (sent, never acknowledged) from a
// refusal.
package stallproxy

import (
	"io"
	"net"
	"sync"
)

// Proxy forwards the connections it accepts on 127.0.0.1 to one target.
type Proxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	held   bool
	resume chan struct{} // closed by Resume
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New listens on 127.0.0.1 (an OS-picked port) and forwards to target.
func New(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{l: l, target: target, conns: map[net.Conn]struct{}{}, resume: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Hold stops the bytes from the target to the clients: they wait in the
// proxy (and in the kernel's buffers) until Resume.
func (p *Proxy) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.held {
		p.held, p.resume = true, make(chan struct{})
	}
}

// Resume lets the held bytes through.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held {
		p.held = false
		close(p.resume)
	}
}

// gate returns nil when the answers flow, else a channel closed by Resume.
func (p *Proxy) gate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held {
		return p.resume
	}
	return nil
}

// Close stops listening, cuts every connection and waits for the copies.
func (p *Proxy) Close() error {
	err := p.l.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	if p.held {
		p.held = false
		close(p.resume)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !p.track(c, s) {
			_ = c.Close()
			_ = s.Close()
			return
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(s, c)
			_ = s.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.answers(c, s)
			_ = c.Close()
		}()
	}
}

// answers copies from the target s to the client c, waiting while held.
func (p *Proxy) answers(c, s net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if ch := p.gate(); ch != nil {
				<-ch
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
