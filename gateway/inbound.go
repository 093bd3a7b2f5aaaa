package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/spillway-dev/spillway/config"
)

// screen refuses, before routing, a request the gateway must not forward,
// and prepares the others: it answers (and returns true) a request of a
// connection whose framing check failed (400 and Connection: close),
// CONNECT, an absolute-form or asterisk-form target, a path with dot
// segments; it sets r.TLS on a connection whose TLS the listener
// terminated, bounds the writes of an HTTP/2 stream (see
// ListenerOptions.WriteTimeout), refuses an HTTP/2 request whose content-length
// is not one length (the framing ambiguity net/http's HTTP/2 server lets
// through), and takes out of r's Connection header
// the names a client may not make hop-by-hop (protectHeaders).
func (g *Gateway) screen(rec *recorder, x *exchange, r *http.Request) bool {
	if c := connOf(r.Context()); c != nil {
		if r.ProtoMajor == 1 && c.f.isBad() {
			// Whatever else the connection carries may be framed
			// otherwise by a proxy in front: nothing more is read from it.
			rec.Header().Set("Connection", "close")
			g.local(rec, x, http.StatusBadRequest, ReasonBadRequest,
				"ambiguous request framing (RFC 9112 6.3): Content-Length with Transfer-Encoding, a transfer coding other than chunked, a duplicate Content-Length, obs-fold or a bare CR or LF")
			return true
		}
		if r.TLS == nil {
			// net/http sets it only on the connections it decrypts; the
			// request is the handler's alone until the proxy copies it.
			r.TLS = c.connectionState()
		}
		if r.ProtoMajor == 2 {
			rec.streamTimeout = c.writeTimeout
		}
	}
	if r.ProtoMajor == 2 && badContentLength(r) {
		g.local(rec, x, http.StatusBadRequest, ReasonBadRequest, "ambiguous request framing: content-length is not one length")
		return true
	}
	if r.Method == http.MethodConnect || !strings.HasPrefix(r.RequestURI, "/") || r.URL.Host != "" || hasDotSegment(r.URL.Path) {
		g.local(rec, x, http.StatusBadRequest, ReasonBadRequest, "the request target must be a path without dot segments; this is not a forward proxy")
		return true
	}
	protectHeaders(r.Header)
	return false
}

// badContentLength reports whether the content-length fields of r, an
// HTTP/2 request, are other than one length in digits, the one net/http
// read: its HTTP/2 server reads the first field as it can and passes the
// fields on, which a proxy behind that downgrades to HTTP/1 may read
// otherwise.
func badContentLength(r *http.Request) bool {
	cl := r.Header["Content-Length"]
	if len(cl) == 0 {
		return false
	}
	n, ok := parseLength([]byte(cl[0]))
	return len(cl) > 1 || !ok || n != r.ContentLength
}

// protectHeaders removes from h's Connection header the names of the
// headers the gateway decides on or sets (Idempotency-Key, Host,
// Content-Length, Transfer-Encoding, Forwarded, X-Real-IP, X-Forwarded-*,
// Spillway-*): the proxy drops the headers a Connection header names, so a
// client naming Idempotency-Key would have its POST retried (the decision
// reads the inbound request) and sent without its key. The other tokens
// stay.
func protectHeaders(h http.Header) {
	vs := h["Connection"]
	if len(vs) == 0 || !anyToken(vs, protectedHeader) {
		return
	}
	var kept []string
	for _, v := range vs {
		for item := range strings.SplitSeq(v, ",") {
			if item = textproto.TrimString(item); item != "" && !protectedHeader(item) {
				kept = append(kept, item)
			}
		}
	}
	if len(kept) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = []string{strings.Join(kept, ", ")}
}

// anyToken reports whether an item of the comma-separated lists vs
// satisfies f.
func anyToken(vs []string, f func(string) bool) bool {
	for _, v := range vs {
		for item := range strings.SplitSeq(v, ",") {
			if f(textproto.TrimString(item)) {
				return true
			}
		}
	}
	return false
}

// protectedHeader reports whether a Connection header may not name the
// header name (any case).
func protectedHeader(name string) bool {
	for _, p := range [...]string{"Idempotency-Key", "Host", "Content-Length", "Transfer-Encoding", "Forwarded", "X-Real-Ip"} {
		if strings.EqualFold(name, p) {
			return true
		}
	}
	return hasPrefixFold(name, "X-Forwarded-") || hasPrefixFold(name, "Spillway-")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// untrustedHeader reports whether the header name (canonical) is one that
// upstreams may trust to say who the client is or which URL it asked for,
// and that only a proxy may set: the gateway removes it from what a client
// sent (it sets X-Forwarded-For, -Host, -Proto and X-Real-IP itself). Names
// written with '_' for '-' count too: CGI-style servers read both alike.
func untrustedHeader(name string) bool {
	switch name {
	case "X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "Client-Ip", "X-Cluster-Client-Ip", "Cf-Connecting-Ip",
		"Cf-Connecting-Ipv6", "Fastly-Client-Ip", "X-Originating-Ip", "X-Remote-Ip", "X-Remote-Addr", "X-Proxyuser-Ip",
		"X-Envoy-External-Address", "X-Original-Url", "X-Original-Uri", "X-Rewrite-Url", "X-Envoy-Original-Path",
		"X-Original-Host", "X-Host", "X-Forwarded", "Forwarded", "X-Original-Forwarded-For":
		return true
	}
	if strings.HasPrefix(name, "X-Forwarded-") || strings.HasPrefix(name, "Spillway-Fault-") {
		return true
	}
	if strings.IndexByte(name, '_') >= 0 {
		return untrustedHeader(textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(name, "_", "-")))
	}
	return false
}

