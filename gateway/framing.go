package gateway

import (
	"bytes"
	"sync/atomic"
)

// framing follows the HTTP/1.x requests of one connection in the bytes the
// server reads, to see what net/http hides from a handler: Go's server drops
// Content-Length when Transfer-Encoding: chunked is present, folds obs-fold
// lines and takes a bare LF for a line end, before the handler runs. A load
// balancer in front that frames the same bytes otherwise (by
// Content-Length, say) sees one request where the gateway would proxy two
// (request smuggling).
//
// It parses each request head just enough to know its framing, then follows
// the body — Content-Length bytes, or the chunks and the trailer section —
// to the next head. It marks the connection bad (RFC 9112 §6.3: answer 400
// and close) on:
//   - Content-Length and Transfer-Encoding in one request;
//   - a Transfer-Encoding other than exactly "chunked" (lower case, one
//     field), or one in an HTTP/1.0 request;
//   - more than one Content-Length field, or a value that is not 1 to 18
//     digits;
//   - an obs-fold line (starting with a space or a tab), a line without a
//     colon or with an empty name, a trailer field name with a character
//     outside token (net/http refuses such a header name itself);
//   - a line not ended by CRLF, a CR anywhere else;
//   - a request line whose version is neither HTTP/1.1 nor HTTP/1.0;
//   - chunked framing that is not exactly size[;extension] CRLF, data, CRLF
//     (sizes up to 16 hex digits, lines up to 4 KiB as Go's reader), then
//     trailer lines and an empty line.
//
// Once bad it stops parsing: the connection is not to be trusted any more,
// and nothing read from it after that point may be forwarded. It is
// stricter than Go's server on purpose: where the two could disagree on
// where a request ends, it refuses. Go's own refusals (a malformed head)
// close the connection anyway; the one Go answers otherwise than 400, a
// transfer coding it does not know (501), is withheld from it (see feed).
//
// Its memory is fixed (lineKeep bytes of the current line) whatever the
// input; its work is a bytes.IndexByte per line and a look at the lines
// that matter, and O(1) per read of a body.
//
// feed is called by the connection's reads, which net/http never makes
// concurrently; bad may be read by any goroutine.
type framing struct {
	state uint8
	// allowH2 lets the connection open with the HTTP/2 preface: the
	// listener terminates TLS and the server speaks HTTP/2 over it (ALPN).
	allowH2 bool
	// heads counts the request heads begun.
	heads int
	// line keeps the first bytes of the current line; n is its length so
	// far (CR included) and tail its last bytes, where a request line's
	// version is.
	line [lineKeep]byte
	n    int
	tail [len(" HTTP/1.1\r")]byte
	// cr is set while the line so far ends with a CR.
	cr bool
	// The framing fields of the head being read.
	http10    bool
	nCL, nTE  int
	length    int64 // the Content-Length value
	chunkedTE bool  // the Transfer-Encoding value is exactly "chunked"
	// foldTE: the value is "chunked" in any case, which Go's server takes.
	foldTE bool
	// withhold is set when the head is one Go's server would refuse with
	// 501 rather than 400: its end is not to reach the server.
	withhold  bool
	remaining int64 // body or chunk bytes still to pass
	bad       atomic.Bool
}

// lineKeep is how much of a line framing keeps: enough for any valid
// Content-Length or Transfer-Encoding field with some white space, and for
// the HTTP/2 preface's first line.
const lineKeep = 64

// maxChunkLine is the longest chunk-size line, as net/http's chunked
// reader's (maxLineLength).
const maxChunkLine = 4096

// The states of framing.
const (
	stIdle        uint8 = iota // between requests: CR and LF are skipped
	stRequestLine              // in a request line
	stHeader                   // in a header line
	stBody                     // in a Content-Length body
	stChunkSize                // in a chunk-size line
	stChunkData                // in a chunk's data
	stChunkCR                  // after a chunk's data: CR expected
	stChunkLF                  // LF expected
	stTrailer                  // in a trailer line
	stHTTP2                    // the connection speaks HTTP/2: not followed
	stBad                      // the connection is bad: not followed
)

// h2Preface is the first line of the HTTP/2 connection preface (RFC 9113
// §3.4), without its CRLF.
const h2Preface = "PRI * HTTP/2.0"

