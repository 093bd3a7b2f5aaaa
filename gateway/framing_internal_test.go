package gateway

import (
	"strings"
	"testing"
)

// framingCases are request streams of one connection and whether framing
// must mark the connection bad.
var framingCases = []struct {
	name string
	in   string
	bad  bool
}{
	{"get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"keep-alive: CL, chunked, get", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\n" + strings.Repeat("x", 26) + "\r\n0\r\nX-Trailer: y\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"empty lines before a request", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", false},
	{"HTTP/1.0 with a body", "POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi", false},
	{"a body that looks like a request", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\n\r\nGET /admin HTTP/1.1\r\nTransfer-Encoding: x\r\n", false},
	{"a long header and a long target", "GET /" + strings.Repeat("a", 5000) + " HTTP/1.1\r\nHost: a\r\nCookie: " + strings.Repeat("c", 5000) + "\r\n\r\n", false},
	{"case of the names", "POST / HTTP/1.1\r\nhost: a\r\ncontent-LENGTH: 1\r\n\r\nx" + "POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n", false},
	{"white space around the value", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\t chunked \t\r\n\r\n0\r\n\r\n", false},

	{"CL.TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", true},
	{"TE.CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n", true},
	{"second request CL.TE", "GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
	{"chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", true},
	{"identity, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", true},
	{"two TE fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
	{"TE upper case", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", true},
	{"TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", true},
	// A space or a tab before the colon: net/http refuses the header name
	// itself (see TestSmugglingIsRefusedAndTheConnectionClosed).
	{"obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
	{"obs-fold of the TE value", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", true},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
	{"two CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", true},
	{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", true},
	{"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", true},
	{"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", true},
	{"CL too long", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0000000000000000001\r\n\r\nx", true},
	{"bare LF in the head", "GET / HTTP/1.1\nHost: a\n\n", true},
	{"bare LF after a header", "GET / HTTP/1.1\r\nHost: a\nTransfer-Encoding: chunked\r\n\r\n", true},
	{"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", true},
	{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", true},
	{"empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n", true},
	{"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", true},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", true},
	{"no version", "GET /\r\n\r\n", true},
	{"h2 preface without TLS", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", true},
	{"chunk size not hex", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n\r\n", true},
	{"chunk size with space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", true},
	{"chunk size too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\n", true},
	{"chunk without CRLF after data", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", true},
	{"chunk line with bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n", true},
	{"chunk extension too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("e", 5000) + "\r\nx\r\n0\r\n\r\n", true},
	{"trailer obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", true},
	{"trailer without a name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n:\r\n\r\nGET / HTTP/1.1\r\n\r\n", true},
	{"trailer without colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET / HTTP/1.1\r\n\r\n", true},
}

func TestFramingMarksAmbiguousRequestStreams(t *testing.T) {
	for _, c := range framingCases {
		t.Run(c.name, func(t *testing.T) {
			// Whole, byte by byte, and in pieces of 7: a read may end
			// anywhere, between a CR and its LF included.
			for _, size := range []int{len(c.in), 1, 7} {
				var f framing
				for in := c.in; in != ""; {
					n := min(size, len(in))
					f.feed([]byte(in[:n]))
					in = in[n:]
				}
				if f.isBad() != c.bad {
					t.Errorf("reads of %d bytes: bad = %v, want %v", size, f.isBad(), c.bad)
				}
			}
		})
	}
}

func TestFramingFollowsBodiesToTheNextHead(t *testing.T) {
	in := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	var f framing
	f.feed([]byte(in))
	if f.isBad() || f.heads != 3 || f.state != stIdle {
		t.Errorf("bad %v, heads %d, state %d; want 3 heads and idle", f.isBad(), f.heads, f.state)
	}
}

func TestFramingLetsAnHTTP2PrefaceThroughOnlyWhenAllowed(t *testing.T) {
	preface := "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00"
	f := framing{allowH2: true}
	f.feed([]byte(preface))
	if f.isBad() || f.state != stHTTP2 {
		t.Errorf("allowed: bad %v, state %d, want HTTP/2", f.isBad(), f.state)
	}
	// Later in the connection, the preface is no preface.
	f = framing{allowH2: true}
	f.feed([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n" + preface))
	if !f.isBad() {
		t.Error("a preface after a request is not refused")
	}
}

func TestFramingWithholdsTheEndOfAHeadGoWouldAnswer501(t *testing.T) {
	for _, c := range []struct{ name, head string }{
		{"chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"},
		{"gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{"two fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := "GET / HTTP/1.1\r\nHost: a\r\n\r\n" + c.head + "0\r\n\r\n"
			var f framing
			if got, want := f.feed([]byte(in)), len(in)-len("\n0\r\n\r\n"); got != want {
				t.Errorf("feed = %d, want %d (up to the head's last LF)", got, want)
			}
			if !f.isBad() {
				t.Error("not bad")
			}
		})
	}
	// Go takes these (and the handler refuses them): nothing is withheld.
	for _, in := range []string{
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		var f framing
		if got := f.feed([]byte(in)); got != len(in) || !f.isBad() {
			t.Errorf("%q: feed = %d of %d, bad %v", in, got, len(in), f.isBad())
		}
	}
}

// BenchmarkFramingFeed measures the framing check of a typical request
// head, read whole.
func BenchmarkFramingFeed(b *testing.B) {
	head := []byte("GET /catalog/items?page=2 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip\r\n\r\n")
	var f framing
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		f.feed(head)
	}
}
