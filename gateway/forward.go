package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync/atomic"
)

// forward sends x's request to the current phase's upstream (x.up) through
// its Transport and streams the answer to w. It does what
// httputil.ReverseProxy does in its Rewrite mode, in one pass and with the
// gateway's own choices made inline (see docs/architecture.md, "The
// forwarder"):
//
//   - the outbound request is one copy of the inbound one, under x's
//     context: a fresh URL and a header without the hop-by-hop headers
//     (RFC 9110 §7.6.1, and those the Connection header names) nor the
//     ones only a proxy may set (untrustedHeader); X-Forwarded-For,
//     -Host, -Proto and X-Real-IP set to what the gateway saw; "Te:
//     trailers" kept when the client sent it; an empty User-Agent when the
//     client sent none (not Go's); a query that does not parse re-encoded
//     (cleanQuery);
//   - a 1xx answer (103 Early Hints) is passed on while the attempt runs;
//   - the answer's hop-by-hop headers are removed, modifyResponse decides
//     (a 5xx handed to the fallback chain, the stale cache's capture), its
//     header and announced trailers are copied, and its body streamed
//     through a pooled 32 KiB buffer, flushed after every write when it is
//     a stream (text/event-stream, or no Content-Length), its trailers
//     after it;
//   - a failure before the answer's head leaves its error in x.err and
//     writes nothing (ServeHTTP decides); one while streaming the body
//     aborts the response (http.ErrAbortHandler) so that the client sees
//     it cut short, not complete.
//
// Upgrades never come here: g.upgrade proxies them.
func (g *Gateway) forward(w http.ResponseWriter, x *exchange) {
	src := x.in
	if x.out != nil {
		// The request body the route buffered or marked unreplayable.
		src = x.out
	}
	trace := &httptrace.ClientTrace{Got1xxResponse: x.informational}
	out := src.WithContext(httptrace.WithClientTrace(x, trace))
	u := new(url.URL)
	*u = *src.URL
	u.RawQuery = cleanQuery(u.RawQuery)
	u.Scheme, u.Host = "http", x.up.name
	applyStripPrefix(u, x.route.cfg)
	out.URL = u
	// The instance's host, not the client's: X-Forwarded-Host carries that.
	out.Host = ""
	out.Close = false
	out.Header = forwardHeader(src, len(x.in.Header["Te"]) > 0)
	out.Trailer = src.Trailer.Clone()
	if src.ContentLength == 0 {
		out.Body = nil // nil, not NoBody: the Transport may then retry a reused connection's failure
	}
	if out.Body != nil {
		// The Transport closes the body it was given, also when the
		// request fails early; the inbound body is the server's to close
		// (closing it before it was read would wait for it), and is not
		// read once the forwarder returned (an attempt left behind may try).
		b := &detachedBody{r: out.Body}
		out.Body = b
		defer b.Close()
	}
	if x.informed {
		// A phase before this one (read here unlocked: only this goroutine
		// writes it).
		x.mu.Lock()
		x.informed = false
		x.mu.Unlock()
	}
	res, err := x.up.transport.RoundTrip(out)
	x.mu.Lock()
	x.informed = true
	x.mu.Unlock()
	if err != nil {
		x.err = err
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		// Not asked for: the upgrade requests went to g.upgrade.
		res.Body.Close()
		x.err = fmt.Errorf("gateway: the upstream switched protocols (%q) unasked", res.Header.Get("Upgrade"))
		return
	}
	removeHopByHop(res.Header)
	if err := modifyResponse(res); err != nil {
		res.Body.Close()
		x.err = err
		return
	}
	h := w.Header()
	copyHeader(h, res.Header)
	announced := len(res.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range res.Trailer {
			names = append(names, k)
		}
		h.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(res.StatusCode)
	if err := g.copyBody(w, res); err != nil {
		defer res.Body.Close()
		if x.in.Context().Value(http.ServerContextKey) != nil {
			// Served by an http.Server: the client must see the body cut
			// short (a reset, or a chunked body without its end).
			panic(http.ErrAbortHandler)
		}
		return
	}
	res.Body.Close() // now, so that res.Trailer is complete
	if len(res.Trailer) > 0 {
		// Chunked, so that the trailers can follow the body: a short
		// body would otherwise get a Content-Length.
		_ = http.NewResponseController(w).Flush()
	}
	if len(res.Trailer) == announced {
		copyHeader(h, res.Trailer)
		return
	}
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			h.Add(k, v)
		}
	}
}

// informational passes a 1xx answer of the upstream on to the client, as
// long as the Transport's RoundTrip has not returned: an attempt left behind
// (a hedge, a timed-out attempt) may still get one after that.
func (x *exchange) informational(code int, header textproto.MIMEHeader) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.informed {
		return nil
	}
	h := x.rec.Header()
	copyHeader(h, http.Header(header))
	x.rec.WriteHeader(code)
	// A 1xx's header is not the final answer's.
	clear(h)
	return nil
}