// isBad reports whether the connection carried a request that must not be
// forwarded, at any point so far.
func (f *framing) isBad() bool { return f.bad.Load() }

func (f *framing) fail() {
	f.state = stBad
	f.bad.Store(true)
}

// failUnread fails the connection before the server reads the end of the
// current line (see feed).
func (f *framing) failUnread() {
	f.withhold = true
	f.fail()
}

// feed follows the bytes p, the next ones read from the connection, and
// returns how many of them the server may read: all of them, but when the
// head they end has a transfer coding other than chunked (or two
// Transfer-Encoding fields), which Go's server answers 501 (RFC 9112 §6.1)
// where §6.3 asks for 400 ("chunked" not last) — then the head's last LF
// and what follows are withheld, and the connection's next read fails:
// Go's server then answers 400 itself and closes the connection.
func (f *framing) feed(p []byte) int {
	all := len(p)
	for len(p) > 0 {
		switch f.state {
		case stBad, stHTTP2:
			return all
		case stIdle:
			// RFC 9112 §2.2: a server should ignore at least one empty
			// line before a request line.
			for len(p) > 0 && (p[0] == '\r' || p[0] == '\n') {
				p = p[1:]
			}
			if len(p) > 0 {
				f.heads++
				f.startLine(stRequestLine)
			}
		case stBody, stChunkData:
			k := min(int64(len(p)), f.remaining)
			p = p[k:]
			if f.remaining -= k; f.remaining == 0 {
				if f.state == stBody {
					f.state = stIdle
				} else {
					f.state = stChunkCR
				}
			}
		case stChunkCR:
			if p[0] != '\r' {
				f.fail()
				return all
			}
			p, f.state = p[1:], stChunkLF
		case stChunkLF:
			if p[0] != '\n' {
				f.fail()
				return all
			}
			p = p[1:]
			f.startLine(stChunkSize)
		default:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				f.add(p)
				return all
			}
			f.add(p[:i])
			p = p[i+1:]
			f.endLine()
			if f.withhold {
				return all - len(p) - 1
			}
		}
	}
	return all
}

// startLine begins a line read in state s.
func (f *framing) startLine(s uint8) {
	f.state, f.n, f.cr = s, 0, false
	if s == stRequestLine {
		f.http10, f.nCL, f.nTE, f.length, f.chunkedTE, f.foldTE = false, 0, 0, 0, false, false
	}
}

// add appends seg, a part of the current line without its LF.
func (f *framing) add(seg []byte) {
	if len(seg) == 0 {
		return
	}
	// A CR is allowed only right before the LF: one that a previous part
	// ended with, or one inside seg, is bare.
	if f.cr {
		f.fail()
		return
	}
	if i := bytes.IndexByte(seg, '\r'); i >= 0 && i != len(seg)-1 {
		f.fail()
		return
	}
	f.cr = seg[len(seg)-1] == '\r'
	if f.n < lineKeep {
		copy(f.line[f.n:], seg)
	}
	if f.state == stRequestLine {
		f.keepTail(seg)
	}
	f.n += len(seg)
	if f.state == stChunkSize && f.n > maxChunkLine {
		f.fail()
	}
}

// keepTail keeps the last len(f.tail) bytes of the line in f.tail.
func (f *framing) keepTail(seg []byte) {
	t := len(f.tail)
	if len(seg) >= t {
		copy(f.tail[:], seg[len(seg)-t:])
		return
	}
	copy(f.tail[:], f.tail[len(seg):])
	copy(f.tail[t-len(seg):], seg)
}

// endLine handles the line just ended by an LF.
func (f *framing) endLine() {
	if f.state == stBad {
		return
	}
	if !f.cr {
		f.fail() // a bare LF
		return
	}
	n := f.n - 1 // without the CR
	kept := f.line[:min(n, lineKeep)]
	switch f.state {
	case stRequestLine:
		f.requestLine(n, kept)
	case stHeader:
		if n == 0 {
			f.endHead()
			return
		}
		f.header(n, kept)
		f.startLine(stHeader)
	case stChunkSize:
		f.chunkSize(kept)
	case stTrailer:
		if n == 0 {
			f.state = stIdle
			return
		}
		// A trailer field is a field line like a header's.
		if _, ok := fieldName(n, kept, true); !ok {
			f.fail()
			return
		}
		f.startLine(stTrailer)
	}
}

