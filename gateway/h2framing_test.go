package gateway_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/spillway-dev/spillway/gateway"
)

// h2Request sends one request on a new HTTP/2 connection to addr, framed
// by hand: HEADERS with the fields, then DATA with data and END_STREAM. It
// returns the status answered, or the error code of the RST_STREAM (or
// GOAWAY) that refused the stream.
func h2Request(t *testing.T, addr string, tc *tls.Config, path string, fields [][2]string, data string) string {
	t.Helper()
	tc = tc.Clone()
	tc.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q, want h2", p)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range append([][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "a"}, {":path", path}}, fields...) {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	err = fr.WriteSettings()
	if err == nil {
		err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	}
	if err == nil {
		err = fr.WriteData(1, true, []byte(data))
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			hs, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			return "status " + hs[0].Value
		case *http2.RSTStreamFrame:
			return "reset " + f.ErrCode.String()
		case *http2.GoAwayFrame:
			return "goaway " + f.ErrCode.String()
		}
	}
}

// TestHTTP2FramingChecks: the framing checks hold over HTTP/2 (TLS, ALPN
// h2), where the listener does not follow the stream: net/http's HTTP/2
// server refuses a stream with transfer-encoding, or whose DATA disagree
// with its content-length, the gateway one whose content-length is not one
// length in digits (net/http's server passes it on), and no such request
// reaches the upstream whole.
func TestHTTP2FramingChecks(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	up := newBodyRecorder(t)
	addr := servePublic(t, parse(t, fmt.Sprintf(appRoute, up.URL), nil), gateway.ListenerOptions{TLSConfig: serverTLS})
	for _, c := range []struct {
		name   string
		fields [][2]string
		data   string
	}{
		{"transfer-encoding chunked", [][2]string{{"transfer-encoding", "chunked"}}, "5\r\nhello\r\n0\r\n\r\n"},
		{"content-length and transfer-encoding", [][2]string{{"content-length", "5"}, {"transfer-encoding", "chunked"}}, "hello"},
		{"content-length above the DATA", [][2]string{{"content-length", "10"}}, "hello"},
		{"content-length below the DATA", [][2]string{{"content-length", "2"}}, "hello"},
		{"two content-length values", [][2]string{{"content-length", "5"}, {"content-length", "6"}}, "hello"},
		{"two equal content-length values", [][2]string{{"content-length", "5"}, {"content-length", "5"}}, "hello"},
		{"a content-length list", [][2]string{{"content-length", "5, 6"}}, "hello"},
		{"a signed content-length", [][2]string{{"content-length", "+5"}}, "hello"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := h2Request(t, addr, clientTLS, "/app/"+strings.ReplaceAll(c.name, " ", "-"), c.fields, c.data)
			if got == "status 200" {
				t.Errorf("answered %s, want the stream refused", got)
			}
			t.Log(got)
		})
	}
	if got := h2Request(t, addr, clientTLS, "/app/good", [][2]string{{"content-length", "5"}}, "hello"); got != "status 200" {
		t.Errorf("a well-framed request: %s, want status 200", got)
	}
	// The refused streams' handlers may still be sending what they read:
	// the good request, sent last, is the upstream's last complete one.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got := up.complete.all()
		if len(got) > 0 && got[len(got)-1] == "/app/good hello" {
			if len(got) != 1 {
				t.Errorf("the upstream read whole %q, want only the good request", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upstream read whole %q, want the good request", got)
		}
	}
}