// copyBody streams res's body to w through a pooled buffer, flushing after
// every write when the body is a stream; a read error other than the
// client's cancellation is logged.
func (g *Gateway) copyBody(w http.ResponseWriter, res *http.Response) error {
	stream := res.ContentLength == -1 || isEventStream(res.Header)
	rc := http.NewResponseController(w)
	if stream {
		// The head now, before the first event: a stream's client waits
		// for it.
		if err := rc.Flush(); err != nil {
			return err
		}
	}
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	for {
		n, rerr := res.Body.Read(buf)
		if rerr != nil && rerr != io.EOF && rerr != context.Canceled {
			g.opts.Logger.Warn("reading the upstream's answer", "error", rerr)
		}
		if n > 0 {
			m, werr := w.Write(buf[:n])
			if werr != nil {
				return werr
			}
			if m != n {
				return io.ErrShortWrite
			}
			if stream {
				if err := rc.Flush(); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// copyHeader adds src's values to dst. A name dst lacks gets src's slice
// itself: net/textproto caps each value slice it makes at its length, so a
// later Add to either header copies it rather than writing into the other.
func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vv...)
		} else {
			dst[k] = vv[:len(vv):len(vv)]
		}
	}
}

// forwardHeader returns the header of in's outbound copy: in's without the
// hop-by-hop headers and those only a proxy may set, then the gateway's
// X-Forwarded-For, -Host, -Proto and X-Real-IP; te keeps "Te: trailers"
// when the client sent it. One map and one backing array for the values
// copied, as http.Header.Clone.
func forwardHeader(in *http.Request, te bool) http.Header {
	src := in.Header
	// The names the Connection header lists are hop-by-hop too.
	var conn []string
	for _, v := range src["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				conn = append(conn, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	nv := 0
	for _, vv := range src {
		nv += len(vv)
	}
	// Room for the values copied and those the gateway adds; the map's
	// hint counts the names it adds (X-Forwarded-For, -Host, -Proto,
	// X-Real-Ip, Spillway-Timeout-Ms and a User-Agent) but no more: up to
	// 8 names, a map is one small group, past it a table.
	vals := make([]string, 0, nv+5)
	h := make(http.Header, len(src)+6)
	for k, vv := range src {
		if isHopByHop(k) || untrustedHeader(k) || containsName(conn, k) {
			continue
		}
		if vv == nil {
			// A nil value is kept nil (Clone does the same).
			h[k] = nil
			continue
		}
		n := len(vals)
		vals = append(vals, vv...)
		h[k] = vals[n:len(vals):len(vals)]
	}
	if te && httpTokenIn(in.Header["Te"], "trailers") {
		vals = append(vals, "trailers")
		h["Te"] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if _, ok := h["User-Agent"]; !ok {
		// Not Go's default User-Agent: none, as the client sent.
		vals = append(vals, "")
		h["User-Agent"] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		vals = append(vals, ip)
		v := vals[len(vals)-1 : len(vals) : len(vals)]
		h["X-Forwarded-For"] = v
		// X-Real-IP shares the slice: neither is modified in place.
		h["X-Real-Ip"] = v
	}
	vals = append(vals, in.Host)
	h["X-Forwarded-Host"] = vals[len(vals)-1 : len(vals) : len(vals)]
	if in.TLS == nil {
		h["X-Forwarded-Proto"] = protoHTTP
	} else {
		h["X-Forwarded-Proto"] = protoHTTPS
	}
	return h
}

// The X-Forwarded-Proto values, shared by every request: capped at their
// length, never written in place.
var (
	protoHTTP  = []string{"http"}[:1:1]
	protoHTTPS = []string{"https"}[:1:1]
)

// isHopByHop reports whether a header name (canonical) is one of the
// headers of one connection (RFC 9110 §7.6.1), which httputil.ReverseProxy
// removes too.
func isHopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

func containsName(names []string, k string) bool {
	for _, n := range names {
		if n == k {
			return true
		}
	}
	return false
}

// httpTokenIn reports whether one of the comma-separated lists vv holds
// token (any case).
func httpTokenIn(vv []string, token string) bool {
	for _, v := range vv {
		for item := range strings.SplitSeq(v, ",") {
			item, _, _ = strings.Cut(item, ";")
			if strings.EqualFold(textproto.TrimString(item), token) {
				return true
			}
		}
	}
	return false
}

// cleanQuery returns a query as the upstream is to get it: unchanged when
// it parses, else re-encoded from what parses (a ';' separator or a bad
// escape dropped), so that the gateway and the upstream cannot read two
// different queries from one request (httputil.ReverseProxy does the same).
func cleanQuery(s string) string {
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencodeQuery(s)
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return reencodeQuery(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

func reencodeQuery(s string) string {
	v, _ := url.ParseQuery(s)
	return v.Encode()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// detachedBody is the outbound request's body: reads go to the inbound
// body until Close, after which they fail, and Close does not close the
// inbound body (the server does). A Transport may read a body after its
// RoundTrip returned (an attempt left behind), and ServeHTTP's return ends
// what the inbound body may be read for.
type detachedBody struct {
	r      io.ReadCloser
	closed atomic.Bool
}

func (b *detachedBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyDetached
	}
	return b.r.Read(p)
}

func (b *detachedBody) Close() error {
	b.closed.Store(true)
	return nil
}

var errBodyDetached = fmt.Errorf("gateway: read of the request body after its request ended")