// stripUntrusted removes the untrustedHeader headers from h.
func stripUntrusted(h http.Header) {
	for name := range h {
		if untrustedHeader(name) {
			delete(h, name)
		}
	}
}

// setRealIP sets h's X-Real-IP to its X-Forwarded-For, which the proxy has
// just set to the client's address alone. They share the value's slice:
// neither is modified in place afterwards, and this spares an allocation
// per request.
func setRealIP(h http.Header) {
	if v := h["X-Forwarded-For"]; len(v) == 1 {
		h["X-Real-Ip"] = v
	}
}

// checkPath refuses (400, and returns true) a request whose path, as it
// will be sent (after rt's strip_prefix), some upstreams would resolve
// outside the route (see unsafePath), unless rt allows it.
func (g *Gateway) checkPath(w http.ResponseWriter, x *exchange, r *http.Request, rt *config.Route) bool {
	if rt.AllowUnsafePaths {
		return false
	}
	p, raw := r.URL.Path, r.URL.RawPath
	if rt.StripPrefix && rt.Match.PathPrefix != "" {
		p = stripPrefix(p, rt.Match.PathPrefix)
		if raw != "" && hasPathPrefix(raw, rt.Match.PathPrefix) {
			raw = stripPrefix(raw, rt.Match.PathPrefix)
		}
	}
	if unsafePath(p) || raw != "" && unsafePath(raw) {
		g.local(w, x, http.StatusBadRequest, ReasonBadRequest,
			"the path as sent could resolve outside the route: a leading //, a backslash, a control character, or a dot segment once decoded or before a ;")
		return true
	}
	return false
}

// maxDecodes is how many times unsafePath decodes a path: enough for the
// double and triple encodings (%252e, %25252e) of upstreams that decode
// more than once.
const maxDecodes = 3

// unsafePath reports whether p, a path to send, could be resolved outside
// the route by some upstream: it starts with "//" (a network-path
// reference: //host/x), or, in it or in any of its maxDecodes successive
// percent-decodings, it has a backslash (a separator on Windows and to
// some normalisers), a control character (%00 truncates in C), or a
// segment that is "." or ".." before any ';' (Tomcat and Jetty drop path
// parameters: /..;/ is /../). Plain dot segments are refused before
// routing whatever the route says.
func unsafePath(p string) bool {
	if strings.HasPrefix(p, "//") {
		return true
	}
	if !hasPathSpecial(p) {
		return false
	}
	for i := 0; ; i++ {
		if strings.IndexByte(p, '\\') >= 0 || hasControl(p) || hasDotParamSegment(p) {
			return true
		}
		if i == maxDecodes || strings.IndexByte(p, '%') < 0 {
			return false
		}
		d, err := url.PathUnescape(p)
		if err != nil {
			// Not an escape an upstream could decode either.
			return false
		}
		p = d
	}
}

// hasPathSpecial reports whether p has a byte unsafePath looks into: one
// of . \ % ; or a control character. Most paths have none.
func hasPathSpecial(p string) bool {
	for i := 0; i < len(p); i++ {
		if pathSpecial[p[i]] {
			return true
		}
	}
	return false
}

var pathSpecial = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	for _, c := range "\x7f.\\%;" {
		t[c] = true
	}
	return t
}()

func hasControl(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return true
		}
	}
	return false
}

// hasDotParamSegment reports whether a segment of p is "." or ".." once
// its path parameters (from the first ';') are dropped.
func hasDotParamSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if i := strings.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i]
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// limitBody answers 413 (and returns true) when r announces a body over
// the route's max_body (0: no limit); otherwise it bounds r's body to it,
// so that a longer chunked body fails when it is read: the upstream sees
// it cut. With buffer_body, a body of unknown length is read whole first:
// one over the limit is answered 413 and never reaches the upstream.
func (g *Gateway) limitBody(rec *recorder, x *exchange, r *http.Request, rc *config.Route) bool {
	max := rc.MaxBody
	if max <= 0 || r.Body == nil || r.Body == http.NoBody {
		return false
	}
	if r.ContentLength > max {
		g.local(rec, x, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "the request body is too large")
		return true
	}
	if rc.BufferBody && r.ContentLength < 0 {
		return g.readBody(rec, x, r, max)
	}
	r.Body = http.MaxBytesReader(rec, r.Body, max)
	return false
}

// readBody reads r's body of unknown length, up to max bytes, into memory
// and sends it with its length: a longer one is answered 413 (true).
func (g *Gateway) readBody(rec *recorder, x *exchange, r *http.Request, max int64) bool {
	buf, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		g.local(rec, x, http.StatusBadRequest, ReasonBadRequest, "the request body could not be read")
		return true
	}
	if int64(len(buf)) > max {
		rec.Header().Set("Connection", "close") // the rest of the body is left unread
		g.local(rec, x, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "the request body is too large")
		return true
	}
	r.ContentLength, r.TransferEncoding = int64(len(buf)), nil
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return false
}