// requestLine reads the version at the end of a request line of n bytes.
func (f *framing) requestLine(n int, kept []byte) {
	if f.allowH2 && f.heads == 1 && string(kept) == h2Preface {
		f.state = stHTTP2
		return
	}
	switch {
	case n < len(f.tail):
		f.fail()
		return
	case string(f.tail[:]) == " HTTP/1.1\r":
	case string(f.tail[:]) == " HTTP/1.0\r":
		f.http10 = true
	default:
		f.fail()
		return
	}
	f.startLine(stHeader)
}

// fieldName returns the position of the colon of a field line of n
// bytes, kept its first bytes (-1 when beyond them), and whether the line
// is a field line: a name, a colon, no obs-fold (a line starting with
// white space, which Go's server joins to the previous one). With token,
// the name must be a token; Go's server checks the names of the header
// itself (400), not those of the trailer.
func fieldName(n int, kept []byte, token bool) (colon int, ok bool) {
	if kept[0] == ' ' || kept[0] == '\t' {
		return 0, false
	}
	colon = bytes.IndexByte(kept, ':')
	if colon == 0 || colon < 0 && n <= lineKeep {
		return colon, false
	}
	if token {
		name := kept
		if colon > 0 {
			name = kept[:colon]
		}
		return colon, isToken(name)
	}
	return colon, true
}

// header reads a header field line of n bytes, kept its first bytes.
func (f *framing) header(n int, kept []byte) {
	colon, ok := fieldName(n, kept, false)
	if !ok {
		f.fail()
		return
	}
	if colon < 0 {
		return // a name longer than lineKeep: neither of the two
	}
	name := kept[:colon]
	switch {
	case len(name) == len("Content-Length") && asciiEqualFold(name, "content-length"):
		f.nCL++
		v, ok := fieldValue(n, kept, colon)
		if !ok || f.nCL > 1 {
			f.fail()
			return
		}
		if f.length, ok = parseLength(v); !ok {
			f.fail()
		}
	case len(name) == len("Transfer-Encoding") && asciiEqualFold(name, "transfer-encoding"):
		f.nTE++
		if f.nTE > 1 && !f.http10 {
			f.failUnread()
			return
		}
		v, ok := fieldValue(n, kept, colon)
		if !ok || f.nTE > 1 {
			f.fail()
			return
		}
		f.chunkedTE = string(v) == "chunked"
		f.foldTE = len(v) == len("chunked") && asciiEqualFold(v, "chunked")
	}
}

// fieldValue returns the value of a field line of n bytes, kept its first
// bytes, without the white space around it; ok is false when the line is
// longer than what is kept.
func fieldValue(n int, kept []byte, colon int) (v []byte, ok bool) {
	if n > len(kept) {
		return nil, false
	}
	return bytes.Trim(kept[colon+1:], " \t"), true
}

// endHead decides how the body of the head just read is framed.
func (f *framing) endHead() {
	switch {
	case f.nTE > 0 && !f.http10 && !f.foldTE:
		f.failUnread()
	case f.nTE > 0 && (f.nCL > 0 || f.http10 || !f.chunkedTE):
		f.fail()
	case f.nTE > 0:
		f.startLine(stChunkSize)
	case f.length > 0:
		f.state, f.remaining = stBody, f.length
	default:
		f.state = stIdle
	}
}

// chunkSize reads a chunk-size line: 1 to 16 hexadecimal digits, then its
// end or a ';' and extensions, which are passed over as Go's reader does.
func (f *framing) chunkSize(kept []byte) {
	var size uint64
	i := 0
	for ; i < len(kept) && i <= 16; i++ {
		d, ok := hexDigit(kept[i])
		if !ok {
			break
		}
		size = size<<4 | uint64(d)
	}
	if i == 0 || i > 16 || size > 1<<62 || i < len(kept) && kept[i] != ';' {
		f.fail()
		return
	}
	if size == 0 {
		f.startLine(stTrailer)
		return
	}
	f.state, f.remaining = stChunkData, int64(size)
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseLength reads a Content-Length value: 1 to 18 decimal digits (any
// length a request may have, and no overflow to care about).
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// asciiEqualFold compares b with lower, a lower-case ASCII string of the
// same length.
func asciiEqualFold(b []byte, lower string) bool {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isToken reports whether b is a non-empty token (RFC 9110 §5.6.2).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
