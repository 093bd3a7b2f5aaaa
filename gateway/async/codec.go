package async

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
)

// StoredRequest is a request an async route accepted, as the queue holds it
// (the Data of its job) and as the worker sends it to the upstream.
type StoredRequest struct {
	Method string
	// Path is the path as received (escaped, before strip_prefix) and
	// RawQuery the query, without '?'.
	Path, RawQuery string
	// Host, RemoteAddr and Scheme ("http" or "https") are the inbound
	// request's, for the X-Forwarded-* headers of the delivery.
	Host, RemoteAddr, Scheme string
	// Header holds the request's headers minus the hop-by-hop ones, the
	// X-Forwarded-* ones (the delivery sets its own), Content-Length and
	// Spillway-Timeout-Ms (a time budget of the past).
	Header http.Header
	Body   []byte
}

// jobFormat is the first byte of every encoded job: the version of the
// layout below, so that a later layout can still read the jobs stored by
// this one.
const jobFormat = 1

// The encoding is compact and copies the body once: a version byte, then
// method, path, query, host, remote address and scheme as uvarint-prefixed
// strings, the number of header lines and each line's name and value as
// uvarint-prefixed strings (one line per value), and last the body, as it
// is, up to the end of the data.

var errBadJob = errors.New("gateway: malformed job data")

// errBodyTooLarge is what encodeRequest returns when the body exceeds its
// limit.
var errBodyTooLarge = errors.New("gateway: request body too large")

// maxPooledJob is the largest encoding buffer kept for reuse; a larger one
// (a rare big body) is left to the garbage collector.
const maxPooledJob = 256 << 10

var jobBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// hopHeaders are removed from a stored request, as httputil.ReverseProxy
// removes them from a proxied one, together with the headers the delivery
// sets itself.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
	"Spillway-Timeout-Ms": true,
}

// kept reports whether header name of r is stored: not hop-by-hop (the
// fixed list, any Proxy-*, and those its Connection header names).
func kept(r *http.Request, name string) bool {
	if hopHeaders[name] || strings.HasPrefix(name, "Proxy-") {
		return false
	}
	for _, v := range r.Header["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(f)) == name {
				return false
			}
		}
	}
	return true
}

// encodeRequest appends the encoding of r to b, reading its body to the end;
// a body longer than max fails with errBodyTooLarge, a read error is
// returned as it is.
func encodeRequest(b []byte, r *http.Request, max int64) ([]byte, error) {
	return appendRequestBody(encodeHead(b, r), r, max)
}

// encodeHead appends the encoding of r without its body to b: the body
// comes last, as it is.
func encodeHead(b []byte, r *http.Request) []byte {
	b = append(b, jobFormat)
	b = appendString(b, r.Method)
	b = appendString(b, r.URL.EscapedPath())
	b = appendString(b, r.URL.RawQuery)
	b = appendString(b, r.Host)
	b = appendString(b, r.RemoteAddr)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	b = appendString(b, scheme)
	n := 0
	for name, vs := range r.Header {
		if kept(r, name) {
			n += len(vs)
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for name, vs := range r.Header {
		if !kept(r, name) {
			continue
		}
		for _, v := range vs {
			b = appendString(b, name)
			b = appendString(b, v)
		}
	}
	return b
}

// appendRequestBody appends r's body to b (see encodeRequest).
func appendRequestBody(b []byte, r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return b, nil
	}
	return appendBody(b, r.Body, r.ContentLength, max)
}

// attemptHeaders describe one attempt of a request rather than what it
// asks for: tracing, request ids, the date. A client's retry carries fresh
// ones, and is still the same request.
var attemptHeaders = map[string]bool{
	"Date": true, "Traceparent": true, "Tracestate": true, "Baggage": true, "B3": true, "Sentry-Trace": true,
	"Uber-Trace-Id": true, "X-Amzn-Trace-Id": true, "X-Cloud-Trace-Context": true, "X-Request-Id": true,
	"X-Correlation-Id": true,
}

// fingerprint identifies what a keyed request asks for, to tell a retry
// from another request reusing its Idempotency-Key: a SHA-256 of its
// method, path, query, the headers it is stored with (in name order)
// minus attemptHeaders and X-B3-*, and its body. Host is left out: the
// route decides where it goes, and two gateways of one store have two.
func fingerprint(r *http.Request, body []byte) []byte {
	h := sha256.New()
	var lb [binary.MaxVarintLen64]byte
	field := func(s string) {
		h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(s)))])
		_, _ = io.WriteString(h, s)
	}
	var arr [32]string
	names := arr[:0]
	for name := range r.Header {
		if kept(r, name) && !attemptHeaders[name] && !strings.HasPrefix(name, "X-B3-") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	field(r.Method)
	field(r.URL.EscapedPath())
	field(r.URL.RawQuery)
	for _, name := range names {
		for _, v := range r.Header[name] {
			field(name)
			field(v)
		}
	}
	h.Write(body)
	return h.Sum(nil)
}

// appendBody reads body to its end into b's spare capacity, growing b as
// needed (once, to the exact size, when the length is known).
func appendBody(b []byte, body io.Reader, length, max int64) ([]byte, error) {
	start := len(b)
	if length > 0 && length <= max {
		// One byte more than announced, to see EOF without growing again.
		b = growTo(b, len(b)+int(length)+1)
	}
	for {
		if len(b) == cap(b) {
			b = growTo(b, 2*cap(b)+512)
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)-start) > max {
			return b, errBodyTooLarge
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func growTo(b []byte, n int) []byte {
	if n <= cap(b) {
		return b
	}
	nb := make([]byte, len(b), n)
	copy(nb, b)
	return nb
}

// DecodeStoredRequest decodes the Data of an async route's job. The Body
// of the result shares data's memory.
func DecodeStoredRequest(data []byte) (*StoredRequest, error) {
	d := jobDecoder{b: data}
	if len(data) == 0 || data[0] != jobFormat {
		return nil, errBadJob
	}
	d.b = d.b[1:]
	sr := &StoredRequest{Method: d.str(), Path: d.str(), RawQuery: d.str(), Host: d.str(), RemoteAddr: d.str(), Scheme: d.str()}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return nil, errBadJob
	}
	sr.Header = make(http.Header, n)
	for range n {
		name, v := d.str(), d.str()
		sr.Header[name] = append(sr.Header[name], v)
	}
	if d.bad {
		return nil, errBadJob
	}
	sr.Body = d.b
	return sr, nil
}

type jobDecoder struct {
	b   []byte
	bad bool
}

func (d *jobDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *jobDecoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.bad = true
		d.b = nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
